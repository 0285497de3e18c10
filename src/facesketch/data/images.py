"""Reading images robustly: content-sniffed formats, EXIF rotation, alpha, grey and 16-bit files, all to RGB uint8."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

T = TypeVar("T")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

# Decompression-bomb guard: a 2000 px portrait is ordinary, a 20k x 20k upload is not.
Image.MAX_IMAGE_PIXELS = 120_000_000


# Shape bounds, checked from the header before anything is decoded or resized: the face path scales an image so
# that its short side is a few hundred pixels, so a 3000 x 1 strip would become a 600,000 x 200 buffer.
MAX_SIDE = 16384
MAX_ASPECT = 10.0


def image_bounds_problem(width: int, height: int) -> str | None:
    """Why a ``width`` x ``height`` image is refused (too large a side, too thin), or None when it is fine."""
    if width < 1 or height < 1:
        return f"{width} x {height} px: empty image"
    if max(width, height) > MAX_SIDE:
        return f"{width} x {height} px: a side is over {MAX_SIDE} px; shrink it first"
    if max(width, height) / min(width, height) > MAX_ASPECT:
        return (f"{width} x {height} px: aspect ratio over {MAX_ASPECT:g}:1 (a strip, not a picture); "
                "crop it to the part you want translated")  # fmt: skip
    return None


class UnreadableImageError(Exception):
    """An image file that cannot be decoded; ``str()`` names the file and the reason."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def to_rgb(im: Image.Image, *, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any PIL mode -> RGB. Transparent pixels are composited over ``background`` (white: paper).

    FS2K holds eight RGBA PNGs (named .jpg) whose transparent pixels already carry white RGB, so
    compositing and dropping alpha agree there; compositing is the safe rule for users' own files.
    16-bit and float grey images are rescaled to 8 bits, not clipped.
    """
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" or im.mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        base = Image.new("RGBA", im.size, (*background, 255))
        return Image.alpha_composite(base, im).convert("RGB")
    return im.convert("RGB")


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file without blocking or reading forever (a FIFO, a socket, a device, a
    folder), or None for a regular file or a missing one (reported as missing where it is opened)."""
    import stat

    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket"
            if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")  # fmt: skip
    return f"{kind}, not a regular file: give an image file"


def decode_image(path: Path | str, convert: Callable[[Image.Image], T]) -> T:
    """Open and fully decode ``path`` and return ``convert(image)``; every failure becomes an UnreadableImageError
    naming the file (missing, not an image, truncated, too large)."""
    path = Path(path)
    problem = not_a_regular_file(path)
    if problem:
        raise UnreadableImageError(path, problem)
    try:
        with Image.open(path) as im:
            problem = image_bounds_problem(*im.size)
            if problem:
                raise UnreadableImageError(path, problem)
            im.load()
            return convert(im)
    except FileNotFoundError:
        raise UnreadableImageError(path, "file not found") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(path, "not an image file PIL can identify") from None
    except Image.DecompressionBombError as e:
        raise UnreadableImageError(path, f"image too large ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UnreadableImageError(path, f"cannot decode ({e})") from None


def load_rgb(path: Path | str, *, exif_transpose: bool = True) -> Image.Image:
    """Decode ``path`` fully into an RGB PIL image (whatever its extension claims), EXIF rotation applied.

    Raises UnreadableImageError (naming the file) for missing, truncated or non-image files.
    """
    return decode_image(path, lambda im: to_rgb(ImageOps.exif_transpose(im) if exif_transpose else im))


def load_rgb_array(path: Path | str, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB; with ``size=(w, h)`` resized with bicubic (CycleGAN's resize)."""
    im = load_rgb(path)
    if size is not None and im.size != tuple(size):
        im = im.resize(tuple(size), Image.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def sniff_format(path: Path) -> str | None:
    """The real container format ('JPEG', 'PNG', ...) or None when the file is not an image."""
    try:
        with Image.open(path) as im:
            return im.format
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def save_image_atomic(img: Image.Image | np.ndarray, path: Path, **save_kwargs) -> None:
    """Write an image via a temporary file and ``os.replace`` so a crash never leaves half a file."""
    from facesketch.atomic import atomic_output

    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}.get(path.suffix.lower(), "PNG")
    with atomic_output(path) as tmp:
        img.save(tmp, format=fmt, **save_kwargs)
