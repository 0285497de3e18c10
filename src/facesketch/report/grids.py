"""Image grids with labels: sample rows (real_A, fake_B, rec_A, ...) and attention-mask panels."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_H = 16


def _font():
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def label_image(img: np.ndarray, text: str) -> np.ndarray:
    """Put a white strip with ``text`` above an (H, W, 3) uint8 image."""
    h, w = img.shape[:2]
    canvas = Image.new("RGB", (w, h + LABEL_H), (255, 255, 255))
    canvas.paste(Image.fromarray(img), (0, LABEL_H))
    ImageDraw.Draw(canvas).text((3, 2), text[: max(1, w // 7)], fill=(0, 0, 0), font=_font())
    return np.asarray(canvas)


def tile(images: list[list[np.ndarray]], *, pad: int = 2, bg: int = 255) -> np.ndarray:
    """Rows of equally sized (H, W, 3) uint8 images -> one (H', W', 3) uint8 grid."""
    rows = [r for r in images if r]
    h = max(im.shape[0] for r in rows for im in r)
    w = max(im.shape[1] for r in rows for im in r)
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), bg, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + im.shape[0], x : x + im.shape[1]] = im
    return out


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """(H, W) mask in [0, 1] -> (H, W, 3) uint8 with 0 black and 1 white (full range, unlike CycleGAN's tensor2im)."""
    m = np.clip(np.asarray(mask, np.float32), 0, 1)
    return np.repeat((m * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def attention_panel(image: np.ndarray, attention: np.ndarray, output: np.ndarray | None = None) -> np.ndarray:
    """Input (H, W, 3) uint8, its attention masks (K+1, H, W) in [0, 1] and optionally the output, as one labelled row."""
    from facesketch.models.generators import mask_labels

    cells = [label_image(image, "input")]
    if output is not None:
        cells.append(label_image(output, "output"))
    for name, m in zip(mask_labels(attention.shape[0]), attention):
        cells.append(label_image(mask_to_rgb(m), f"{name} {m.mean():.2f}"))
    return tile([cells])


def sample_grid(columns: dict[str, np.ndarray]) -> np.ndarray:
    """``{'real_A': (N, H, W, 3) uint8, 'fake_B': ..., ...}`` -> grid with one row per sample, one labelled column per key."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    rows = [[label_image(columns[k][i], k) for k in names] for i in range(n)]
    return tile(rows)
