"""Metric values: grey/resize protocol, SSIM (IPT and Wang), MS-SSIM, FSIM, SCOOT, LPIPS; conformance with the MATLAB code."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from conformance_utils import CONF
from PIL import Image
from scipy import ndimage

from facesketch.data.images import UnreadableImageError
from facesketch.errors import UserError
from facesketch.evaluation import METRICS
from facesketch.evaluation.fsim import fsim, fsim_batch, fsim_downsample
from facesketch.evaluation.msssim import (
    WEIGHTS,
    downsample2,
    min_side,
    ms_ssim,
    ms_ssim_batch,
)
from facesketch.evaluation.protocol import (
    GREY_WEIGHTS,
    load_grey_u8,
    resize_grey,
    rgb_to_grey_u8,
    round_half_away_u8,
)
from facesketch.evaluation.runner import score_pairs, summarize
from facesketch.evaluation.scoot import glcm_features, scoot, scoot_batch
from facesketch.evaluation.ssim import (
    C1,
    C2,
    gaussian_kernel_1d,
    ssim,
    ssim_batch,
    ssim_wang2003,
)

METRIC_DIR = CONF / "metrics"
# Absolute tolerances from metrics/README.md ("Recommended tolerances"); that set has no tolerances.json.
TOL = {"scoot": 1e-9, "fsim": 1e-6, "ssim_matlab_ipt": 1e-9, "ssim_wang2003": 1e-9, "msssim_wang": 1e-9, "lpips_alex": 1e-5}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def sketch_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(H, W) uint8: white paper with dark smooth strokes and some noise, like a pencil sketch."""
    small = rng.random((h // 8 + 2, w // 8 + 2))
    field = ndimage.zoom(small, 8, order=3)[:h, :w]
    img = 255 - 200 * (np.abs(field - 0.5) < 0.06) - rng.normal(0, 6, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def lpips_or_skip():
    from facesketch.evaluation.runner import lpips_model

    try:
        return lpips_model("alex", "cpu")
    except UserError as e:
        pytest.skip(f"LPIPS weights absent: {e}")


# --------------------------------------------------------------------------------------------------- protocol


def test_round_half_away_and_grey_weights():
    assert round_half_away_u8(np.array([0.5, 1.5, 2.5, 254.5, 255.7, -3.0])).tolist() == [1, 2, 3, 255, 255, 0]
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    want = [math.floor(GREY_WEIGHTS[0] * 255 + 0.5), math.floor(GREY_WEIGHTS[1] * 255 + 0.5),
            math.floor(GREY_WEIGHTS[2] * 255 + 0.5), math.floor(sum(w * v for w, v in zip(GREY_WEIGHTS, (10, 20, 30))) + 0.5)]
    assert rgb_to_grey_u8(rgb)[0].tolist() == want == [76, 150, 29, 18]


def test_loader_ignores_alpha_and_reads_modes(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "b.png")
    assert np.array_equal(load_grey_u8(tmp_path / "a.png"), load_grey_u8(tmp_path / "b.png"))  # not composited
    assert np.array_equal(load_grey_u8(tmp_path / "b.png"), rgb_to_grey_u8(rgb))
    grey = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    assert np.array_equal(load_grey_u8(tmp_path / "g.png"), grey)
    assert np.array_equal(load_grey_u8(tmp_path / "la.png"), grey)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit PNG
    assert np.array_equal(load_grey_u8(tmp_path / "g16.png"), grey)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    pal = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert np.array_equal(load_grey_u8(tmp_path / "p.png"), rgb_to_grey_u8(pal))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(UnreadableImageError, match="bad.png"):
        load_grey_u8(tmp_path / "bad.png")


def test_resize_is_pil_bicubic_on_grey():
    g = sketch_like(np.random.default_rng(1), 64, 48)
    out = resize_grey(g, (50, 30))
    assert out.shape == (50, 30) and out.dtype == np.uint8
    assert np.array_equal(out, np.asarray(Image.fromarray(g, "L").resize((30, 50), Image.BICUBIC)))
    assert resize_grey(g, g.shape) is g


# --------------------------------------------------------------------------------------------------- SSIM / MS-SSIM


def _ssim_map_reference(x, y, mode):
    """Plain 2-D version: full 11x11 window (outer product), 'replicate' via np.pad edge, or 'valid'."""
    g = gaussian_kernel_1d()
    win = np.outer(g, g)
    x, y = x.astype(np.float64), y.astype(np.float64)
    if mode == "replicate":
        x, y = np.pad(x, 5, mode="edge"), np.pad(y, 5, mode="edge")
    from scipy.signal import correlate2d

    f = lambda a: correlate2d(a, win, mode="valid")  # noqa: E731
    mx, my = f(x), f(y)
    sx, sy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    return ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sx + sy + C2))


def test_ssim_variants_match_direct_2d_definition():
    rng = np.random.default_rng(2)
    x, y = sketch_like(rng, 37, 29), sketch_like(rng, 37, 29)
    assert abs(ssim(x, y) - _ssim_map_reference(x, y, "replicate").mean()) < 1e-12
    assert abs(ssim_wang2003(x, y) - _ssim_map_reference(x, y, "valid").mean()) < 1e-12
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # the border matters on white-framed sketches: the two variants differ
    assert abs(ssim(x, y) - ssim_wang2003(x, y)) > 1e-4


def test_downsample2_is_symmetric_pad_2x2_mean():
    a = np.arange(5 * 7, dtype=np.float64).reshape(1, 5, 7)
    d = downsample2(a)
    assert d.shape == (1, 3, 4)
    p = np.pad(a[0], ((0, 1), (0, 1)), mode="symmetric")
    for i in range(3):
        for j in range(4):
            assert d[0, i, j] == pytest.approx(p[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean())


def test_ms_ssim_identity_clamp_and_small_images():
    rng = np.random.default_rng(3)
    x = sketch_like(rng, 176, 170)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    score, neg = ms_ssim_batch((255 - x)[None], x[None])  # anti-correlated: negative contrast-structure terms
    assert neg[0] and score[0] == 0.0
    assert min_side() == 161
    small = sketch_like(rng, 160, 200)
    assert math.isnan(ms_ssim(small, small))
    assert WEIGHTS.tolist() == [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]  # Wang's published values (sum 1.0001)


# --------------------------------------------------------------------------------------------------- FSIM


def test_fsim_identity_nan_rule_and_precisions():
    rng = np.random.default_rng(4)
    x, y = sketch_like(rng, 64, 80), sketch_like(rng, 64, 80)
    assert fsim(x, x) == pytest.approx(1.0, abs=1e-12)
    const = np.full_like(x, 128)
    out = fsim_batch(np.stack([x, const, x]), np.stack([const, x, y]))  # either side constant -> NaN, no raise
    assert math.isnan(out[0]) and math.isnan(out[1]) and 0 < out[2] < 1
    f64 = fsim_batch(x[None], y[None], precision="float64")[0]
    f32 = fsim_batch(x[None], y[None], precision="float32")[0]
    assert abs(f64 - f32) < 1e-6
    with pytest.raises(ValueError):
        fsim_batch(x[None], y[None], precision="float16")


def test_fsim_downsample_follows_conv2_same():
    rng = np.random.default_rng(5)
    a = rng.random((1, 512, 520))
    d = fsim_downsample(a)  # F = round(512/256) = 2
    f = 2
    # conv2(A, ones(F)/F^2, 'same'): out(i) = sum_m A(i + floor(F/2) - m) / F, zero outside; then every F-th pixel
    pad = np.pad(a[0], ((f, f), (f, f)))
    ref = np.zeros((512, 520))
    for di in range(f):
        for dj in range(f):
            ref += pad[f + f // 2 - di : f + f // 2 - di + 512, f + f // 2 - dj : f + f // 2 - dj + 520]
    assert np.allclose(d[0], (ref / f / f)[::f, ::f], atol=1e-12)
    small = a[:, :383, :400]  # round(383/256) = 1: untouched; 384/256 = 1.5 rounds (half away) to 2
    assert fsim_downsample(small) is small and fsim_downsample(a[:, :384, :400]).shape == (1, 192, 200)


# --------------------------------------------------------------------------------------------------- SCOOT


def _glcm_reference(img: np.ndarray) -> np.ndarray:
    """Loop version of scoot_measure.m's coMatrix for every block: 32 features."""
    h, w = img.shape
    xe = [math.floor(h * v / 4) for v in range(5)]
    ye = [math.floor(w * v / 4) for v in range(5)]
    level = np.minimum(6, np.floor(6 * img.astype(np.float64) / 255) + 1).astype(int) - 1
    feats = []
    for i in range(4):
        for j in range(4):
            blk = level[xe[i] : xe[i + 1], ye[j] : ye[j + 1]]
            glcm = np.zeros((6, 6))
            for dr, dc in ((0, 1), (-1, 1), (-1, 0), (-1, -1)):
                for r in range(blk.shape[0]):
                    for c in range(blk.shape[1]):
                        r2, c2 = r + dr, c + dc
                        if 0 <= r2 < blk.shape[0] and 0 <= c2 < blk.shape[1]:
                            glcm[blk[r, c], blk[r2, c2]] += 1
            glcm = np.floor(glcm / 4 + 0.5)
            p = glcm / glcm.sum()
            ii, jj = np.meshgrid(range(6), range(6), indexing="ij")
            feats += [((ii - jj) ** 2 * p).sum(), (p * p).sum()]
    return np.array(feats)


def test_scoot_features_match_loop_reference_and_bins():
    rng = np.random.default_rng(6)
    img = sketch_like(rng, 23, 30)
    img[0, :4] = [42, 43, 212, 213]  # bin edges 0-42 | 43-84 ... 170-212 | 213-255
    assert np.allclose(glcm_features(img)[0], _glcm_reference(img), atol=1e-15)
    other = sketch_like(rng, 23, 30)
    want = 1 / (1 + np.linalg.norm(_glcm_reference(img) - _glcm_reference(other)))
    assert scoot(img, other) == pytest.approx(want, abs=1e-12)
    const = np.full_like(img, 200)
    assert scoot(img, img) == 1.0 and np.isfinite(scoot(const, img)) and scoot(const, const) == 1.0


def test_batched_scores_equal_single_pair_scores():
    rng = np.random.default_rng(7)
    gts = [sketch_like(rng, 170, 165) for _ in range(3)] + [sketch_like(rng, 180, 200)]
    preds = [sketch_like(rng, *g.shape) for g in gts]
    res = score_pairs(gts, preds, metrics=("ssim", "ms_ssim", "fsim", "scoot", "ssim_wang2003"), workers=0)
    for i, (g, p) in enumerate(zip(gts, preds)):
        assert res["ssim"][i] == pytest.approx(ssim(g, p), abs=1e-12)
        assert res["ssim_wang2003"][i] == pytest.approx(ssim_wang2003(g, p), abs=1e-12)
        assert res["ms_ssim"][i] == pytest.approx(ms_ssim(g, p), abs=1e-12)
        assert res["scoot"][i] == pytest.approx(scoot(g, p), abs=1e-12)
        assert res["fsim"][i] == pytest.approx(fsim(g, p), abs=1e-6)  # float32 batch vs float64 single
    with pytest.raises(ValueError, match="must be equal"):
        score_pairs([gts[0]], [preds[3]], metrics=("ssim",), workers=0)


def test_worker_processes_give_the_same_scores():
    rng = np.random.default_rng(8)
    gts = [sketch_like(rng, 170, 165) for _ in range(3)] + [sketch_like(rng, 180, 200) for _ in range(2)]
    preds = [sketch_like(rng, *g.shape) for g in gts]
    metrics = ("ssim", "ms_ssim", "fsim", "scoot")
    done = []
    par = score_pairs(gts, preds, metrics=metrics, workers=1, progress=done.append)  # one spawned process
    seq = score_pairs(gts, preds, metrics=metrics, workers=0)
    assert sum(done) == 5 and set(par) == set(seq) == set(metrics) | {"msssim_negative_term"}
    for k in seq:
        assert np.array_equal(par[k], seq[k]), k


def test_summary_nan_rule():
    from facesketch.evaluation.protocol import EvalItem
    from facesketch.evaluation.runner import EvalResult, LoadedPair

    pairs = [LoadedPair(EvalItem(f"id{i}", None, None, None, {"style": i % 2}), np.zeros((4, 4), np.uint8),
                        np.zeros((4, 4), np.uint8), (4, 4), (4, 4), False) for i in range(3)]
    scores = {"fsim": np.array([0.5, np.nan, 0.7]), "scoot": np.array([0.1, 0.2, 0.3])}
    s = summarize(EvalResult(pairs, scores, ("fsim", "scoot"), {}, 4, ["id3"]))
    assert s["fsim"] is None and s["n_nan"]["fsim"] == 1 and s["nan_ids"]["fsim"] == ["id1"]
    assert s["fsim_nan_excluded"] == pytest.approx(0.6) and s["scoot"] == pytest.approx(0.2)
    assert s["counts"]["missing"] == 1 and s["subsets"]["style"]["style1"]["n"] == 2
    json.dumps(s, allow_nan=False)


# --------------------------------------------------------------------------------------------------- conformance


def _pairs_spec() -> dict:
    path = METRIC_DIR / "pairs.json"
    if not path.exists():
        pytest.skip(f"metric conformance vectors not found at {METRIC_DIR} (set FACESKETCH_CONFORMANCE_DIR)")
    return json.loads(path.read_text())


def _check(name: str, got: float, want, case_id: str, tol: float | None = None) -> float:
    if want is None:
        assert math.isnan(got), (case_id, name, got)
        return 0.0
    err = abs(got - want)
    assert err <= (tol if tol is not None else TOL[name]), (case_id, name, got, want, err)
    return err


@pytest.mark.conformance
def test_conformance_pairs_grey_resize_and_metrics():
    spec = _pairs_spec()
    worst: dict[str, float] = {}
    for c in spec["cases"]:
        cid = c["id"]
        with Image.open(METRIC_DIR / c["generated"]) as im:  # the loader path the case exercises
            assert (im.format, im.mode) == (c["generated_file"]["format"], c["generated_file"]["mode"]), cid
        gen, gt = load_grey_u8(METRIC_DIR / c["generated"]), load_grey_u8(METRIC_DIR / c["ground_truth"])
        assert list(gen.shape) == c["generated_size_hw"] and list(gt.shape) == c["eval_size_hw"], cid
        assert _sha(gt) == c["gray_sha256"]["ground_truth"], cid
        if c["resize"]["required"]:
            gen = resize_grey(gen, gt.shape)
            assert _sha(gen) == c["resize"]["resized_gray_sha256"], cid
        assert _sha(gen) == c["gray_sha256"]["generated_eval"], cid
        s = ssim_batch(gt[None], gen[None])
        ms, neg = ms_ssim_batch(gt[None], gen[None])
        got = {
            "scoot": scoot_batch(gt[None], gen[None])[0],
            "fsim": fsim_batch(gt[None], gen[None], precision="float64")[0],
            "ssim_matlab_ipt": s["ssim"][0],
            "ssim_wang2003": s["ssim_wang2003"][0],
            "msssim_wang": ms[0],
        }
        assert bool(neg[0]) == bool(c["msssim_negative_term"]), cid
        for name, value in got.items():
            worst[name] = max(worst.get(name, 0.0), _check(name, value, c["expected"][name], cid))
        assert set(c["nan_metrics"]) == {k for k, v in c["expected"].items() if v is None}
    print("max abs error per metric:", worst)


@pytest.mark.conformance
@pytest.mark.real_weights
def test_conformance_pairs_lpips():
    spec = _pairs_spec()
    lpips_or_skip()
    gts, gens, want = [], [], []
    for c in spec["cases"]:
        if c["expected"].get("lpips_alex") is None:
            continue
        gt = load_grey_u8(METRIC_DIR / c["ground_truth"])
        gen = resize_grey(load_grey_u8(METRIC_DIR / c["generated"]), gt.shape)
        gts.append(gt)
        gens.append(gen)
        want.append(c["expected"]["lpips_alex"])
    got = score_pairs(gts, gens, metrics=("lpips",), workers=0)["lpips"]
    assert np.abs(got - np.array(want)).max() <= TOL["lpips_alex"] + 1e-5 * np.abs(want).max()


@pytest.mark.conformance
def test_conformance_run_small_preprocessing(fs2k_dir):
    """The grey pixels of the mini run (FS2K JPEG ground truths, resized RGB predictions) are bit-exact; the
    scores themselves are checked end to end through the CLI in test_evaluate.py."""
    path = METRIC_DIR / "run_small_expected.json"
    if not path.exists():
        pytest.skip(f"{path} not found (set FACESKETCH_CONFORMANCE_DIR)")
    spec = json.loads(path.read_text())
    for im in spec["images"]:
        gt = load_grey_u8(fs2k_dir / im["ground_truth"])
        assert list(gt.shape) == im["gt_size_hw"] and _sha(gt) == im["gt_gray_sha256"], im["id"]
        pred = load_grey_u8(METRIC_DIR / im["prediction"])
        assert list(pred.shape) == im["prediction_size_hw"], im["id"]
        if im["resize"]["required"]:
            assert _sha(resize_grey(pred, gt.shape)) == im["resize"]["resized_gray_sha256"], im["id"]


def test_evaluate_writes_exactly_the_chosen_metrics_in_metrics_json_and_the_table(tmp_path):
    import json

    from PIL import Image

    from facesketch.cli import main

    rng = np.random.default_rng(0)
    for d in ("pred", "gt"):
        (tmp_path / d).mkdir()
        for i in range(2):
            Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / d / f"{i}.png")
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "e"),
                 "--metrics", "scoot,ssim"]) == 0  # fmt: skip
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["metrics"] == ["ssim", "scoot"]  # in METRICS order, whatever the order asked
    assert 0 < m["ssim"] < 1 and 0 < m["scoot"] <= 1 and set(METRICS) - {"ssim", "scoot"} <= {k for k in METRICS if m.get(k) is None}
    lines = (tmp_path / "e" / "table.md").read_text().splitlines()
    header = next(ln for ln in lines if ln.startswith("| row")).split("|")[3:-1]  # Table I's five columns, for the paper rows
    ours = next(ln for ln in lines if ln.startswith("| **ours")).split("|")[3:-1]
    cells = {h.strip().rstrip("↑↓"): c.strip() for h, c in zip(header, ours)}
    assert cells == {"LPIPS": "—", "SSIM": f"{m['ssim']:.4f}", "MS-SSIM": "—", "FSIM": "—", "SCOOT": f"{m['scoot']:.4f}"}
