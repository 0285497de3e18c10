"""Metrics during training: translate a fixed FS2K subset in memory and return the five FS2K-protocol means."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from facesketch.data.fs2k import spread_subset  # noqa: F401  (scripts import it from here too)
from facesketch.evaluation import METRICS


def evaluate_translator(
    translate_fn: Callable[[list[np.ndarray]], list[np.ndarray]],
    records: Sequence,
    *,
    lpips_net: str = "alex",
    device="cpu",
    batch_size: int = 8,
    fsim_precision: str = "float32",
    workers: int = 0,
    metrics: tuple[str, ...] = METRICS,
    style_of=None,
) -> dict[str, float]:
    """Mean LPIPS, SSIM, MS-SSIM, FSIM and SCOOT of ``translate_fn`` on FS2K ``records`` (keys as in METRICS).

    translate_fn: list of (H, W, 3) uint8 RGB photos -> list of (h, w, 3) uint8 RGB (or (h, w) grey) sketches,
    any size; each sketch is scored against its record's ground truth under the FS2K protocol (uint8 grey,
    resized to the GT's native size with PIL bicubic). records: ``facesketch.data.fs2k.FS2KRecord`` with photo
    and sketch files (a fixed subset of the test split, so numbers are comparable across epochs).
    Reads the dataset files and nothing else; writes nothing. A mean is NaN when any image's value is (FSIM
    of a constant sketch, e.g. a collapsed generator). ``device`` (str or torch.device) runs LPIPS and FSIM;
    ``workers=0`` scores in this process; ``metrics`` selects a subset (e.g. without 'lpips' where its
    weights are not cached). ``style_of(record) -> int``: for a style-conditioned model, the style each photo is drawn
    in (``translate_fn`` then takes the photos and their styles).
    """
    from facesketch.data.images import load_rgb_array
    from facesketch.evaluation.protocol import load_grey_u8, rgb_to_grey_u8, to_eval_pair
    from facesketch.evaluation.runner import score_pairs

    recs = [r for r in records if r.photo is not None and r.sketch is not None]
    if not recs:
        raise ValueError("evaluate_translator: no record has both a photo and a sketch")
    gts, preds = [], []
    bs = max(1, batch_size)
    for i in range(0, len(recs), bs):
        batch = recs[i : i + bs]
        photos = [load_rgb_array(r.photo) for r in batch]
        sketches = translate_fn(photos) if style_of is None else translate_fn(photos, [style_of(r) for r in batch])
        if len(sketches) != len(batch):
            raise ValueError(f"translate_fn returned {len(sketches)} images for {len(batch)} photos")
        for r, s in zip(batch, sketches):
            pred, gt, _ = to_eval_pair(rgb_to_grey_u8(np.asarray(s, dtype=np.uint8)), load_grey_u8(r.sketch))
            gts.append(gt)
            preds.append(pred)
    scores = score_pairs(gts, preds, metrics=tuple(metrics), lpips_net=lpips_net, device=device,
                         fsim_precision=fsim_precision, workers=workers)
    return {m: float(scores[m].mean()) for m in metrics}
