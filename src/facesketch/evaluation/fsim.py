"""FSIM (Zhang et al., TIP 2011), grey variant, as ``FeatureSIM.m`` v1.0 computes it, batched with torch FFTs.

The score combines phase congruency (Kovesi's ``phasecong2``: log-Gabor filters at 4 scales x 4 orientations,
built on the image's own FFT grid, noise threshold from the median response of the finest scale) and the
Scharr-like gradient magnitude: FSIM = sum(S_grad * S_pc * PC_m) / sum(PC_m), PC_m = max(PC_1, PC_2),
with T1 = 0.85 and T2 = 160 (0..255 grey levels). Images whose shorter side is >= 384 are first averaged and
subsampled by F = round(min side / 256), as the original does (F = 1 for every FS2K size).

NaN rule (conformance README, rule 4): the original divides 0 by 0 when either image is constant; we return
NaN for such a pair (checked explicitly, so float rounding in the FFT cannot turn it into a finite number).

``precision='float64'`` reproduces FeatureSIM.m to ~1e-14 on the conformance pairs; ``'float32'`` (complex64
FFTs, float64 final sums) is about 2x faster and stays within 1e-7 there (the tolerance we test is 1e-6).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch

NSCALE, NORIENT = 4, 4
MIN_WAVELENGTH, MULT, SIGMA_ON_F, D_THETA_ON_SIGMA, K_NOISE, EPSILON = 6, 2, 0.55, 1.2, 2.0, 1e-4
T1, T2 = 0.85, 160.0


@contextmanager
def single_threaded(device: str | torch.device = "cpu"):
    """Run torch CPU ops with one intra-op thread inside the block (restored afterwards; no-op off the CPU).

    FSIM is hundreds of medium-sized elementwise ops: two OpenMP threads gain little, and on a busy 2-core
    machine each parallel region waits for a descheduled thread, which made scoring up to 10x slower in our
    measurements. Parallelism comes from worker processes instead (``runner.score_pairs``).
    """
    old = torch.get_num_threads()
    change = torch.device(device).type == "cpu" and old != 1
    if change:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(old)


def _freq_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Kovesi's normalised frequency coordinates (x, y), each (rows, cols), range +-0.5, zero at the centre."""

    def rng(n):
        if n % 2:
            return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
        return np.arange(-n / 2, n / 2) / n

    return np.meshgrid(rng(cols), rng(rows))


@lru_cache(maxsize=8)
def filter_bank(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The 16 log-Gabor filters of ``phasecong2`` for a rows x cols image, and the noise-threshold factors.

    Returns (filters (NORIENT, NSCALE, rows, cols) float64, zero frequency at [0, 0]; t_factor (NORIENT,)).
    The threshold of orientation o is ``t_factor[o] * sqrt(median |EO_0o|^2)``: the Rayleigh noise model of the
    original, with the filter-only sums (EM_n, sum ifft(filter)^2, cross terms) folded into one constant.
    """
    x, y = _freq_grid(rows, cols)
    radius = np.fft.ifftshift(np.sqrt(x * x + y * y))
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1.0  # avoid log(0); the DC term of every filter is zeroed below
    sintheta, costheta = np.sin(theta), np.cos(theta)
    # low-pass (radius 0.45, order 15) so no filter reaches the FFT corners
    lp = np.fft.ifftshift(1.0 / (1.0 + (np.sqrt(x * x + y * y) / 0.45) ** (2 * 15)))
    log_gabor = []
    for s in range(NSCALE):
        fo = 1.0 / (MIN_WAVELENGTH * MULT**s)
        lg = np.exp((-(np.log(radius / fo)) ** 2) / (2 * math.log(SIGMA_ON_F) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    theta_sigma = math.pi / NORIENT / D_THETA_ON_SIGMA
    filters = np.empty((NORIENT, NSCALE, rows, cols))
    t_factor = np.empty(NORIENT)
    for o in range(NORIENT):
        angl = o * math.pi / NORIENT
        ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
        dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
        spread = np.exp((-np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
        ifft_filt = []
        for s in range(NSCALE):
            filters[o, s] = log_gabor[s] * spread
            ifft_filt.append(np.real(np.fft.ifft2(filters[o, s])) * math.sqrt(rows * cols))
        em_n = (filters[o, 0] ** 2).sum()
        sum_an2 = sum(f * f for f in ifft_filt).sum()
        sum_aiaj = sum(ifft_filt[i] * ifft_filt[j] for i in range(NSCALE) for j in range(i + 1, NSCALE)).sum()
        # noisePower = meanE2n / EM_n with meanE2n = -median / log(0.5); tau = sqrt(EstNoiseEnergy2 / 2);
        # T = (tau sqrt(pi/2) + k sqrt((2 - pi/2) tau^2)) / 1.7  ->  T = t_factor * sqrt(median)
        tau_per_sqrt_median = math.sqrt((2 * sum_an2 + 4 * sum_aiaj) / (-math.log(0.5) * em_n) / 2)
        t_factor[o] = tau_per_sqrt_median * (math.sqrt(math.pi / 2) + K_NOISE * math.sqrt(2 - math.pi / 2)) / 1.7
    return filters, t_factor


@lru_cache(maxsize=16)
def _torch_filters(rows: int, cols: int, dtype: torch.dtype, device: str):
    """The filter bank as a (NORIENT, NSCALE, H, W, 2) tensor, each value twice, to multiply a spectrum in its
    ``view_as_real`` layout with one contiguous real multiply (a complex-by-real multiply would first build a
    complex copy of the filter)."""
    filters, t_factor = filter_bank(rows, cols)
    f = torch.from_numpy(filters).to(device=device, dtype=dtype)
    return f[..., None].expand(*f.shape, 2).contiguous(), torch.from_numpy(t_factor)


def _median_of_squares(amp: torch.Tensor) -> torch.Tensor:
    """MATLAB ``median(amp(:).^2)`` per image of a (N, H, W) amplitude stack, float64 (N,).

    Squaring is monotone on amplitudes, so the middle values of amp^2 are the squares of amp's middle values;
    for an even count MATLAB averages the two middle values.
    """
    p = amp.shape[-2] * amp.shape[-1]
    k = p // 2
    if amp.device.type != "cpu":  # accelerators: torch's selection (numpy's partition is faster on CPU)
        flat = amp.reshape(amp.shape[0], -1).double()
        lo = torch.kthvalue(flat, k + p % 2, dim=1).values
        hi = lo if p % 2 else torch.kthvalue(flat, k + 1, dim=1).values
        return 0.5 * (lo * lo + hi * hi)
    a = amp.reshape(amp.shape[0], -1).numpy()
    if p % 2:
        mid = np.partition(a, k, axis=1)[:, k].astype(np.float64)
        return torch.from_numpy(mid * mid)
    part = np.partition(a, k - 1, axis=1)  # everything right of k-1 is >= the lower middle value
    lo = part[:, k - 1].astype(np.float64)
    hi = part[:, k:].min(axis=1).astype(np.float64)
    return torch.from_numpy(0.5 * (lo * lo + hi * hi))


PC_SUB_BATCH = 1  # images per CPU FFT batch: one image keeps the (4, H, W) complex stacks closest to cache


def phase_congruency(y: torch.Tensor, precision: str = "float64") -> torch.Tensor:
    """``phasecong2`` of a (N, H, W) stack of grey levels (0..255 floats); returns (N, H, W) PC maps.

    float64 or float32 (complex64 FFTs) per ``precision``. Constant images give NaN maps (0/0), as in the original.
    """
    sub = PC_SUB_BATCH if y.device.type == "cpu" else y.shape[0]
    if y.shape[0] > sub:
        return torch.cat([phase_congruency(y[i : i + sub], precision) for i in range(0, y.shape[0], sub)])
    rdtype = torch.float64 if precision == "float64" else torch.float32
    n, rows, cols = y.shape
    filters, t_factor = _torch_filters(rows, cols, rdtype, str(y.device))
    spectrum = torch.view_as_real(torch.fft.fft2(y.to(rdtype)))  # (n, H, W, 2)
    energy_all = torch.zeros((n, rows, cols), dtype=rdtype, device=y.device)
    an_all = torch.zeros_like(energy_all)
    for o in range(NORIENT):
        # all scales of one orientation at once: (n, NSCALE, H, W); real part = even, imaginary = odd filter response
        eo = torch.fft.ifft2(torch.view_as_complex(spectrum[:, None] * filters[o][None]))
        even, odd = torch.view_as_real(eo).movedim(-1, 0).contiguous()  # planar copies: the ops below run contiguous
        # in-place and fused (addcmul) ops: this loop is memory-bound, every pass over (n, 4, H, W) counts
        amp = torch.addcmul(even * even, odd, odd).sqrt_()  # |EO|; torch.abs on complex uses hypot, slower
        an_all += amp.sum(1)
        sum_e, sum_o = even.sum(1), odd.sum(1)
        x_energy = torch.addcmul(sum_e * sum_e, sum_o, sum_o).sqrt_().add_(EPSILON)
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        # Energy = sum_s (E_s MeanE + O_s MeanO - |E_s MeanO - O_s MeanE|); the first part is linear in E_s, O_s
        energy = torch.addcmul(sum_e * mean_e, sum_o, mean_o)
        energy -= torch.addcmul(even * mean_o[:, None], odd, mean_e[:, None], value=-1).abs_().sum(1)
        # noise threshold from the median squared amplitude of the finest scale (Rayleigh model, see filter_bank)
        t = (t_factor[o] * torch.sqrt(_median_of_squares(amp[:, 0]).cpu())).to(y.device, rdtype)
        energy_all += energy.sub_(t[:, None, None]).clamp_(min=0.0)
    return energy_all / an_all


def gradient_magnitude(y: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, H, W): |conv2(Y, dx, 'same')|, |conv2(Y, dy, 'same')| combined, zero padding (FeatureSIM.m)."""
    p = torch.nn.functional.pad(y[:, None], (1, 1, 1, 1))[:, 0]
    # dx = [3 0 -3; 10 0 -10; 3 0 -3]/16 and dy = dx'; convolution flips signs only, which the magnitude ignores.
    # Both are separable: a central difference along one axis, then [3 10 3]/16 along the other.
    dh = p[:, :, 2:] - p[:, :, :-2]  # (N, H+2, W)
    dv = p[:, 2:, :] - p[:, :-2, :]  # (N, H, W+2)
    ix = (3 * (dh[:, :-2] + dh[:, 2:]) + 10 * dh[:, 1:-1]) / 16
    iy = (3 * (dv[:, :, :-2] + dv[:, :, 2:]) + 10 * dv[:, :, 1:-1]) / 16
    return torch.addcmul(ix * ix, iy, iy).sqrt_()


def fsim_downsample(y: np.ndarray) -> np.ndarray:
    """FeatureSIM.m's automatic downsampling of (N, H, W) float64: F = max(1, round(min(H, W)/256)), F x F mean
    (``conv2(.., 'same')``, zero padding), keep every F-th pixel. Returns the input unchanged when F = 1."""
    n, h, w = y.shape
    f = max(1, int(math.floor(min(h, w) / 256 + 0.5)))
    if f == 1:
        return y
    lo, hi = f - 1 - f // 2, f // 2
    p = np.pad(y, ((0, 0), (lo, hi), (lo, hi)))
    c = np.cumsum(np.pad(p, ((0, 0), (1, 0), (1, 0))), axis=1).cumsum(axis=2)
    box = c[:, f:, f:] - c[:, :-f, f:] - c[:, f:, :-f] + c[:, :-f, :-f]  # F x F window sums starting at each pixel
    return (box / (f * f))[:, ::f, ::f]


def fsim_batch(gt: np.ndarray, gen: np.ndarray, *, precision: str = "float64", device: str = "cpu") -> np.ndarray:
    """Grey FSIM of (N, H, W) uint8 (0..255) stacks of the same shape; (N,) float64 in [0, 1], NaN for constant images.

    ``precision``: 'float64' (exact port) or 'float32' (every map in float32, the two final sums in float64).
    """
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    rdtype = torch.float64 if precision == "float64" else torch.float32
    gt = np.asarray(gt)
    gen = np.asarray(gen)
    n = gt.shape[0]
    flat_gt, flat_gen = gt.reshape(n, -1), gen.reshape(n, -1)
    constant = (flat_gt.max(1) == flat_gt.min(1)) | (flat_gen.max(1) == flat_gen.min(1))
    y = fsim_downsample(np.concatenate([gt, gen]).astype(np.float64))
    y = torch.from_numpy(y).to(device, rdtype)
    with torch.no_grad(), single_threaded(device):
        pc = phase_congruency(y, precision)
        g = gradient_magnitude(y)
        pc1, pc2, g1, g2 = pc[:n], pc[n:], g[:n], g[n:]
        s_pc = (2 * pc1 * pc2 + T1) / (pc1 * pc1 + pc2 * pc2 + T1)
        s_g = (2 * g1 * g2 + T2) / (g1 * g1 + g2 * g2 + T2)
        pc_m = torch.fmax(pc1, pc2)  # MATLAB max ignores NaN
        num = (s_g * s_pc * pc_m).sum(dim=(1, 2), dtype=torch.float64)
        score = num / pc_m.sum(dim=(1, 2), dtype=torch.float64)
    out = score.cpu().numpy()
    out[constant] = np.nan  # 0/0 in FeatureSIM.m; set explicitly so FFT rounding cannot make it finite
    return out


def fsim(gt: np.ndarray, gen: np.ndarray) -> float:
    """FeatureSIM.m grey FSIM of two (H, W) uint8 images of the same size, in [0, 1]; NaN when either is constant."""
    return float(fsim_batch(np.asarray(gt)[None], np.asarray(gen)[None])[0])
