"""SSIM on uint8 grey images, batched: MATLAB IPT semantics (key `ssim`, FS2K-official) and Wang 2003 (`ssim_wang2003`).

Both use an 11x11 Gaussian window (sigma 1.5), K = (0.01, 0.03), L = 255 and the C3 = C2/2 form
``((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``.
They differ only at the border:
- MATLAB ``ssim(A, ref)`` filters with replicate padding and averages the full-size map;
- Wang's ``ssim_index.m`` filters 'valid', i.e. drops a 5-px border.
A replicate-padded filter equals the 'valid' filter away from the border, so one pass gives both: the Wang score
is the mean of the IPT map's interior. Everything is float64 (the conformance tolerance is 1e-9; the variance
terms E[x^2] - mu^2 cancel catastrophically in float32).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

K1, K2, L = 0.01, 0.03, 255.0
C1, C2 = (K1 * L) ** 2, (K2 * L) ** 2
WIN, SIGMA = 11, 1.5
HALF = WIN // 2


def gaussian_kernel_1d(size: int = WIN, sigma: float = SIGMA) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` (the 2-D window is its outer product), float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_G = gaussian_kernel_1d()


def _blur(a: np.ndarray) -> np.ndarray:
    """Separable Gaussian of a (N, H, W) float64 stack, replicate padding, same size."""
    a = ndimage.correlate1d(a, _G, axis=-2, mode="nearest")
    return ndimage.correlate1d(a, _G, axis=-1, mode="nearest")


def ssim_maps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and contrast-structure maps of two (N, H, W) stacks of grey levels (0..255), replicate padding.

    Returns (ssim_map, cs_map), each (N, H, W) float64. Crop ``[..., 5:-5, 5:-5]`` for Wang's 'valid' maps.
    Only four blurs are needed: the sum and difference images give mu_x mu_y, mu_x^2 + mu_y^2, E[xy] and
    E[x^2 + y^2] (SSIM never needs the two variances separately).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    s, d = x + y, x - y
    stack = _blur(np.concatenate([s, d, s * s, d * d]))
    n = x.shape[0]
    mu_s, mu_d, e_ss, e_dd = stack[:n], stack[n : 2 * n], stack[2 * n : 3 * n], stack[3 * n :]
    mu_xy = 0.25 * (mu_s * mu_s - mu_d * mu_d)  # mu_x * mu_y
    mu_sq = 0.5 * (mu_s * mu_s + mu_d * mu_d)  # mu_x^2 + mu_y^2
    sigma_xy = 0.25 * (e_ss - e_dd) - mu_xy
    sigma_sq = 0.5 * (e_ss + e_dd) - mu_sq  # sigma_x^2 + sigma_y^2
    cs = (2.0 * sigma_xy + C2) / (sigma_sq + C2)
    lum = (2.0 * mu_xy + C1) / (mu_sq + C1)
    return lum * cs, cs


def ssim_batch(gt: np.ndarray, gen: np.ndarray) -> dict[str, np.ndarray]:
    """Both SSIM variants for (N, H, W) uint8 (or 0..255 float) stacks; H, W >= 11.

    Returns {'ssim': (N,) IPT full-map means, 'ssim_wang2003': (N,) valid-map means,
    'cs_valid': (N,) valid contrast-structure means (MS-SSIM's level-1 term)}.
    """
    smap, cs = ssim_maps(gt, gen)
    inner = (slice(None), slice(HALF, -HALF), slice(HALF, -HALF))
    return {
        "ssim": smap.mean(axis=(1, 2)),
        "ssim_wang2003": smap[inner].mean(axis=(1, 2)),
        "cs_valid": cs[inner].mean(axis=(1, 2)),
    }


def ssim(gt: np.ndarray, gen: np.ndarray) -> float:
    """FS2K-official SSIM (MATLAB IPT ``ssim(gen, gt)``) of two (H, W) uint8 grey images, in [-1, 1]."""
    return float(ssim_batch(np.asarray(gt)[None], np.asarray(gen)[None])["ssim"][0])


def ssim_wang2003(gt: np.ndarray, gen: np.ndarray) -> float:
    """Wang 2003 ``ssim_index.m`` SSIM ('valid' window) of two (H, W) uint8 grey images, in [-1, 1]."""
    return float(ssim_batch(np.asarray(gt)[None], np.asarray(gen)[None])["ssim_wang2003"][0])
