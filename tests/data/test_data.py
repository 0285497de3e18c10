"""Data: FS2K index and quirks, the health check, the unpaired layout, transforms (incl. normal maps), sampling."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import make_unpaired
from PIL import Image

from facesketch.data import fs2k
from facesketch.data.datasets import (
    EpochSampler,
    ImageBank,
    TargetBank,
    UnpairedDataset,
    discover,
    target_path,
)
from facesketch.data.images import UnreadableImageError, load_rgb
from facesketch.data.transforms import (
    AugmentParams,
    apply_image,
    apply_normals,
    sample_params,
    to_model_range,
)
from facesketch.errors import UserError

# ---- FS2K (the real files)


def test_fs2k_index_pairs_photos_with_sketches(fs2k_dir):
    train, test = fs2k.load_split(fs2k_dir, "train"), fs2k.load_split(fs2k_dir, "test")
    assert len(train) == 1058 and len(test) == 1046
    r = next(r for r in train if r.image_name == "photo2/image0015")
    assert r.photo.name == "image0015.jpg" and r.sketch.parent.name == "sketch2" and r.sketch.stem == "sketch0015"
    assert r.id == "photo2_image0015" and r.source == "photo2" and "style" in r.attrs
    assert all(r.photo and r.sketch for r in train + test)
    assert {r.source for r in test} == {"photo1", "photo3"}  # photo2 is train-only


def test_fs2k_quirky_files_load_as_rgb(fs2k_dir):
    # sketch2 files are PNGs named .jpg, eight of them RGBA
    p = fs2k_dir / "sketch" / "sketch2" / "sketch0065.jpg"
    with Image.open(p) as im:
        assert im.format == "PNG" and im.mode == "RGBA"
    rgb = np.asarray(load_rgb(p))
    assert rgb.shape == (318, 223, 3) and rgb.dtype == np.uint8
    # transparent pixels are white paper after compositing
    with Image.open(p) as im:
        alpha = np.asarray(im)[..., 3]
    assert (rgb[alpha == 0] == 255).all()


def test_fs2k_check_reports_quirks_and_counts(fs2k_dir):
    rep = fs2k.check(fs2k_dir, decode=False)
    assert not rep.fatal
    assert rep.counts["train_records"] == 1058 and rep.counts["test_records"] == 1046
    assert len(rep.problems["extension_mismatch"]) == 98
    assert len(rep.problems["non_rgb_mode"]) == 8
    assert rep.counts["size photo3 photo 475x340"] == 477
    text = rep.format()
    assert "result: ok" in text and "extension_mismatch: 98" in text


def _mini_fs2k(src, dst, names):
    """A copy of a few FS2K records (the shared dataset is read-only)."""
    entries = [e for e in json.loads((src / "anno_train.json").read_text()) if e["image_name"] in names]
    (dst).mkdir(parents=True)
    (dst / "anno_train.json").write_text(json.dumps(entries))
    (dst / "anno_test.json").write_text("[]")
    for e in entries:
        n, num = e["image_name"].split("/image")
        n = n[-1]
        for kind, stem in (("photo", f"image{num}"), ("sketch", f"sketch{num}")):
            d = dst / kind / f"{kind}{n}"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(next((src / kind / f"{kind}{n}").glob(stem + ".*")), d)
    return entries


def test_fs2k_check_finds_broken_files(fs2k_dir, tmp_path):
    root = tmp_path / "FS2K"
    _mini_fs2k(fs2k_dir, root, {"photo1/image0110", "photo2/image0015", "photo3/image0001"} | set())
    names = [e["image_name"] for e in json.loads((root / "anno_train.json").read_text())]
    assert len(names) >= 2
    # truncate one photo, delete one sketch, add a stray file
    victim = next((root / "photo").rglob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:200])
    next((root / "sketch").rglob("*.*")).unlink()
    (root / "photo" / "photo1" / "notes.txt").write_text("hello")
    rep = fs2k.check(root)
    assert rep.fatal
    assert len(rep.problems["unreadable"]) == 1 and victim.name in rep.problems["unreadable"][0]
    assert len(rep.problems["missing_sketch"]) == 1
    assert rep.problems["stray_file"] == ["photo/photo1/notes.txt"]
    assert "FAILED" in rep.format()


def test_training_refuses_unreadable_image_naming_it(tmp_path):
    root = make_unpaired(tmp_path / "d")
    bad = root / "trainA" / "a03.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    files = discover(root, "train")
    bank = ImageBank(files.A, 16)
    with pytest.raises(UserError, match="a03.jpg"):
        bank.validate(progress=False)


def test_unpaired_layout_discovery_and_errors(tmp_path):
    root = make_unpaired(tmp_path / "d")
    files = discover(root, "train")
    assert files.source == "folders" and len(files.A) == 6 and len(files.B) == 5
    assert [p.name for p in files.A] == sorted(p.name for p in files.A)
    with pytest.raises(UserError, match="neither FS2K"):
        discover(tmp_path / "d" / "trainA", "train")
    with pytest.raises(UserError, match="does not exist"):
        discover(tmp_path / "nope", "train")


# ---- transforms and sampling


def test_crop_and_flip_params_are_shared_by_photo_and_normals():
    img = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    n = np.zeros((3, 6, 6), np.float16)
    n[0] = np.linspace(-1, 1, 6)[None, :]  # x varies along W
    n[2] = 1
    p = AugmentParams(top=1, left=2, size=4, flip=True)
    a = apply_image(img, p)
    assert a.shape == (3, 4, 4) and a.dtype == torch.uint8
    np.testing.assert_array_equal(a.numpy().transpose(1, 2, 0), img[1:5, 2:6][:, ::-1])
    m = apply_normals(n, p).float().numpy()
    expected_x = -n[0, 1:5, 2:6][:, ::-1]  # mirrored AND negated
    np.testing.assert_array_equal(m[0], expected_x)
    np.testing.assert_array_equal(m[2], n[2, 1:5, 2:6])


def test_sample_params_cover_crops_and_flip():
    rng = np.random.default_rng(0)
    ps = [sample_params(rng, load_size=286, crop_size=256, preprocess="resize_and_crop", flip=True) for _ in range(400)]
    tops = {p.top for p in ps}
    assert min(tops) >= 0 and max(tops) <= 30 and len(tops) > 20
    assert 0.4 < np.mean([p.flip for p in ps]) < 0.6
    q = sample_params(rng, load_size=256, crop_size=256, preprocess="resize", flip=False)
    assert (q.top, q.left, q.size, q.flip) == (0, 0, 256, False)


def test_to_model_range_matches_totensor_normalize():
    x = torch.arange(256, dtype=torch.uint8)
    y = to_model_range(x)
    assert y[0] == -1 and y[-1] == 1
    torch.testing.assert_close(y, (x.float() / 255 - 0.5) / 0.5)


def test_unpaired_dataset_is_seeded_and_independent(tmp_path):
    root = make_unpaired(tmp_path / "d", n_a=6, n_b=5)
    files = discover(root, "train")
    A, B = ImageBank(files.A, 36), ImageBank(files.B, 36)
    A.validate(progress=False), B.validate(progress=False)
    ds = UnpairedDataset(A, B, load_size=36, crop_size=32, seed=3)
    assert len(ds) == 6
    one, two = ds[(0, 4)], ds[(0, 4)]
    assert torch.equal(one["A"], two["A"]) and one["B_index"] == two["B_index"]
    assert one["A_index"] == 4
    # the sketch is drawn independently of the photo, and draws change across epochs
    draws = {ds[(e, 0)]["B_index"] for e in range(40)}
    assert len(draws) > 1
    assert one["A"].shape == (3, 32, 32) and one["A"].dtype == torch.uint8


def test_dataset_serves_normals_with_the_photo_crop(tmp_path):
    """The map's crop window and flip are the photo's own (not the sketch's, not a fixed one): both encode their pixel
    coordinates, and the window decoded from the photo crop must equal the one decoded from the map crop."""
    root = tmp_path / "d"
    rows, cols = np.mgrid[0:36, 0:36]
    for folder, n in (("trainA", 3), ("trainB", 3)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            img = np.stack([cols * 7, rows * 7, np.full_like(rows, 40 * i)], -1).astype(np.uint8)  # R = 7 col, G = 7 row
            Image.fromarray(img if folder == "trainA" else 255 - img).save(root / folder / f"{i}.png")
    files = discover(root, "train")
    A, B = ImageBank(files.A, 36), ImageBank(files.B, 36)
    A.validate(progress=False), B.validate(progress=False)
    nroot = tmp_path / "normals"
    for p in files.A:
        arr = np.zeros((3, 36, 36), np.float16)
        arr[0], arr[1], arr[2] = cols / 100, rows / 100, 1  # x = column / 100, y = row / 100
        q = target_path(nroot, root, p)
        q.parent.mkdir(parents=True, exist_ok=True)
        np.save(q, arr)
    nb = TargetBank([target_path(nroot, root, p) for p in files.A], 36, negate_x_on_flip=True)
    nb.validate("run facesketch normals")
    ds = UnpairedDataset(A, B, load_size=36, crop_size=32, seed=1, targets={"normals": nb}, context=("A_intrins",))
    windows, flips = set(), set()
    for k in range(16):
        item = ds[(k, k % 3)]
        photo = item["A"].numpy().astype(int)
        p_flip = photo[0, 0, 0] > photo[0, 0, -1]  # columns descend in a mirrored crop
        p_left = photo[0, 0, -1 if p_flip else 0] // 7
        p_top = photo[1, 0, 0] // 7
        x = item["A_normals"][0].float().numpy()
        n_flip = bool(x[0, 0] < 0)  # mirrored AND negated
        n_left = round(abs(x[0, -1 if n_flip else 0]) * 100)
        n_top = round(item["A_normals"][1, 0, 0].item() * 100)
        assert (n_top, n_left, n_flip) == (p_top, p_left, p_flip), k
        assert np.all(np.diff(np.abs(x[0])) < 0) if n_flip else np.all(np.diff(x[0]) > 0)
        k_ = item["A_intrins"]  # the crop's camera: principal point moved by the window, mirrored with the flip
        cx = 17.5 - p_left
        assert k_[0, 2].item() == pytest.approx(31 - cx if p_flip else cx) and k_[1, 2].item() == pytest.approx(17.5 - p_top)
        windows.add((p_top, p_left))
        flips.add(p_flip)
    assert len(windows) > 4 and flips == {True, False}


def test_missing_normal_maps_fail_with_the_command(tmp_path):
    nb = TargetBank([tmp_path / "x.npy"], 36)
    with pytest.raises(UserError, match="facesketch normals"):
        nb.validate("run `facesketch normals ROOT` first")


def test_epoch_sampler_shards_pads_and_resumes():
    s = EpochSampler(10, seed=1, rank=0, world=3)
    t = EpochSampler(10, seed=1, rank=1, world=3)
    u = EpochSampler(10, seed=1, rank=2, world=3)
    for smp in (s, t, u):
        smp.set_epoch(2)
    got = [list(x) for x in (s, t, u)]
    assert all(len(g) == 4 for g in got)  # 10 padded to 12
    assert {i for g in got for _, i in g} == set(range(10))
    assert all(e == 2 for g in got for e, _ in g)
    full = list(s)
    s.set_epoch(2, start=3)
    assert list(s) == full[3:] and len(s) == 1
    s.set_epoch(3)
    assert [i for _, i in s] != [i for _, i in full]


def test_unreadable_error_names_file(tmp_path):
    p = tmp_path / "x.png"
    p.write_text("nope")
    with pytest.raises(UnreadableImageError, match="x.png"):
        load_rgb(p)


def test_context_view_holds_the_crop_where_the_window_says(tmp_path):
    from facesketch.data.transforms import context_view

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)
    for p in [AugmentParams(1, 3, 32, False), AugmentParams(2, 0, 32, True), AugmentParams(4, 4, 32, True)]:
        full, (x0, y0, h, w) = context_view(img, p)
        assert full.shape == (3, 36, 36) and (h, w) == (32, 32)
        assert torch.equal(full[:, y0 : y0 + h, x0 : x0 + w], apply_image(img, p)), p
    root = make_unpaired(tmp_path / "d")
    files = discover(root, "train")
    A, B = ImageBank(files.A, 36), ImageBank(files.B, 36)
    item = UnpairedDataset(A, B, load_size=36, crop_size=32, seed=1, context=("A_full", "A_window"))[(0, 2)]
    x0, y0, h, w = item["A_window"].tolist()
    assert torch.equal(item["A_full"][:, y0 : y0 + h, x0 : x0 + w], item["A"])
    assert "A_full" not in UnpairedDataset(A, B, load_size=36, crop_size=32, seed=1)[(0, 2)]
