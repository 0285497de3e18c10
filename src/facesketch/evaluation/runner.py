"""Batched evaluation of many prediction/GT pairs: decode in threads, group by size, score, summarise, write reports.

Work split: files are decoded by a thread pool (PIL releases the GIL) and checked before any scoring; pairs are
grouped by evaluation size and scored in chunks by single-threaded worker processes (one per core), each running
every metric on its chunk. Processes rather than threads because scipy.ndimage and numpy's selection hold the
GIL, and torch's OpenMP threads spin-wait badly next to other busy threads on a 2-core machine.
"""

from __future__ import annotations

import csv
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facesketch.data.images import UnreadableImageError
from facesketch.evaluation.lpips_grey import lpips_grey_batch, lpips_model  # noqa: F401  (re-exported)
from facesketch.evaluation.protocol import EvalItem, load_grey_u8, protocol_description, rgb_to_grey_u8, to_eval_pair
from facesketch.evaluation.registry import REGISTRY, MetricContext, metric_keys

CHUNK_PIXELS = 1_600_000  # per-chunk pixel budget: ~25 FS2K photo1 pairs, a few hundred MB of float64 SSIM maps


def parse_metrics(spec: str | None) -> tuple[str, ...]:
    """'lpips,ssim' -> ('lpips', 'ssim'), in canonical order; None or 'all' -> every metric. ValueError on unknown keys."""
    every = metric_keys()
    if not spec or spec == "all":
        return every
    want = [s.strip() for s in spec.split(",") if s.strip()]
    if not want:
        raise ValueError(f"{spec!r} names no metric; choose from {', '.join(every)} (or all)")
    bad = [s for s in want if s not in every]
    if bad:
        raise ValueError(f"unknown metric(s) {', '.join(bad)}; choose from {', '.join(every)}")
    return tuple(m for m in every if m in want)


# ---------------------------------------------------------------------------------------------------------------
# scoring grey arrays


def score_stack(
    gt: np.ndarray,
    gen: np.ndarray,
    *,
    metrics: tuple[str, ...] | None = None,
    lpips_net: str = "alex",
    device: str = "cpu",
    fsim_precision: str = "float32",
) -> dict[str, np.ndarray]:
    """All requested metrics of two (N, H, W) uint8 grey stacks of one size; {metric: (N,) float64}.

    With 'ms_ssim' also 'msssim_negative_term' (N,) bool. SSIM, Wang SSIM and MS-SSIM share one set of blurs.
    """
    ctx = MetricContext(lpips_net=lpips_net, device=device, fsim_precision=fsim_precision)
    res = {k: np.asarray(REGISTRY[k].batch(gt, gen, ctx), np.float64) for k in (metrics or metric_keys())}
    res.update(ctx.extras)
    return res


def _worker_init() -> None:
    # one intra-op thread per worker process: the processes are the parallelism, and OpenMP threads spinning
    # next to another busy process slow both down several-fold on a 2-core machine
    torch.set_num_threads(1)


def _score_chunk(args) -> dict[str, np.ndarray]:
    gt, gen, kwargs = args
    return score_stack(gt, gen, **kwargs)


def default_workers(n_pairs: int, device: str | torch.device = "cpu") -> int:
    """Worker processes for ``score_pairs``: 0 (in-process) for small sets, accelerators or one core; else one
    per usable core, at most 8 (each worker holds its own LPIPS copy and chunk buffers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    if torch.device(device).type != "cpu" or n_pairs < 64 or cores < 2:
        return 0
    return min(8, cores)


def score_pairs(
    gts: list[np.ndarray],
    preds: list[np.ndarray],
    *,
    metrics: tuple[str, ...] | None = None,
    lpips_net: str = "alex",
    device: str = "cpu",
    fsim_precision: str = "float32",
    workers: int | None = None,
    progress=None,
) -> dict[str, np.ndarray]:
    """Per-pair scores of (H, W) uint8 grey arrays already at their evaluation size (gts[i].shape == preds[i].shape).

    Returns {metric: (N,) float64} for each requested metric, plus 'msssim_negative_term' (N,) bool when
    'ms_ssim' is requested. Pairs are grouped by size and scored in chunks, in this process (``workers=0``)
    or in a pool of single-threaded worker processes (default: ``default_workers``). ``progress``: optional
    callable(n_pairs_done) called after each chunk. ``fsim_precision='float32'`` agrees with FeatureSIM.m to
    ~1e-7 on FS2K, 'float64' to ~1e-14.
    """
    metrics = tuple(metrics) if metrics else metric_keys()
    n = len(gts)
    if len(preds) != n:
        raise ValueError(f"{n} ground truths but {len(preds)} predictions")
    for i, (g, p) in enumerate(zip(gts, preds)):
        if g.shape != p.shape or g.ndim != 2:
            raise ValueError(f"pair {i}: ground truth {g.shape} and prediction {p.shape} must be equal (H, W) arrays")
    res = {m: np.full(n, np.nan) for m in metrics}
    if "ms_ssim" in metrics:
        res["msssim_negative_term"] = np.zeros(n, bool)
    if n == 0:
        return res
    if "lpips" in metrics:
        lpips_model(lpips_net, device)  # fail early (missing weights) and once, before any worker starts
    workers = default_workers(n, device) if workers is None else workers
    groups: dict[tuple[int, int], list[int]] = {}
    for i, g in enumerate(gts):
        groups.setdefault(g.shape, []).append(i)
    chunks = []
    # largest images first, so the last chunks to finish are small ones and no worker idles long at the end
    for shape, idx in sorted(groups.items(), key=lambda kv: -kv[0][0] * kv[0][1]):
        step = max(1, CHUNK_PIXELS // (shape[0] * shape[1]))
        if workers:  # smaller chunks keep every worker busy until the end
            step = max(1, min(step, -(-len(idx) // (4 * workers))))
        chunks += [idx[k : k + step] for k in range(0, len(idx), step)]
    kwargs = dict(metrics=metrics, lpips_net=lpips_net, device=device, fsim_precision=fsim_precision)

    def store(idx, part):
        for k, v in part.items():
            res[k][idx] = v
        if progress:
            progress(len(idx))

    stacks = ((np.stack([gts[i] for i in idx]), np.stack([preds[i] for i in idx]), kwargs) for idx in chunks)
    if not workers:
        for idx, args in zip(chunks, stacks):
            store(idx, _score_chunk(args))
        return res
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # never fork a process that holds torch's thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
        for idx, part in zip(chunks, pool.map(_score_chunk, stacks)):
            store(idx, part)
    return res


# ---------------------------------------------------------------------------------------------------------------
# files -> grey pairs -> results


@dataclass
class LoadedPair:
    """A pair decoded and brought to its evaluation size."""

    item: EvalItem
    gt: np.ndarray  # (H, W) uint8 at the evaluation size
    pred: np.ndarray  # (H, W) uint8 at the evaluation size
    pred_hw: tuple[int, int]
    gt_hw: tuple[int, int]
    resized: bool


@dataclass
class EvalResult:
    """Everything an evaluation produced; ``summary()`` gives the metrics.json content."""

    pairs: list[LoadedPair]
    scores: dict[str, np.ndarray]
    metrics: tuple[str, ...]
    protocol: dict
    n_ground_truth: int
    missing: list[str] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [p.item.id for p in self.pairs]

    def summary(self) -> dict:
        return summarize(self)


def _load_one(item: EvalItem, size: int | None) -> LoadedPair | dict:
    try:
        gt = load_grey_u8(item.gt) if item.gt is not None else None
    except UnreadableImageError as e:
        return {"id": item.id, "path": str(item.gt), "reason": f"ground truth: {e.reason}"}
    if gt is None:
        return {"id": item.id, "path": None, "reason": "ground-truth sketch file missing from the dataset"}
    if isinstance(item.pred, np.ndarray):
        pred = rgb_to_grey_u8(item.pred)
    else:
        try:
            pred = load_grey_u8(item.pred)
        except UnreadableImageError as e:
            return {"id": item.id, "path": str(item.pred), "reason": e.reason}
    pred_eval, gt_eval, resized = to_eval_pair(pred, gt, size)
    return LoadedPair(item, gt_eval, pred_eval, pred.shape, gt.shape, resized)


def load_pairs(items: list[EvalItem], *, size: int | None = None, threads: int | None = None) -> tuple[list[LoadedPair], list[dict]]:
    """Decode, grey and resize every item that has a prediction; returns (pairs in item order, unreadable entries).

    ``size``: None for the FS2K rule (prediction resized to the GT's native size), N to evaluate both at N x N.
    Decoding runs in a thread pool (PIL releases the GIL while decoding).
    """
    todo = [it for it in items if it.pred is not None]
    threads = threads or min(4, (os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        loaded = list(pool.map(lambda it: _load_one(it, size), todo))
    return [x for x in loaded if isinstance(x, LoadedPair)], [x for x in loaded if isinstance(x, dict)]


def evaluate_pairs(
    pairs: list[LoadedPair],
    *,
    metrics: tuple[str, ...] | None = None,
    size: int | None = None,
    lpips_net: str = "alex",
    device: str = "cpu",
    fsim_precision: str = "float32",
    n_ground_truth: int | None = None,
    missing: list[str] | None = None,
    unreadable: list[dict] | None = None,
    extra: list[str] | None = None,
    workers: int | None = None,
    progress=None,
) -> EvalResult:
    """Score loaded pairs (see ``score_pairs``) and bundle the bookkeeping (missing, unreadable, extra files)."""
    metrics = tuple(metrics) if metrics else metric_keys()
    scores = score_pairs(
        [p.gt for p in pairs], [p.pred for p in pairs], metrics=metrics, lpips_net=lpips_net, device=device,
        fsim_precision=fsim_precision, workers=workers, progress=progress,
    )
    protocol = protocol_description(size, lpips_net=lpips_net)
    protocol["fsim_precision"] = fsim_precision
    n_gt = n_ground_truth if n_ground_truth is not None else len(pairs) + len(missing or []) + len(unreadable or [])
    return EvalResult(pairs, scores, metrics, protocol, n_gt, list(missing or []), list(unreadable or []), list(extra or []))


# ---------------------------------------------------------------------------------------------------------------
# summaries and files


def _json_float(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _means(scores: dict[str, np.ndarray], metrics, idx=None) -> tuple[dict, dict]:
    """(MATLAB-style means that are NaN if any value is, NaN-excluded means) for the given rows."""
    plain, excl = {}, {}
    for m in metrics:
        v = scores[m] if idx is None else scores[m][idx]
        plain[m] = _json_float(v.mean()) if len(v) else None
        finite = v[~np.isnan(v)]
        excl[m] = _json_float(finite.mean()) if len(finite) else None
    return plain, excl


def _readable_value(attr: str, value) -> str:
    from facesketch.data.fs2k import ATTRIBUTES

    return str(ATTRIBUTES.get(attr, {}).get(value, value))


def subset_attributes() -> tuple[str, ...]:
    """Record attributes that get per-value means: FS2K's categorical ones, and the photo source."""
    from facesketch.data.fs2k import ATTRIBUTES

    return tuple(ATTRIBUTES) + ("source",)


def summarize(result: EvalResult) -> dict:
    """The metrics.json content: means (keys lpips, ssim, ms_ssim, fsim, scoot, ssim_wang2003; null = NaN), the
    NaN-excluded means under ``<metric>_nan_excluded``, NaN counts and ids, protocol, counts and attribute subsets."""
    s, metrics = result.scores, result.metrics
    ids = result.ids
    plain, excl = _means(s, metrics)
    out: dict = {"format": "facesketch-eval/1"}
    out.update(plain)
    for m in metrics:
        out[f"{m}_nan_excluded"] = excl[m]
    out["n_nan"] = {m: int(np.isnan(s[m]).sum()) for m in metrics}
    out["nan_ids"] = {m: [ids[i] for i in np.flatnonzero(np.isnan(s[m]))] for m in metrics}
    neg = s.get("msssim_negative_term")
    out["protocol"] = result.protocol
    out["metrics"] = list(metrics)
    out["counts"] = {
        "ground_truth": result.n_ground_truth,
        "evaluated": len(result.pairs),
        "missing": len(result.missing),
        "unreadable": len(result.unreadable),
        "extra_predictions": len(result.extra),
        "resized": int(sum(p.resized for p in result.pairs)),
        "msssim_negative_term": int(neg.sum()) if neg is not None else None,
    }
    out["eval_sizes_hw"] = {f"{h}x{w}": c for (h, w), c in _count([p.gt.shape for p in result.pairs]).items()}
    out["missing_ids"] = result.missing
    out["unreadable"] = result.unreadable
    out["extra_predictions"] = result.extra[:100]
    out["msssim_negative_term_ids"] = [ids[i] for i in np.flatnonzero(neg)] if neg is not None else []
    subsets: dict = {}
    for attr in subset_attributes():
        values = [p.item.attrs.get(attr) for p in result.pairs]
        if not result.pairs or any(v is None or isinstance(v, (list, dict)) for v in values):
            continue
        groups: dict = {}
        for i, v in enumerate(values):
            groups.setdefault(v, []).append(i)
        subsets[attr] = {}
        for v in sorted(groups, key=str):
            idx = np.array(groups[v])
            p_, e_ = _means(s, metrics, idx)
            entry = {"n": len(idx), **p_}
            entry.update({f"{m}_nan_excluded": e_[m] for m in metrics})
            subsets[attr][_readable_value(attr, v)] = entry
    out["subsets"] = subsets
    return out


def _count(xs) -> dict:
    c: dict = {}
    for x in xs:
        c[x] = c.get(x, 0) + 1
    return c


def write_per_image_csv(result: EvalResult, path: Path) -> None:
    """One row per evaluated pair: ids, files, sizes, every score ('nan' where undefined) and the FS2K attributes."""
    attr_cols = [a for a in subset_attributes() if any(a in p.item.attrs for p in result.pairs)]
    cols = ["id", "image_name", "prediction", "ground_truth", "pred_hw", "gt_hw", "eval_hw", "resized"]
    cols += list(result.metrics)
    if "msssim_negative_term" in result.scores:
        cols.append("msssim_negative_term")
    cols += attr_cols
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for i, p in enumerate(result.pairs):
            pred = "(in memory)" if isinstance(p.item.pred, np.ndarray) else str(p.item.pred)
            row = [p.item.id, p.item.image_name or "", pred, str(p.item.gt), "x".join(map(str, p.pred_hw)),
                   "x".join(map(str, p.gt_hw)), "x".join(map(str, p.gt.shape)), int(p.resized)]
            row += [repr(float(result.scores[m][i])) for m in result.metrics]
            if "msssim_negative_term" in result.scores:
                row.append(int(result.scores["msssim_negative_term"][i]))
            row += [p.item.attrs.get(a, "") for a in attr_cols]
            w.writerow(row)
    os.replace(tmp, path)


def write_reports(result: EvalResult, out_dir: Path, *, label: str, split: str | None = None) -> dict:
    """Write per_image.csv, metrics.json and table.md into ``out_dir``; returns the metrics.json content."""
    from facesketch.evaluation.tables import render_table

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    summary["label"] = label
    summary["split"] = split
    write_per_image_csv(result, out_dir / "per_image.csv")
    tmp = out_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, out_dir / "metrics.json")
    tmp = out_dir / "table.md.tmp"
    tmp.write_text(render_table(summary))
    os.replace(tmp, out_dir / "table.md")
    return summary
