"""SCOOT (Fan et al., ICCV 2019) exactly as FS2KToolbox ``scoot_measure.m`` computes it, batched over grey stacks.

Per image: a 4x4 grid of blocks (row edges floor(H*v/4), column edges floor(W*v/4)); in each block the grey levels
are quantised to 6 bins (MATLAB ``graycomatrix(.., 'NumLevels', 6)`` with GrayLimits [0 255]:
level = min(6, floor(6*I/255) + 1)); four non-symmetric co-occurrence matrices at offsets (row, col) = (0, 1),
(-1, 1), (-1, 0), (-1, -1) are averaged and rounded half away from zero; from the normalised matrix p come
Contrast = sum (i-j)^2 p and Energy = sum p^2 (MATLAB's Energy, no square root). The 32-D feature vectors of the
two images give SCOOT = 1 / (1 + ||f_gt - f_gen||_2). Constant images are fine (contrast 0, energy 1).
"""

from __future__ import annotations

import numpy as np

NUM_LEVELS = 6
BLOCKS = 4
OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1))  # MATLAB graycomatrix (row, col) offsets, in scoot_measure.m's order

# grey level -> bin 0..5 (MATLAB's level minus one); integer arithmetic reproduces floor(6*I/255) exactly
_LEVEL = np.minimum(NUM_LEVELS - 1, (NUM_LEVELS * np.arange(256)) // 255).astype(np.uint8)
_I, _J = np.meshgrid(np.arange(NUM_LEVELS), np.arange(NUM_LEVELS), indexing="ij")
_CONTRAST_W = ((_I - _J) ** 2).astype(np.float64).ravel()
_NB, _NL2 = BLOCKS * BLOCKS, NUM_LEVELS * NUM_LEVELS


def _block_index(h: int, w: int) -> np.ndarray:
    """(H, W) int32 map of the 4x4 block each pixel belongs to (row-major block order)."""
    re = np.floor(h * np.arange(BLOCKS + 1) / BLOCKS).astype(int)
    ce = np.floor(w * np.arange(BLOCKS + 1) / BLOCKS).astype(int)
    rb = np.searchsorted(re[1:], np.arange(h), side="right")
    cb = np.searchsorted(ce[1:], np.arange(w), side="right")
    return (rb[:, None] * BLOCKS + cb[None, :]).astype(np.int32)


def glcm_features(grey: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 grey -> (N, 32) float64 features [contrast, energy] for each of the 16 blocks (H, W >= 8)."""
    g = np.asarray(grey)
    if g.ndim == 2:
        g = g[None]
    n, h, w = g.shape
    q = _LEVEL[g]  # (N, H, W) bins 0..5, uint8
    blk = _block_index(h, w)
    per_image = (_NB + 1) * _NL2  # bins of one image: 16 blocks x 36 level pairs, plus 36 for discarded pairs
    img_base = (np.arange(n, dtype=np.int32) * per_image)[:, None, None]
    counts = np.zeros(n * per_image, np.int64)
    for dr, dc in OFFSETS:
        # pixel (r, c) pairs with its neighbour (r + dr, c + dc); both must lie in the image and in the same
        # block, pairs across a block edge go to the discard bins (cheaper than boolean indexing)
        r0, r1 = max(0, -dr), h - max(0, dr)
        c0, c1 = max(0, -dc), w - max(0, dc)
        ba = blk[r0:r1, c0:c1]
        base = np.where(ba == blk[r0 + dr : r1 + dr, c0 + dc : c1 + dc], ba, _NB) * _NL2
        pair = q[:, r0:r1, c0:c1] * np.uint8(NUM_LEVELS) + q[:, r0 + dr : r1 + dr, c0 + dc : c1 + dc]
        counts += np.bincount((img_base + base[None] + pair).ravel(), minlength=counts.size)
    counts = counts.reshape(n, _NB + 1, _NL2)[:, :_NB]
    # mean of the four GLCMs, then MATLAB round (half away from zero; counts are >= 0)
    glcm = np.floor(counts / 4.0 + 0.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = glcm / glcm.sum(axis=-1, keepdims=True)
    contrast = p @ _CONTRAST_W
    energy = (p * p).sum(axis=-1)
    return np.stack([contrast, energy], axis=-1).reshape(n, _NB * 2)


def scoot_from_features(f_gt: np.ndarray, f_gen: np.ndarray) -> np.ndarray:
    """SCOOT from (N, 32) feature rows: 1 / (1 + L2 distance), (N,) float64 in (0, 1]."""
    return 1.0 / (1.0 + np.sqrt(((np.asarray(f_gt) - np.asarray(f_gen)) ** 2).sum(axis=-1)))


def scoot_batch(gt: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """SCOOT of (N, H, W) uint8 grey stacks (same shape), (N,) float64."""
    return scoot_from_features(glcm_features(gt), glcm_features(gen))


def scoot(gt: np.ndarray, gen: np.ndarray) -> float:
    """SCOOT of two (H, W) uint8 grey images of the same size, in (0, 1] (1 = same texture statistics)."""
    return float(scoot_batch(np.asarray(gt)[None], np.asarray(gen)[None])[0])
