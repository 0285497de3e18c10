"""The figures of a drawing: what separates a sketch from a filtered photo, measured on the sketch alone.

- mean chroma: per pixel max(R, G, B) - min(R, G, B) on 0-255, averaged (0 = grey, as every artist's sketch is);
- 2-pixel-period energy: the share of the grey image's non-DC spectral energy on the Nyquist row and column of its
  2-D FFT (period 2 px: the checkerboard of transposed convolutions); measured at the image's own size, where the
  generator's pixel grid is;
- white-paper share: the fraction of grey pixels brighter than 230 (of 255).

Grey is the FS2K protocol's (MATLAB rgb2gray, ``protocol.rgb_to_grey_u8``). Inputs are (H, W, 3) or (H, W) uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PAPER_LEVEL = 230
FIGURES = ("chroma", "checker_energy", "paper_share")


def mean_chroma(img: np.ndarray) -> float:
    """Mean of max(R, G, B) - min(R, G, B) over the pixels (0-255); 0 for a grey image."""
    a = np.asarray(img)
    if a.ndim == 2:
        return 0.0
    a = a[..., :3].astype(np.int16)
    return float((a.max(axis=2) - a.min(axis=2)).mean())


def checker_energy(grey: np.ndarray) -> float:
    """Share of the non-DC power of ``grey`` (H, W) at the 2-pixel period: the FFT row ky = H/2 and column kx = W/2
    (only where the side is even; an odd side has no exact Nyquist frequency and contributes nothing)."""
    g = np.asarray(grey, np.float64)
    p = np.abs(np.fft.fft2(g - g.mean())) ** 2  # subtracting the mean removes DC exactly
    total = p.sum()
    if total <= 0:
        return 0.0
    h, w = g.shape
    mask = np.zeros_like(p, dtype=bool)
    if h % 2 == 0:
        mask[h // 2, :] = True
    if w % 2 == 0:
        mask[:, w // 2] = True
    return float(p[mask].sum() / total)


def paper_share(grey: np.ndarray, level: int = PAPER_LEVEL) -> float:
    """Fraction of pixels brighter than ``level`` (near-white paper)."""
    return float((np.asarray(grey) > level).mean())


def figures_of(img: np.ndarray) -> dict[str, float]:
    """The three figures of one sketch."""
    from facesketch.evaluation.protocol import rgb_to_grey_u8

    a = np.asarray(img, np.uint8)
    grey = a if a.ndim == 2 else rgb_to_grey_u8(a[..., :3])
    return {"chroma": mean_chroma(a), "checker_energy": checker_energy(grey), "paper_share": paper_share(grey)}


def folder_figures(paths: list[Path]) -> dict[str, float]:
    """Means of the figures over image files (RGB, alpha over white), with ``n``: how many were measured."""
    from facesketch.data.images import load_rgb_array

    rows = [figures_of(load_rgb_array(p)) for p in paths]
    if not rows:
        raise ValueError("no images to measure")
    out = {k: float(np.mean([r[k] for r in rows])) for k in FIGURES}
    out["n"] = len(rows)
    return out
