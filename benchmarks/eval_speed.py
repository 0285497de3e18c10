"""Evaluation speed on the FS2K test split: our batched evaluator vs a straightforward per-image loop, with agreement.

Usage:  .venv/bin/python benchmarks/eval_speed.py [--fs2k ROOT] [--pred-kind photo|perturbed] [--baseline-limit N]

"Predictions" need no model: the FS2K photos themselves (``photo``, the default) or the GT sketches lightly
perturbed (``perturbed``: blur + noise, written as PNGs to a temporary folder). Both implementations read the
same files and follow the same protocol (MATLAB grey, PIL bicubic to the GT size). The baseline is what one
would write first: one pair at a time, 2-D window filtering, FeatureSIM.m's phasecong2 rebuilt per call in
float64 numpy, SCOOT with per-block loops, LPIPS one pair per forward. Prints Markdown tables (timings with
this machine's CPU model, then the largest per-image disagreement per metric).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from facesketch.evaluation import METRICS

KEYS = METRICS + ("ssim_wang2003",)


# ------------------------------------------------------------------------------------------- baseline, per image


def base_grey(path) -> np.ndarray:
    im = Image.open(path)
    if im.mode == "L":
        return np.asarray(im)
    a = np.asarray(im.convert("RGB"), dtype=np.float64)
    return np.floor(0.298936021293775 * a[..., 0] + 0.587043074451121 * a[..., 1] + 0.114020904255103 * a[..., 2] + 0.5).astype(np.uint8)


def _window() -> np.ndarray:
    x = np.arange(11) - 5.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    return g / g.sum()


WIN = _window()
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def base_ssim_maps(x, y, mode):
    """SSIM and cs maps with the full 2-D window: mode 'nearest' (MATLAB IPT) or 'valid' (Wang)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    if mode == "valid":
        f = lambda a: ndimage.correlate(a, WIN, mode="nearest")[5:-5, 5:-5]  # noqa: E731
    else:
        f = lambda a: ndimage.correlate(a, WIN, mode="nearest")  # noqa: E731
    mx, my = f(x), f(y)
    sx, sy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    cs = (2 * sxy + C2) / (sx + sy + C2)
    return (2 * mx * my + C1) / (mx * mx + my * my + C1) * cs, cs


def base_msssim(x, y):
    w = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    x, y = x.astype(np.float64), y.astype(np.float64)
    vals = []
    for lev in range(5):
        s, cs = base_ssim_maps(x, y, "valid")
        vals.append(s.mean() if lev == 4 else cs.mean())
        if lev < 4:  # imfilter(., ones(2)/4, 'symmetric'): pixel (i, j) averages (i..i+1, j..j+1); then every 2nd
            px, py = np.pad(x, ((0, 1), (0, 1)), mode="symmetric"), np.pad(y, ((0, 1), (0, 1)), mode="symmetric")
            x = ((px[:-1, :-1] + px[1:, :-1] + px[:-1, 1:] + px[1:, 1:]) / 4)[::2, ::2]
            y = ((py[:-1, :-1] + py[1:, :-1] + py[:-1, 1:] + py[1:, 1:]) / 4)[::2, ::2]
    return float(np.prod([max(v, 0.0) ** wi for v, wi in zip(vals, w)]))


def base_phasecong(im):
    rows, cols = im.shape
    rng = lambda n: (np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)) if n % 2 else (np.arange(-n / 2, n / 2) / n)  # noqa: E731
    x, y = np.meshgrid(rng(cols), rng(rows))
    radius = np.fft.ifftshift(np.sqrt(x**2 + y**2))
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1
    lp = np.fft.ifftshift(1 / (1 + (np.sqrt(x**2 + y**2) / 0.45) ** 30))
    log_gabor = []
    for s in range(4):
        lg = np.exp(-(np.log(radius * 6 * 2**s)) ** 2 / (2 * math.log(0.55) ** 2)) * lp
        lg[0, 0] = 0
        log_gabor.append(lg)
    imagefft = np.fft.fft2(im)
    energy_all = np.zeros((rows, cols))
    an_all = np.zeros((rows, cols))
    sigma = math.pi / 4 / 1.2
    for o in range(4):
        angl = o * math.pi / 4
        ds = np.sin(theta) * math.cos(angl) - np.cos(theta) * math.sin(angl)
        dc = np.cos(theta) * math.cos(angl) + np.sin(theta) * math.sin(angl)
        spread = np.exp(-np.abs(np.arctan2(ds, dc)) ** 2 / (2 * sigma**2))
        eo, ifft_filt = [], []
        for s in range(4):
            filt = log_gabor[s] * spread
            ifft_filt.append(np.real(np.fft.ifft2(filt)) * math.sqrt(rows * cols))
            eo.append(np.fft.ifft2(imagefft * filt))
            if s == 0:
                em_n = (filt**2).sum()
        sum_e = sum(e.real for e in eo)
        sum_o = sum(e.imag for e in eo)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + 1e-4
        me, mo = sum_e / x_energy, sum_o / x_energy
        energy = sum(e.real * me + e.imag * mo - np.abs(e.real * mo - e.imag * me) for e in eo)
        noise_power = -np.median(np.abs(eo[0]) ** 2) / math.log(0.5) / em_n
        sum_an2 = sum(f**2 for f in ifft_filt).sum()
        sum_aiaj = sum(ifft_filt[i] * ifft_filt[j] for i in range(4) for j in range(i + 1, 4)).sum()
        tau = math.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj) / 2)
        t = (tau * math.sqrt(math.pi / 2) + 2 * math.sqrt((2 - math.pi / 2) * tau**2)) / 1.7
        energy_all += np.maximum(energy - t, 0)
        an_all += sum(np.abs(e) for e in eo)
    return energy_all / an_all


def base_fsim(x, y):
    if x.max() == x.min() or y.max() == y.min():
        return float("nan")
    x, y = x.astype(np.float64), y.astype(np.float64)
    pc1, pc2 = base_phasecong(x), base_phasecong(y)
    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]]) / 16
    grad = lambda a: np.hypot(ndimage.convolve(a, dx, mode="constant"), ndimage.convolve(a, dx.T, mode="constant"))  # noqa: E731
    g1, g2 = grad(x), grad(y)
    s = (2 * pc1 * pc2 + 0.85) / (pc1**2 + pc2**2 + 0.85) * (2 * g1 * g2 + 160) / (g1**2 + g2**2 + 160)
    pcm = np.maximum(pc1, pc2)
    return float((s * pcm).sum() / pcm.sum())


def base_scoot(x, y):
    def feats(img):
        h, w = img.shape
        re = [h * v // 4 for v in range(5)]
        ce = [w * v // 4 for v in range(5)]
        lev = np.minimum(5, (6 * img.astype(int)) // 255)
        out = []
        for i in range(4):
            for j in range(4):
                b = lev[re[i] : re[i + 1], ce[j] : ce[j + 1]]
                glcm = np.zeros((6, 6))
                bh, bw = b.shape
                for dr, dc in ((0, 1), (-1, 1), (-1, 0), (-1, -1)):
                    r0, r1, c0, c1 = max(0, -dr), bh - max(0, dr), max(0, -dc), bw - max(0, dc)
                    np.add.at(glcm, (b[r0:r1, c0:c1].ravel(), b[r0 + dr : r1 + dr, c0 + dc : c1 + dc].ravel()), 1)
                p = np.floor(glcm / 4 + 0.5)
                p /= p.sum()
                ii, jj = np.indices((6, 6))
                out += [((ii - jj) ** 2 * p).sum(), (p**2).sum()]
        return np.array(out)

    return float(1 / (1 + np.linalg.norm(feats(x) - feats(y))))


def run_baseline(items, model):
    import torch

    rows = []
    for gt_path, pred_path in items:
        gt = base_grey(gt_path)
        pred = base_grey(pred_path)
        if pred.shape != gt.shape:
            pred = np.asarray(Image.fromarray(pred, "L").resize(gt.shape[::-1], Image.BICUBIC))
        s_ipt, _ = base_ssim_maps(gt, pred, "nearest")
        s_wang, _ = base_ssim_maps(gt, pred, "valid")
        with torch.no_grad():
            t = lambda a: torch.from_numpy(a).float().div(255).mul(2).sub(1)[None, None].repeat(1, 3, 1, 1)  # noqa: E731
            lp = float(model(t(gt), t(pred))[0])
        rows.append({"lpips": lp, "ssim": float(s_ipt.mean()), "ms_ssim": base_msssim(gt, pred),
                     "fsim": base_fsim(gt, pred), "scoot": base_scoot(gt, pred), "ssim_wang2003": float(s_wang.mean())})
    return {k: np.array([r[k] for r in rows]) for k in KEYS}


# ------------------------------------------------------------------------------------------- driver


def cpu_model() -> str:
    """'model name' from /proc/cpuinfo, with family/model numbers (virtual machines often hide the marketing name)."""
    info = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        import platform

        return platform.processor() or "unknown CPU"
    return f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"


def make_perturbed(records, folder: Path) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(0)
    out = []
    for r in records:
        g = np.asarray(Image.open(r.sketch).convert("L"), dtype=np.float64)
        p = np.clip(ndimage.gaussian_filter(g, 0.8) + rng.normal(0, 8, g.shape), 0, 255).astype(np.uint8)
        path = folder / f"{r.id}.png"
        Image.fromarray(p, "L").resize((256, 256), Image.BICUBIC).save(path)  # model-sized, as a generator outputs
        out.append((r.sketch, path))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs2k", help="FS2K root (default: $FS2K_ROOT or ../shared/data/FS2K)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--pred-kind", choices=("photo", "perturbed"), default="photo")
    ap.add_argument("--limit", type=int, help="evaluate only the first N pairs (default: the whole split)")
    ap.add_argument("--baseline-limit", type=int, default=100,
                    help="run the per-image baseline on N pairs spread evenly over the split (default 100; 0 = all; "
                    "the whole split takes ~30 min on 2 cores)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--workers", type=int, help="scoring processes (default: the evaluator's default)")
    ap.add_argument("--fsim-precision", default="float32", choices=("float32", "float64"))
    args = ap.parse_args()

    import torch

    from facesketch.data.fs2k import FS2K_HOWTO, find_root, load_split
    from facesketch.evaluation.protocol import EvalItem
    from facesketch.evaluation.runner import default_workers, load_pairs, lpips_model, score_pairs
    from facesketch.priors.build import build_lpips

    root = find_root(args.fs2k)
    if root is None:
        print(FS2K_HOWTO, file=sys.stderr)
        return 2
    records = load_split(root, args.split)[: args.limit]
    tmp = tempfile.TemporaryDirectory(prefix="eval_speed_")
    if args.pred_kind == "photo":
        files = [(r.sketch, r.photo) for r in records]
    else:
        files = make_perturbed(records, Path(tmp.name))
    items = [EvalItem(r.id, gt, pred, r.image_name, {}) for r, (gt, pred) in zip(records, files)]
    load0 = os.getloadavg()[0]
    lpips_model("alex", "cpu")  # weights check and first-load cost outside the timing

    import resource

    def cpu_seconds() -> float:  # this process and its reaped children (the worker processes)
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    c0, t0 = cpu_seconds(), time.perf_counter()
    pairs, bad = load_pairs(items)
    t_load = time.perf_counter() - t0
    workers = default_workers(len(pairs)) if args.workers is None else args.workers
    ours = score_pairs([p.gt for p in pairs], [p.pred for p in pairs], workers=workers,
                       fsim_precision=args.fsim_precision)
    t_ours, c_ours = time.perf_counter() - t0, cpu_seconds() - c0
    load1 = os.getloadavg()[0]

    n = len(pairs)
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}; "
          f"{n} pairs of FS2K {args.split} ({args.pred_kind} as prediction); 1-min load average {load0:.1f} -> {load1:.1f} "
          "(other processes share these cores: wall time grows with the load, CPU time much less)\n")
    lines = ["| implementation | pairs | wall time (s) | CPU time (s) | ms / pair (wall) | notes |", "|---|---|---|---|---|---|"]
    lines.append(f"| facesketch evaluator (batched, {workers} worker processes) | {n} | {t_ours:.1f} | {c_ours:.1f} | "
                 f"{t_ours / n * 1e3:.0f} | decode {t_load:.1f} s; all 5 metrics + Wang SSIM; FSIM {args.fsim_precision} |")
    if not args.skip_baseline:
        m = min(n, args.baseline_limit or n)
        sel = np.unique(np.linspace(0, n - 1, m).round().astype(int))  # both image sizes, in split proportion
        m = len(sel)
        model = build_lpips("alex", "cpu")
        c0, t0 = cpu_seconds(), time.perf_counter()
        base = run_baseline([(pairs[i].item.gt, pairs[i].item.pred) for i in sel], model)
        t_base, c_base = time.perf_counter() - t0, cpu_seconds() - c0
        note = f"{m} pairs spread over the split; x {n / m:.1f} = {t_base / m * n:.0f} s for all {n}" if m < n else "same pairs"
        lines.append(f"| per-image loop (scipy/numpy, float64 FSIM, LPIPS batch 1) | {m} | {t_base:.1f} | {c_base:.1f} | "
                     f"{t_base / m * 1e3:.0f} | {note} |")
    print("\n".join(lines))
    if not args.skip_baseline:
        print("\n| metric | mean (ours) | mean (baseline, same pairs) | max abs per-image difference |\n|---|---|---|---|")
        for k in KEYS:
            a, b = ours[k][sel], base[k]
            same_nan = np.array_equal(np.isnan(a), np.isnan(b))
            diff = np.nanmax(np.abs(a - b)) if np.isfinite(a).any() else float("nan")
            print(f"| {k} | {np.mean(a):.6f} | {np.mean(b):.6f} | {diff:.2e}{'' if same_nan else ' (NaN mismatch!)'} |")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
