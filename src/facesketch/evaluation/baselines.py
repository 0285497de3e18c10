"""Training-free baselines scored beside our model in docs/results.md (``scripts/pencil_baseline.py``)."""

from __future__ import annotations

import numpy as np


def pencil_sketch(rgb: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    """The colour-dodge pencil filter: grey / (1 - blur(1 - grey)), on (H, W, 3) uint8 RGB -> (H, W) uint8 grey.

    ``sigma`` is the Gaussian blur's standard deviation in pixels of the input. Flat regions go white, edges and
    dark detail stay as strokes: the ten-line "photo to pencil sketch" recipe that any learned model must beat.
    """
    from scipy.ndimage import gaussian_filter

    from facesketch.evaluation.protocol import rgb_to_grey_u8

    grey = rgb_to_grey_u8(np.asarray(rgb, dtype=np.uint8)).astype(np.float64)
    blurred_inverse = gaussian_filter(255.0 - grey, sigma=sigma, mode="reflect")
    dodge = grey * 255.0 / np.maximum(255.0 - blurred_inverse, 1.0)
    return np.clip(np.rint(dodge), 0, 255).astype(np.uint8)
