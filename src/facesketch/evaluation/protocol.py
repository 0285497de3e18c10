"""The FS2K evaluation protocol: MATLAB-style uint8 grey, PIL bicubic resize to the GT size, and prediction/GT pairing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from facesketch.data.images import IMAGE_EXTENSIONS, decode_image
from facesketch.errors import UserError

# MATLAB rgb2gray coefficients (the exact doubles of its inverse-YIQ row), used by FS2KToolbox via rgb2gray(imread(.)).
GREY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
RESIZE_METHOD = "pil_bicubic"


def round_half_away_u8(x: np.ndarray) -> np.ndarray:
    """MATLAB ``uint8(x)``: round half away from zero, then saturate to 0..255 (np.round would round half to even)."""
    return np.clip(np.floor(np.asarray(x, np.float64) + 0.5), 0, 255).astype(np.uint8)


def rgb_to_grey_u8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3 or 4) uint8 RGB[A] -> (H, W) uint8 grey with MATLAB rgb2gray weights; any alpha channel is ignored.

    Computed in float64 in the order R, G, B, as MATLAB does, so ties round the same way.
    A (H, W) array is returned unchanged (grey files are used as stored).
    """
    a = np.asarray(rgb)
    if a.ndim == 2:
        return a.astype(np.uint8, copy=False)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    a = a.astype(np.float64)
    w0, w1, w2 = GREY_WEIGHTS
    return round_half_away_u8(a[..., 0] * w0 + a[..., 1] * w1 + a[..., 2] * w2)


def _decoded_to_grey(im: Image.Image) -> np.ndarray:
    """A decoded PIL image -> (H, W) uint8 grey following MATLAB's rgb2gray(imread(.)) as far as it is defined."""
    mode = im.mode
    if mode == "L":
        return np.asarray(im, dtype=np.uint8)
    if mode == "LA":  # imread returns the grey plane and the alpha separately
        return np.asarray(im.getchannel("L"), dtype=np.uint8)
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode in ("RGB", "RGBA", "RGBX", "RGBa"):
        return rgb_to_grey_u8(np.asarray(im)[..., :3])
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit files: MATLAB im2uint8 semantics (x/257); float/int32 files in 0..255 are taken as grey levels.
        a = np.asarray(im, dtype=np.float64)
        if mode.startswith("I;16") or a.max(initial=0) > 255:
            a = a / 257.0
        return round_half_away_u8(a)
    # Palette, CMYK, YCbCr, ...: imread would hand back indices or other planes; take their RGB rendering instead.
    return rgb_to_grey_u8(np.asarray(im.convert("RGBA" if mode in ("P", "PA") else "RGB"))[..., :3])


def load_grey_u8(path: Path | str) -> np.ndarray:
    """Decode ``path`` into (H, W) uint8 grey as FS2KToolbox sees it: stored pixels, alpha ignored, no EXIF rotation.

    Raises UnreadableImageError (naming the file) for missing, truncated or non-image files.
    """
    return decode_image(path, _decoded_to_grey)


def resize_grey(grey: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 -> (h, w) uint8 with PIL bicubic on mode 'L' (the stand-in for MATLAB imresize; see metrics.md)."""
    h, w = int(hw[0]), int(hw[1])
    if grey.shape == (h, w):
        return grey
    return np.asarray(Image.fromarray(np.ascontiguousarray(grey), "L").resize((w, h), Image.BICUBIC), dtype=np.uint8)


def to_eval_pair(pred: np.ndarray, gt: np.ndarray, size: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Bring a (H, W) uint8 grey prediction and GT to the evaluation size; returns (pred, gt, pred_was_resized).

    ``size=None``: the FS2K rule, only the prediction is resized, to the GT's native size.
    ``size=N``: both are resized to N x N (a non-standard protocol, recorded in every report).
    """
    if size is None:
        resized = pred.shape != gt.shape
        return resize_grey(pred, gt.shape), gt, resized
    return resize_grey(pred, (size, size)), resize_grey(gt, (size, size)), pred.shape != (size, size)


def protocol_description(size: int | None, *, lpips_net: str) -> dict:
    """The conventions an evaluation used, for metrics.json and table.md."""
    import PIL

    return {
        "name": "FS2K (FS2KToolbox eval_FSS_results.m: metric(gt, pred), plain mean over images)",
        "grey": "MATLAB rgb2gray of the stored pixels, float64, round half away from zero to uint8; alpha ignored; "
        "grey files used as stored",
        "grey_weights": list(GREY_WEIGHTS),
        "resize_method": f"{RESIZE_METHOD}: Image.fromarray(grey_u8, 'L').resize((w, h), Image.BICUBIC), "
        f"Pillow {PIL.__version__}, applied to the uint8 grey image",
        "eval_size_rule": "ground-truth native size (only the prediction is resized)"
        if size is None
        else f"both prediction and ground truth resized to {size}x{size} (NOT the FS2K rule)",
        "eval_size": size,
        "ssim_variant": "matlab_ipt: MATLAB IPT ssim(gt, pred), 11x11 Gaussian sigma 1.5, K=(0.01, 0.03), L=255, "
        "replicate padding, mean of the full-size map (FS2K-official)",
        "ssim_wang2003_variant": "Wang ssim_index.m: same window and constants, 'valid' filtering (5-px border dropped)",
        "ms_ssim_variant": "Wang 2003 pyramid: 5 levels, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), valid 11x11 "
        "Gaussian, 2x2 mean with symmetric bottom/right padding then every 2nd pixel; a negative per-level mean is "
        "clamped to 0 (score 0)",
        "fsim_variant": "FeatureSIM.m v1.0, grey FSIM; NaN when either image is constant (0/0 in the original)",
        "scoot_variant": "FS2KToolbox scoot_measure.m: 4x4 blocks, 6 grey levels, 4 GLCM offsets averaged and rounded, "
        "[contrast, energy=sum p^2] per block, 1/(1+L2 distance)",
        "lpips_net": lpips_net,
        "lpips_variant": f"LPIPS v0.1 net={lpips_net}, grey repeated to 3 channels, x/255*2-1, spatial mean",
        "mean_rule": "plain mean over images; NaN (null) if any image is NaN, as MATLAB mean; see n_nan and "
        "the *_nan_excluded keys",
    }


# ---------------------------------------------------------------------------------------------------------------
# pairing predictions with ground truth


@dataclass
class EvalItem:
    """One prediction/GT pair to score. ``pred`` is a file or an (H, W[, 3]) uint8 array already in memory."""

    id: str
    gt: Path | None  # None: the dataset lacks this sketch (reported as unreadable)
    pred: Path | np.ndarray | None
    image_name: str | None = None
    attrs: dict = field(default_factory=dict)


@dataclass
class Pairing:
    """Result of matching a prediction folder against a ground-truth list."""

    items: list[EvalItem]  # every GT entry, in GT order; pred None where missing
    extra: list[Path] = field(default_factory=list)  # prediction files that matched no GT entry

    @property
    def present(self) -> list[EvalItem]:
        return [it for it in self.items if it.pred is not None]

    @property
    def missing(self) -> list[str]:
        return [it.id for it in self.items if it.pred is None]


_SUBDIR = re.compile(r"^photo(\d+)$")
_STEM_NUM = re.compile(r"^image(\d+)$")
_STEM_ID = re.compile(r"^photo(\d+)_image(\d+)$")


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, case-insensitive extension, hidden files and folders skipped), sorted."""
    out = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            out.append(p)
    return out


def _fs2k_key(path: Path) -> tuple[str, str] | None:
    """('name', 'photo1/image0110') or ('number', '0110') for a prediction file; None when the name fits neither."""
    stem = path.stem
    m = _STEM_ID.match(stem)
    if m:
        return "name", f"photo{m.group(1)}/image{m.group(2)}"
    m = _STEM_NUM.match(stem)
    if m:
        pm = _SUBDIR.match(path.parent.name)
        if pm:
            return "name", f"photo{pm.group(1)}/image{m.group(1)}"
        return "number", m.group(1)
    return None


def pair_fs2k(pred_dir: Path, records) -> Pairing:
    """Match predictions in ``pred_dir`` with FS2K records (``facesketch.data.fs2k.FS2KRecord``), in record order.

    Accepted names: ``photo1_image0110.<ext>`` (the record id), ``photo1/image0110.<ext>`` (subfolders), or bare
    ``image0110.<ext>`` when that number belongs to exactly one record of the split. Raises UserError on
    ambiguous bare names and on two files for one record.
    """
    pred_dir = Path(pred_dir)
    by_name = {r.image_name: r for r in records}
    by_number: dict[str, list] = {}
    for r in records:
        by_number.setdefault(r.number, []).append(r)
    found: dict[str, Path] = {}
    extra: list[Path] = []
    for p in list_images(pred_dir):
        key = _fs2k_key(p)
        rec = None
        if key and key[0] == "name":
            rec = by_name.get(key[1])
        elif key and key[0] == "number":
            cands = by_number.get(key[1], [])
            if len(cands) > 1:
                names = " and ".join(c.image_name for c in cands)
                raise UserError(
                    f"{p}: bare name image{key[1]} is ambiguous in this split ({names}); "
                    f"name predictions by record id, e.g. {cands[0].id}{p.suffix}, or put them in photoN/ subfolders"
                )
            rec = cands[0] if cands else None
        if rec is None:
            extra.append(p)
            continue
        if rec.image_name in found:
            raise UserError(
                f"two predictions for {rec.image_name} in --pred: {found[rec.image_name]} and {p}; keep one"
            )
        found[rec.image_name] = p
    items = []
    for r in records:
        gt = r.sketch
        items.append(EvalItem(r.id, gt, found.get(r.image_name), r.image_name, dict(r.attrs, source=r.source)))
    return Pairing(items, extra)


def _rel_key(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def pair_by_stem(pred_dir: Path, gt_dir: Path) -> Pairing:
    """Match predictions with ground-truth files by relative path without extension (flat folders: by file stem)."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    gts = list_images(gt_dir)
    if not gts:
        raise UserError(f"--gt {gt_dir}: no image files found ({', '.join(IMAGE_EXTENSIONS)})")
    gt_by_key: dict[str, Path] = {}
    for g in gts:
        k = _rel_key(g, gt_dir)
        if k in gt_by_key:
            raise UserError(f"--gt {gt_dir}: two ground-truth files for {k!r}: {gt_by_key[k].name} and {g.name}")
        gt_by_key[k] = g
    found: dict[str, Path] = {}
    extra = []
    for p in list_images(pred_dir):
        k = _rel_key(p, pred_dir)
        if k not in gt_by_key:
            extra.append(p)
            continue
        if k in found:
            raise UserError(f"two predictions for {k!r} in --pred: {found[k]} and {p}; keep one")
        found[k] = p
    items = [EvalItem(k, g, found.get(k), None, {}) for k, g in gt_by_key.items()]
    return Pairing(items, extra)
