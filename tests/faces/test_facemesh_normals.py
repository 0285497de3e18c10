"""The face-mesh normal prior (the offline substitute for DSINE) and its normal loss, with MediaPipe's real weights."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conformance_utils import ROOT
from helpers import tiny_overrides
from PIL import Image

from facesketch.config import load_config
from facesketch.errors import UserError
from facesketch.faces.normals import FaceMeshNormals, rasterise, vertex_normals
from facesketch.losses.priors import CycleTensors, FaceMeshNormalLoss

WEIGHTS = Path(os.environ.get("FACESKETCH_MEDIAPIPE_DIR", ROOT / ".." / "shared" / "weights" / "mediapipe")).resolve()
FRONTAL = ["photo1/image0788.jpg", "photo1/image0800.jpg", "photo3/image0204.jpg"]  # FS2K test photos


@pytest.fixture(scope="module")
def est():
    if not (WEIGHTS / "blazeface_landmark.pth").is_file():
        pytest.skip(f"MediaPipe weights not found in {WEIGHTS} (set FACESKETCH_MEDIAPIPE_DIR)")
    return FaceMeshNormals(WEIGHTS)


def _photo(fs2k: Path, name: str, size: int = 286) -> torch.Tensor:
    img = Image.open(fs2k / "photo" / name).convert("RGB").resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None]  # uint8 (1, 3, S, S)


# ---------------------------------------------------------------------------------------------- the rasteriser
def test_rasteriser_keeps_the_nearest_triangle_and_respects_the_window():
    xy = np.array([[0, 0], [9, 0], [0, 9], [2, 2], [12, 2], [2, 12]], np.float64)
    z = np.array([5, 5, 5, 1, 1, 1], np.float64)  # the second triangle is nearer
    tri = np.array([[0, 1, 2], [3, 4, 5]])
    ids = rasterise(xy, z, tri, 0, 0, 14, 14)
    assert ids[1, 1] == 0 and ids[3, 3] == 1 and ids[10, 3] == 1 and ids[13, 13] == -1
    z2 = np.array([1, 1, 1, 5, 5, 5], np.float64)  # now the first one is nearer where they overlap
    assert rasterise(xy, z2, tri, 0, 0, 14, 14)[3, 3] == 0
    win = rasterise(xy, z, tri, 2, 3, 5, 6)  # rows 3..7, columns 2..7 of the same frame
    assert np.array_equal(win, ids[3:8, 2:8])


def test_rasteriser_matches_a_brute_force_point_in_triangle_test():
    rng = np.random.default_rng(0)
    xy, z = rng.uniform(0, 30, (40, 2)), rng.uniform(0, 10, 40)
    tri = rng.choice(40, (25, 3))
    ids = rasterise(xy, z, tri, 0, 0, 30, 30)
    for (i, j) in [(int(a), int(b)) for a, b in rng.integers(0, 30, (200, 2))]:
        best, best_z = -1, np.inf
        for k, t in enumerate(tri):
            a, b, c = xy[t]
            m = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
            if abs(np.linalg.det(m)) < 1e-9:
                continue
            u, v = np.linalg.solve(m, [j - a[0], i - a[1]])
            if u >= -1e-9 and v >= -1e-9 and u + v <= 1 + 1e-9:
                d = (1 - u - v) * z[t[0]] + u * z[t[1]] + v * z[t[2]]
                if d < best_z:
                    best, best_z = k, d
        assert ids[i, j] == best, (i, j)


def test_vertex_normals_of_a_mesh_facing_the_camera_point_at_it():
    # a square in the image plane, wound counter-clockwise seen from the front (y up), i.e. clockwise in image axes
    v = torch.tensor([[[0.0, 0, 0], [0, 10, 0], [10, 10, 0], [10, 0, 0]]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]])
    n = vertex_normals(v, tri)
    assert torch.allclose(n, torch.tensor([0.0, 0, 1]).expand_as(n), atol=1e-6)


# ---------------------------------------------------------------------------------------------- real photos
def test_normals_face_the_camera_and_mirror_with_a_flip(est, fs2k_dir):
    for name in FRONTAL:
        x = _photo(fs2k_dir, name).float() / 255
        n, m = est(x)
        face = m[0, 0] > 0
        assert 0.05 < face.float().mean() < 0.6, name  # a face-sized region, not the frame
        assert (n[0, 2][face] > 0).float().mean() > 0.95, name  # facing the camera
        assert torch.allclose(n[0].norm(dim=0)[face], torch.ones(()), atol=1e-3)
        assert n[0][:, ~face].abs().max() == 0  # zero off the face
        nf, mf = est(torch.flip(x, [3]))
        both = face & (torch.flip(mf[0, 0], [1]) > 0)
        x_here, x_mirrored = n[0, 0][both], -torch.flip(nf[0, 0], [1])[both]
        assert np.corrcoef(x_here.numpy(), x_mirrored.numpy())[0, 1] > 0.9, name
    # DSINE's convention on the first photo: forehead faces up (y > 0), chin down (y < 0), the image-left cheek left (x > 0)
    n, m = est(_photo(fs2k_dir, FRONTAL[0]).float() / 255)
    ys, xs = torch.nonzero(m[0, 0] > 0, as_tuple=True)
    top, bottom = ys < ys.min() + (ys.max() - ys.min()) // 6, ys > ys.max() - (ys.max() - ys.min()) // 8
    left = xs < xs.min() + (xs.max() - xs.min()) // 6
    assert n[0, 1][ys[top], xs[top]].mean() > 0.1 and n[0, 1][ys[bottom], xs[bottom]].mean() < -0.1
    assert n[0, 0][ys[left], xs[left]].mean() > 0.3


def test_a_photo_without_a_face_gets_an_empty_mask_and_a_finite_zero_loss(est, fs2k_dir):
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 286, 286), dtype=np.uint8))
    n, m = est(noise.float() / 255)
    assert m.sum() == 0 and n.abs().sum() == 0 and torch.isfinite(n).all()
    face = _photo(fs2k_dir, FRONTAL[0])
    full = torch.cat([face, noise])
    with torch.no_grad():
        target, _ = est(full.float() / 255)
    win = torch.tensor([[79, 79, 128, 128]] * 2)
    crops = full[:, :, 79:207, 79:207].float() / 127.5 - 1
    rec = (crops + 0.2 * torch.randn_like(crops)).clamp(-1, 1).requires_grad_()
    term = FaceMeshNormalLoss(est, 10.0)
    t = CycleTensors(crops, crops, crops, rec, crops, crops, {"normals": target[:, :, 79:207, 79:207]}, {"A_full": full, "A_window": win})
    loss = term(t)
    assert torch.isfinite(loss) and loss > 0 and term.stats()["normal_empty"] == 0.5
    loss.backward()
    assert rec.grad[0].abs().sum() > 0 and rec.grad[1].abs().sum() == 0  # the face-less photo contributes nothing
    t2 = CycleTensors(crops[1:], crops[1:], crops[1:], rec[1:], crops[1:], crops[1:], {"normals": target[1:, :, 79:207, 79:207]},
                      {"A_full": full[1:], "A_window": win[1:]})  # fmt: skip
    only_noise = term(t2)
    assert only_noise.item() == 0.0 and term.stats()["normal_empty"] == 1.0


def test_gradients_reach_both_generators_and_not_the_prior(est, fs2k_dir):
    from facesketch.models.generators import build_generator
    from facesketch.training.step import CycleGenerators

    torch.manual_seed(0)
    G = CycleGenerators(build_generator("attention", ngf=4, n_blocks=1, n_masks=3),
                        build_generator("attention", ngf=4, n_blocks=1, n_masks=3))  # fmt: skip
    full = _photo(fs2k_dir, FRONTAL[0])
    with torch.no_grad():
        target, _ = est(full.float() / 255)
    real = full[:, :, 79:207, 79:207].float() / 127.5 - 1
    o = G(real, real)
    term = FaceMeshNormalLoss(est, 10.0)
    t = CycleTensors(real, real, o["fake_B"], o["rec_A"], o["fake_A"], o["rec_B"], {"normals": target[:, :, 79:207, 79:207]},
                     {"A_full": full, "A_window": torch.tensor([[79, 79, 128, 128]])})  # fmt: skip
    term(t).backward()
    for g in (G.G_A, G.G_B):
        assert sum(float(p.grad.abs().sum()) for p in g.parameters() if p.grad is not None) > 0
    assert all(p.grad is None and not p.requires_grad for p in est.parameters())


# ---------------------------------------------------------------------------------------------- precompute + train
def _face_dataset(fs2k: Path, root: Path) -> Path:
    for folder, names in (("trainA", FRONTAL[:2]), ("testA", FRONTAL[2:])):
        (root / folder).mkdir(parents=True)
        for n in names:
            shutil.copy(fs2k / "photo" / n, root / folder / n.replace("/", "_"))
    for folder in ("trainB", "testB"):
        (root / folder).mkdir(parents=True)
        for i, p in enumerate(sorted((fs2k / "sketch" / "sketch1").glob("*.jpg"))[:2]):
            shutil.copy(p, root / folder / f"s{i}.jpg")
    return root


def test_two_training_steps_with_the_face_mesh_normal_loss(est, fs2k_dir, tmp_path):
    from facesketch.losses.targets import precompute_normals
    from facesketch.training.loop import train

    data = _face_dataset(fs2k_dir, tmp_path / "d")
    counts = precompute_normals(data, None, size=96, estimator="facemesh", mediapipe_dir=str(WEIGHTS), progress=False)
    assert counts == {"total": 2, "skipped": 0, "done": 2, "unreadable": 0, "no_face": 0}
    folder = data / "normals-facemesh"  # the face-mesh default, apart from DSINE's ROOT/normals
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["settings"]["estimator"] == "facemesh" and manifest["count"] == 2
    maps = sorted(folder.rglob("*.npy"))
    assert len(maps) == 2 and all(np.load(p).shape == (3, 96, 96) and np.any(np.load(p)) for p in maps)
    over = tiny_overrides(data, **{"data.load_size": 96, "data.crop_size": 64, "loss.lambda_normal": 10,
                                   "priors.normal_estimator": "facemesh", "priors.mediapipe_dir": str(WEIGHTS),
                                   "train.max_steps": 2, "train.batch_size": 2})  # fmt: skip
    summary = train(load_config(None, over), tmp_path / "run")
    assert summary["step"] == 2
    lines = [json.loads(s) for s in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    steps = [d for d in lines if "normal" in d]
    assert len(steps) == 2 and all(np.isfinite(d["normal"]) and 0 <= d["normal_empty"] <= 1 for d in steps)
    # maps of one estimator never stand in for another's: DSINE (synthetic here) refuses the face-mesh folder
    dsine = tiny_overrides(data, **{"data.load_size": 96, "data.crop_size": 64, "loss.lambda_normal": 10,
                                    "priors.dsine_synthetic_seed": 0, "data.normals_dir": str(folder)})  # fmt: skip
    with pytest.raises(UserError, match="computed by facemesh, but priors.normal_estimator is dsine"):
        train(load_config(None, dsine), tmp_path / "run2")


def test_the_paper_means_dsine_and_the_face_mesh_rows_are_presets_of_their_own():
    assert load_config("paper").priors.normal_estimator == "dsine"
    for name in ("fs2k-cpu-full", "fs2k-cpu-no-edge"):
        cfg = load_config(name)
        assert cfg.priors.normal_estimator == "facemesh" and cfg.loss.lambda_normal == 10
        assert cfg.model.generator == "attention" and cfg.model.image_size == 256  # extends fs2k-cpu
    for name in ("fs2k-cpu-no-normal", "fs2k-cpu-no-edge-normal"):
        assert load_config(name).loss.lambda_normal == 0
    rows = [load_config(n) for n in ("fs2k-cpu-full", "fs2k-cpu-no-normal", "fs2k-cpu-no-edge", "fs2k-cpu-no-edge-normal")]
    assert len({(c.train.seed, c.train.n_epochs, c.train.n_epochs_decay, c.data.crop_size, c.model.ngf) for c in rows}) == 1


def test_a_preset_extends_another_and_loops_are_refused(tmp_path):
    (tmp_path / "mine.yaml").write_text("extends: fs2k-cpu-full\ntrain:\n  n_epochs: 1\n")
    cfg = load_config(str(tmp_path / "mine.yaml"))
    assert cfg.train.n_epochs == 1 and cfg.priors.normal_estimator == "facemesh" and cfg.model.ngf == 32
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(UserError, match="loop"):
        load_config(str(tmp_path / "a.yaml"))
