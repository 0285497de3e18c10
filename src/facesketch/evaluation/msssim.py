"""MS-SSIM with Wang, Simoncelli and Bovik's (2003) pyramid, batched over (N, H, W) grey stacks (key `ms_ssim`).

Five levels with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); each level uses the 'valid' 11x11 Gaussian
SSIM of ``ssim.py``; levels 1-4 contribute their mean contrast-structure term, level 5 its mean SSIM. Between
levels: a 2x2 mean with symmetric padding at the bottom/right (MATLAB ``imfilter(.., ones(2)/4, 'symmetric')``),
then every second pixel, so odd sizes round up (250 -> 125 -> 63 -> 32 -> 16). pytorch_msssim and piq pad odd
sizes differently and disagree by up to 0.09 at FS2K's sizes.

Our rule (conformance README, rule 5): when a per-level mean is negative, Wang's product is complex; the score
is then 0.0 (each mean clamped at 0, as pytorch_msssim and piq do) and the pair is flagged.
"""

from __future__ import annotations

import numpy as np

from facesketch.evaluation.ssim import HALF, WIN, ssim_maps

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
LEVELS = len(WEIGHTS)


def downsample2(a: np.ndarray) -> np.ndarray:
    """(N, H, W) float64 -> (N, ceil(H/2), ceil(W/2)): 2x2 mean, bottom/right symmetric padding, keep every 2nd pixel."""
    n, h, w = a.shape
    if h % 2:
        a = np.concatenate([a, a[:, -1:, :]], axis=1)
    if w % 2:
        a = np.concatenate([a, a[:, :, -1:]], axis=2)
    return 0.25 * (a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2])


def min_side() -> int:
    """Smallest image side for which level 5 still holds one 11x11 window (161 px with this pyramid)."""
    return (WIN - 1) * 2 ** (LEVELS - 1) + 1


def ms_ssim_batch(gt: np.ndarray, gen: np.ndarray, *, level1_cs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MS-SSIM of (N, H, W) uint8 (0..255) stacks; returns (scores (N,) float64 in [0, 1], negative_term (N,) bool).

    ``level1_cs``: the level-1 mean valid contrast-structure term if already computed (``ssim_batch``'s
    'cs_valid'), which saves the most expensive level. Images smaller than ``min_side()`` score NaN.
    """
    x = np.asarray(gt, np.float64)
    y = np.asarray(gen, np.float64)
    n = x.shape[0]
    if min(x.shape[1:]) < min_side():
        return np.full(n, np.nan), np.zeros(n, bool)
    means = np.empty((LEVELS, n))
    for lev in range(LEVELS):
        if lev == 0 and level1_cs is not None:
            means[0] = level1_cs
        else:
            smap, cs = ssim_maps(x, y)
            inner = (slice(None), slice(HALF, -HALF), slice(HALF, -HALF))
            means[lev] = (smap if lev == LEVELS - 1 else cs)[inner].mean(axis=(1, 2))
        if lev < LEVELS - 1:
            x, y = downsample2(x), downsample2(y)
    negative = (means < 0).any(axis=0)
    score = np.prod(np.clip(means, 0.0, None) ** WEIGHTS[:, None], axis=0)
    return score, negative


def ms_ssim(gt: np.ndarray, gen: np.ndarray) -> float:
    """Wang 2003 MS-SSIM of two (H, W) uint8 grey images (sides >= 161), in [0, 1]; 0.0 when a level is negative."""
    return float(ms_ssim_batch(np.asarray(gt)[None], np.asarray(gen)[None])[0][0])
