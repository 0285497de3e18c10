"""CycleGAN preprocessing as explicit parameters: resize -> random crop -> horizontal flip, shared with auxiliary maps.

The random part of the transform is drawn once as ``AugmentParams`` so that a photo and its per-photo maps
(pseudo-ground-truth normals) get the identical crop and flip, while the sketch draws its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class AugmentParams:
    """Where to crop (top, left) at the load size, the crop size, and whether to mirror."""

    top: int
    left: int
    size: int
    flip: bool


def sample_params(rng: np.random.Generator, *, load_size: int, crop_size: int, preprocess: str, flip: bool) -> AugmentParams:
    """Draw crop position and flip like CycleGAN's ``get_params`` (uniform crop origin, flip with p = 0.5)."""
    if preprocess == "resize_and_crop" and load_size > crop_size:
        top = int(rng.integers(0, load_size - crop_size + 1))
        left = int(rng.integers(0, load_size - crop_size + 1))
        size = crop_size
    else:
        top = left = 0
        size = load_size
    do_flip = bool(flip and rng.random() < 0.5)
    return AugmentParams(top, left, size, do_flip)


def load_size_for(preprocess: str, load_size: int, crop_size: int) -> int:
    """The square size images are resized to before cropping ('resize' means load = crop, no crop)."""
    return crop_size if preprocess == "resize" else load_size


def apply_image(img: np.ndarray, p: AugmentParams) -> torch.Tensor:
    """(H, W, 3) uint8 at the load size -> (3, size, size) uint8 tensor, cropped and flipped (contiguous)."""
    crop = img[p.top : p.top + p.size, p.left : p.left + p.size]
    if p.flip:
        crop = crop[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))


def apply_target(target: np.ndarray, p: AugmentParams, *, negate_x: bool = False) -> torch.Tensor:
    """(C, H, W) per-photo target at the load size -> cropped like the photo, mirrored with it; ``negate_x`` also
    negates channel 0 on a flip (normal maps: x points right)."""
    crop = target[:, p.top : p.top + p.size, p.left : p.left + p.size]
    if p.flip:
        crop = crop[:, :, ::-1].copy()
        if negate_x:
            crop[0] = -crop[0]
    return torch.from_numpy(np.ascontiguousarray(crop))


def apply_normals(normals: np.ndarray, p: AugmentParams) -> torch.Tensor:
    """(3, H, W) unit normals (x right, y down, z to camera) -> cropped, and on a mirror flip: W reversed AND x negated."""
    return apply_target(normals, p, negate_x=True)


def context_view(img: np.ndarray, p: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) uint8 load-size photo -> its whole (3, H, W) uint8 view mirrored like the crop ``p``, and the crop's
    window [x0, y0, h, w] in it (int64): the crop is exactly ``view[:, y0:y0+h, x0:x0+w]``."""
    full = img[:, ::-1] if p.flip else img
    x0 = img.shape[1] - p.left - p.size if p.flip else p.left
    window = torch.tensor([x0, p.top, p.size, p.size], dtype=torch.int64)
    return torch.from_numpy(np.ascontiguousarray(full.transpose(2, 0, 1))), window


NORMALS_FOV_DEG = 60.0  # the field of view `facesketch normals` gives DSINE over the whole load-size image


def crop_intrinsics(p: AugmentParams, full_size: int, fov_deg: float = NORMALS_FOV_DEG) -> torch.Tensor:
    """(3, 3) float32 pinhole intrinsics of the crop ``p`` of a ``full_size`` square image seen with ``fov_deg``.

    The camera is the one the precomputed normal target saw (DSINE on the whole load-size image): focal length
    f = (full_size / 2) / tan(fov / 2) of the *full* image, principal point at its centre (top-left pixel centre is
    (0, 0): c = full_size / 2 - 0.5) moved by the crop offset, and mirrored (c_x -> size - 1 - c_x) with a flip.
    """
    import math

    f = (full_size / 2.0) / math.tan(math.radians(fov_deg / 2.0))
    cx, cy = full_size / 2.0 - 0.5 - p.left, full_size / 2.0 - 0.5 - p.top
    if p.flip:
        cx = p.size - 1 - cx
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=torch.float64).float()


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 (any shape) -> float in [-1, 1], exactly as ToTensor + Normalize(0.5, 0.5): (x/255 - 0.5)/0.5."""
    return (x.float() / 255.0 - 0.5) / 0.5


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3), rounding like CycleGAN's ``tensor2im``'s intent."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def resize_normals(normals: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (3, H, W) normal map to ``size=(w, h)`` channel-wise (bilinear), then renormalise to unit length."""
    t = torch.from_numpy(np.asarray(normals, np.float32))[None]
    t = torch.nn.functional.interpolate(t, size=(size[1], size[0]), mode="bilinear", align_corners=False)[0]
    t = t / t.norm(dim=0, keepdim=True).clamp_min(1e-6)
    return t.numpy()
