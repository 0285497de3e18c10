"""`facesketch evaluate` end to end: pairing, missing/unreadable/constant inputs, reports, --model, training hook."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conformance_utils import CONF
from PIL import Image
from scipy import ndimage

from facesketch.cli import main
from facesketch.errors import UserError
from facesketch.evaluation.protocol import pair_by_stem, pair_fs2k

NO_LPIPS = "ssim,ms_ssim,fsim,scoot,ssim_wang2003"  # metric list for tests that must not depend on cached weights


def sketch_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    small = rng.random((h // 8 + 2, w // 8 + 2))
    field = ndimage.zoom(small, 8, order=3)[:h, :w]
    return np.clip(255 - 200 * (np.abs(field - 0.5) < 0.06) - rng.normal(0, 6, (h, w)), 0, 255).astype(np.uint8)


def make_fs2k(root: Path, seed: int = 0) -> Path:
    """A 5-record FS2K-shaped test split: photo1 at 170x176 (rows x cols), photo3 at 180x200; image0002 in both."""
    rng = np.random.default_rng(seed)
    recs = [("photo1", "0001"), ("photo1", "0002"), ("photo1", "0003"), ("photo1", "0004"), ("photo3", "0002")]
    anno = []
    for i, (src, num) in enumerate(recs):
        n = src[-1]
        h, w = (170, 176) if n == "1" else (180, 200)
        (root / "photo" / src).mkdir(parents=True, exist_ok=True)
        (root / "sketch" / f"sketch{n}").mkdir(parents=True, exist_ok=True)
        sk = sketch_like(rng, h, w)
        Image.fromarray(np.dstack([sk, sk, sk])).save(root / "sketch" / f"sketch{n}" / f"sketch{num}.jpg", quality=95)
        photo = np.dstack([sk, np.roll(sk, 3, 1), 255 - sk]).astype(np.uint8)
        Image.fromarray(photo).save(root / "photo" / src / f"image{num}.jpg", quality=95)
        anno.append({"image_name": f"{src}/image{num}", "style": i % 3, "gender": i % 2, "hair": 0, "earring": 1,
                     "smile": i % 2, "frontal_face": 0, "skin_color": [1, 2]})
    (root / "anno_test.json").write_text(json.dumps(anno))
    (root / "anno_train.json").write_text("[]")
    return root


def gt_of(root: Path, image_name: str) -> np.ndarray:
    src, img = image_name.split("/")
    return np.asarray(Image.open(root / "sketch" / f"sketch{src[-1]}" / f"sketch{img[5:]}.jpg").convert("L"))


def write_preds(fs2k: Path, out: Path, names: dict[str, str], seed: int = 1) -> Path:
    """Predictions = ground truth lightly perturbed, saved under the given file names {image_name: relpath}."""
    rng = np.random.default_rng(seed)
    for image_name, rel in names.items():
        g = gt_of(fs2k, image_name).astype(np.float64)
        p = np.clip(g + rng.normal(0, 8, g.shape), 0, 255).astype(np.uint8)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(p, "L").save(out / rel)
    return out


ALL_NAMES = {"photo1/image0001": "photo1_image0001.png", "photo1/image0002": "photo1/image0002.png",
             "photo1/image0003": "image0003.png", "photo1/image0004": "photo1_image0004.png",
             "photo3/image0002": "photo3_image0002.png"}  # fmt: skip


def run_cli(*args) -> int:
    return main(["evaluate", *map(str, args)])


@pytest.fixture()
def fake_fs2k(tmp_path) -> Path:
    return make_fs2k(tmp_path / "FS2K")


# --------------------------------------------------------------------------------------------------- pairing


def test_pair_fs2k_naming_variants_and_errors(fake_fs2k, tmp_path):
    from facesketch.data.fs2k import load_split

    records = load_split(fake_fs2k, "test")
    pred = write_preds(fake_fs2k, tmp_path / "p", ALL_NAMES)
    (pred / "notes.txt").write_text("ignored")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(pred / "photo2_image0009.png")  # not in the split
    pairing = pair_fs2k(pred, records)
    assert pairing.missing == [] and [p.name for p in pairing.extra] == ["photo2_image0009.png"]
    assert [it.pred.relative_to(pred).as_posix() for it in pairing.items] == list(ALL_NAMES.values())
    assert pairing.items[4].attrs["source"] == "photo3" and pairing.items[0].attrs["style"] == 0

    # image0002 exists in photo1 and photo3: a bare name is ambiguous
    (pred / "image0002.png").write_bytes((pred / "photo1" / "image0002.png").read_bytes())
    with pytest.raises(UserError, match="ambiguous.*photo1/image0002 and photo3/image0002"):
        pair_fs2k(pred, records)
    (pred / "image0002.png").unlink()
    # two files for one record
    shutil.copy(pred / "photo1_image0001.png", pred / "photo1_image0001.jpg")
    with pytest.raises(UserError, match="two predictions for photo1/image0001"):
        pair_fs2k(pred, records)


def test_pair_by_stem(tmp_path):
    for d, names in (("gt", ["a.png", "b.jpg", "c.png"]), ("pred", ["a.jpg", "b.png", "zzz.png"])):
        (tmp_path / d).mkdir()
        for n in names:
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / d / n)
    p = pair_by_stem(tmp_path / "pred", tmp_path / "gt")
    assert [it.id for it in p.items] == ["a", "b", "c"] and p.missing == ["c"]
    assert [x.name for x in p.extra] == ["zzz.png"]


# --------------------------------------------------------------------------------------------------- CLI


def test_cli_missing_needs_allow_missing(fake_fs2k, tmp_path, capsys):
    names = dict(list(ALL_NAMES.items())[:3])
    pred = write_preds(fake_fs2k, tmp_path / "p", names)
    assert run_cli("--pred", pred, "--fs2k", fake_fs2k, "--out", tmp_path / "o", "--metrics", NO_LPIPS) == 2
    err = capsys.readouterr().err
    assert "2 of 5 predictions missing" in err and "photo1_image0004" in err and "--allow-missing" in err
    assert not (tmp_path / "o" / "metrics.json").exists()

    assert run_cli("--pred", pred, "--fs2k", fake_fs2k, "--out", tmp_path / "o", "--metrics", NO_LPIPS,
                   "--allow-missing") == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["counts"]["evaluated"] == 3 and m["counts"]["missing"] == 2
    assert m["missing_ids"] == ["photo1_image0004", "photo3_image0002"]
    assert m["split"] == "test" and m["protocol"]["eval_size"] is None


def test_cli_reports_nan_rule_unreadable_and_resize(fake_fs2k, tmp_path, capsys):
    pred = write_preds(fake_fs2k, tmp_path / "p", ALL_NAMES)
    # a constant prediction (FSIM undefined), a 256x256 RGB one (resized to the GT size), an unreadable one
    Image.fromarray(np.full((170, 176), 128, np.uint8)).save(pred / "photo1_image0001.png")
    g = gt_of(fake_fs2k, "photo1/image0004")
    Image.fromarray(np.dstack([g] * 3)).resize((256, 256), Image.BICUBIC).save(pred / "photo1_image0004.png")
    (pred / "photo3_image0002.png").write_bytes(b"not an image")
    out = tmp_path / "o"
    assert run_cli("--pred", pred, "--fs2k", fake_fs2k, "--out", out, "--metrics", NO_LPIPS) == 2
    assert "unreadable" in capsys.readouterr().err and not (out / "metrics.json").exists()

    assert run_cli("--pred", pred, "--fs2k", fake_fs2k, "--out", out, "--metrics", NO_LPIPS, "--allow-missing") == 0
    assert "photo3_image0002.png" in capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["unreadable"][0]["id"] == "photo3_image0002" and m["counts"]["unreadable"] == 1
    assert m["fsim"] is None and m["n_nan"]["fsim"] == 1 and m["nan_ids"]["fsim"] == ["photo1_image0001"]
    rows = {r["id"]: r for r in csv.DictReader(open(out / "per_image.csv"))}
    finite = [float(r["fsim"]) for k, r in rows.items() if k != "photo1_image0001"]
    assert m["fsim_nan_excluded"] == pytest.approx(np.mean(finite))
    assert math.isnan(float(rows["photo1_image0001"]["fsim"])) and 0 < float(rows["photo1_image0001"]["scoot"]) < 1
    assert m["scoot"] is not None and m["n_nan"]["scoot"] == 0
    r4 = rows["photo1_image0004"]
    assert (r4["pred_hw"], r4["gt_hw"], r4["eval_hw"], r4["resized"]) == ("256x256", "170x176", "170x176", "1")
    assert float(r4["ssim"]) > 0.9 and rows["photo1_image0002"]["resized"] == "0"
    assert set(m["subsets"]) >= {"style", "gender", "source"} and m["subsets"]["source"]["photo1"]["n"] == 4
    assert m["protocol"]["grey_weights"] == [0.298936021293775, 0.587043074451121, 0.114020904255103]
    assert "pil_bicubic" in m["protocol"]["resize_method"] and m["protocol"]["ssim_variant"].startswith("matlab_ipt")
    table = (out / "table.md").read_text()
    assert "| **ours: p** | this evaluation |" in table
    for row in ("CycleGAN", "Learn2Draw", "FSGAN", "paper (full model)"):
        assert f"| {row} | reported in the paper (Table I) |" in table
    for row in ("w/o edge & normal", "w/o normal", "w/o edge"):
        assert f"| {row} | reported in the paper (Table II) |" in table
    assert "fsim_nan_excluded" in table and "| gender |" in table


def test_cli_size_option_and_gt_dir_mode(fake_fs2k, tmp_path, capsys):
    pred = write_preds(fake_fs2k, tmp_path / "p", {"photo1/image0001": "a.png", "photo3/image0002": "b.png"})
    gt = tmp_path / "gt"
    gt.mkdir()
    Image.fromarray(gt_of(fake_fs2k, "photo1/image0001")).save(gt / "a.png")
    Image.fromarray(gt_of(fake_fs2k, "photo3/image0002")).save(gt / "b.jpg", quality=95)
    out = tmp_path / "o"
    assert run_cli("--pred", pred, "--gt", gt, "--out", out, "--metrics", NO_LPIPS, "--size", 192) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"]["eval_size"] == 192 and "192x192" in m["protocol"]["eval_size_rule"]
    assert m["split"] is None and m["subsets"] == {} and m["counts"]["evaluated"] == 2
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert {r["eval_hw"] for r in rows} == {"192x192"} and rows[0]["id"] == "a"
    assert "NOT the FS2K rule" in (out / "table.md").read_text()
    assert run_cli("--pred", pred, "--gt", gt, "--out", out, "--size", 100) == 2
    assert "--size 100" in capsys.readouterr().err
    assert run_cli("--pred", pred, "--gt", gt, "--out", out, "--metrics", "ssim,bogus") == 2
    assert "bogus" in capsys.readouterr().err
    assert run_cli("--pred", tmp_path / "nothing", "--gt", gt, "--out", out) == 2


def test_cli_no_match_and_help(fake_fs2k, tmp_path, capsys):
    (tmp_path / "p").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "p" / "random_name.png")
    assert run_cli("--pred", tmp_path / "p", "--fs2k", fake_fs2k, "--out", tmp_path / "o") == 2
    assert "photo1_image0110.png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--help"])
    assert e.value.code == 0 and "--allow-missing" in capsys.readouterr().out


def test_cli_model_translates_then_evaluates(fake_fs2k, tmp_path):
    pytest.importorskip("facesketch.translate", reason="facesketch.translate (Translator) not available")
    from facesketch.models.export_file import export_generators
    from facesketch.models.generators import build_generator

    meta = {"generator": "attention", "ngf": 4, "n_blocks": 1, "n_masks": 3, "crop_size": 32, "load_size": 36,
            "preprocess": "resize_and_crop", "name": "tiny"}  # fmt: skip
    gens = {k: build_generator("attention", ngf=4, n_blocks=1, n_masks=3) for k in ("G_A", "G_B")}
    export = export_generators(tmp_path / "tiny.safetensors", gens, meta)
    out = tmp_path / "o"
    assert run_cli("--model", export, "--fs2k", fake_fs2k, "--out", out, "--metrics", "ssim,scoot,fsim") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["counts"]["evaluated"] == 5 and m["label"] == "tiny.safetensors"
    preds = sorted(p.name for p in (out / "predictions").iterdir())
    assert preds[0] == "photo1_image0001.png" and len(preds) == 5
    assert Image.open(out / "predictions" / preds[0]).size == (32, 32)
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert rows[0]["pred_hw"] == "32x32" and rows[0]["eval_hw"] == "170x176"


def test_during_training_hook(fake_fs2k):
    from facesketch.data.fs2k import load_split
    from facesketch.evaluation.during_training import evaluate_translator
    from facesketch.evaluation.runner import lpips_model

    records = load_split(fake_fs2k, "test")[:3]
    calls = []

    def translate(photos):  # the fake photos carry their sketch in the red channel: return it at 256x256, as RGB
        calls.append(len(photos))
        return [np.dstack([np.asarray(Image.fromarray(p[..., 0]).resize((256, 256), Image.BICUBIC))] * 3) for p in photos]

    try:
        lpips_model("alex", "cpu")
        metrics = ("lpips", "ssim", "ms_ssim", "fsim", "scoot")
    except UserError:
        metrics = ("ssim", "ms_ssim", "fsim", "scoot")
    res = evaluate_translator(translate, records, batch_size=2, metrics=metrics, device=torch.device("cpu"))
    assert calls == [2, 1] and list(res) == list(metrics)
    # the same numbers by hand: each output scored against its own record's GT at the GT's native size
    from facesketch.data.images import load_rgb_array
    from facesketch.evaluation.protocol import load_grey_u8, resize_grey
    from facesketch.evaluation.runner import score_pairs

    gts = [load_grey_u8(r.sketch) for r in records]
    preds = [resize_grey(translate([load_rgb_array(r.photo)])[0][..., 0], g.shape) for r, g in zip(records, gts)]
    want = score_pairs(gts, preds, metrics=metrics, workers=0)
    for m in metrics:
        assert res[m] == pytest.approx(want[m].mean(), abs=1e-12)
    shuffled = evaluate_translator(lambda ps: translate(ps[::-1]), records[:2], metrics=("ssim",))
    assert shuffled["ssim"] < want["ssim"][:2].mean() - 0.2  # wrong pairing is visible
    res_bad = evaluate_translator(lambda ps: [np.zeros((64, 64, 3), np.uint8) for _ in ps], records,
                                  metrics=("fsim", "scoot"))
    assert math.isnan(res_bad["fsim"]) and np.isfinite(res_bad["scoot"])  # constant output: FSIM NaN by rule


# --------------------------------------------------------------------------------------------------- conformance


@pytest.mark.conformance
def test_cli_run_small_matches_expected(fs2k_dir, tmp_path):
    d = CONF / "metrics"
    path = d / "run_small_expected.json"
    if not path.exists():
        pytest.skip(f"{path} not found (set FACESKETCH_CONFORMANCE_DIR)")
    spec = json.loads(path.read_text())
    pred = tmp_path / "pred"
    pred.mkdir()
    for im in spec["images"]:  # use the explicit mapping, named by record id
        src = d / im["prediction"]
        shutil.copy(src, pred / (im["fs2k_image_name"].replace("/", "_") + src.suffix))
    from facesketch.evaluation.runner import lpips_model

    try:
        lpips_model("alex", "cpu")
        metrics, have_lpips = "all", True
    except UserError:
        metrics, have_lpips = NO_LPIPS, False
    out = tmp_path / "o"
    assert run_cli("--pred", pred, "--fs2k", fs2k_dir, "--out", out, "--allow-missing", "--metrics", metrics) == 0
    m = json.loads((out / "metrics.json").read_text())
    rows = {r["image_name"]: r for r in csv.DictReader(open(out / "per_image.csv"))}
    assert m["counts"]["evaluated"] == len(spec["images"])
    tol = {"scoot": 1e-9, "fsim": 1e-6, "ssim": 1e-9, "ssim_wang2003": 1e-9, "ms_ssim": 1e-9, "lpips": 1e-5}
    ref = {"scoot": "scoot", "fsim": "fsim", "ssim": "ssim_matlab_ipt", "ssim_wang2003": "ssim_wang2003",
           "ms_ssim": "msssim_wang", "lpips": "lpips_alex"}  # fmt: skip
    for ours, theirs in ref.items():
        if ours == "lpips" and not have_lpips:
            continue
        for im in spec["images"]:
            assert abs(float(rows[im["fs2k_image_name"]][ours]) - im["scores"][theirs]) <= tol[ours], (ours, im["id"])
        assert abs(m[ours] - spec["mean"][theirs]) <= tol[ours], ours
    assert m["counts"]["msssim_negative_term"] == sum(im["msssim_negative_term"] for im in spec["images"])
    if not have_lpips:
        pytest.skip("LPIPS column not checked: weights absent (run `facesketch weights fetch lpips-heads alexnet`)")


def test_a_toy_metric_plugs_in_through_the_registry_alone(tmp_path, monkeypatch):
    """Register a metric: the runner scores it, metrics.json and table.md carry it, the curves plot it."""
    from facesketch.evaluation import registry
    from facesketch.report.plots import plot_metrics

    toy = registry.Metric("toy_mae", "Toy MAE", False, lambda gt, gen, ctx: np.abs(gt.astype(float) - gen).mean((1, 2)))
    monkeypatch.setitem(registry.REGISTRY, "toy_mae", toy)
    rng = np.random.default_rng(3)
    pred, gt = tmp_path / "p", tmp_path / "g"
    pred.mkdir(), gt.mkdir()
    g = sketch_like(rng, 64, 64)
    Image.fromarray(g).save(gt / "a.png")
    p = np.clip(g.astype(int) + 10, 0, 255).astype(np.uint8)
    Image.fromarray(p).save(pred / "a.png")
    out = tmp_path / "o"
    assert run_cli("--pred", pred, "--gt", gt, "--out", out, "--metrics", "ssim,toy_mae") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["metrics"] == ["ssim", "toy_mae"] and m["toy_mae"] == pytest.approx(np.abs(g.astype(float) - p).mean())
    assert "Toy MAE" in (out / "table.md").read_text()
    records = [{"step": 1, "epoch": 1.0, "eval/toy_mae": 3.0}, {"step": 2, "epoch": 2.0, "eval/toy_mae": 2.0}]
    assert plot_metrics(records, tmp_path / "m.png").is_file()
