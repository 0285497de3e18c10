"""Minimal, dependency-free HTML building: escaped text, tables, and images embedded as base64 PNG (self-contained pages)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from PIL import Image

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.92em} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f5f5f5} .grid{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0} figcaption{font-size:.8em;color:#555}
img{image-rendering:auto;max-width:100%} .muted{color:#777;font-size:.9em} code{background:#f3f3f3;padding:1px 4px}
"""


def esc(text) -> str:
    return html.escape(str(text))


def png_data_uri(img: np.ndarray | Image.Image | Path | str) -> str:
    """An (H, W, 3) uint8 array, PIL image or PNG/JPEG file as a data: URI."""
    if isinstance(img, (str, Path)):
        data = Path(img).read_bytes()
        mime = "image/jpeg" if Path(img).suffix.lower() in (".jpg", ".jpeg") else "image/png"
    else:
        im = Image.fromarray(img) if isinstance(img, np.ndarray) else img
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def img(src, *, caption: str = "", width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{png_data_uri(src)}"{w} alt="{esc(caption)}">{cap}</figure>'


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style></head>"
            f"<body>{body}</body></html>")  # fmt: skip


def write_page(path: Path, title: str, body: str) -> Path:
    from facesketch.atomic import atomic_write_text

    return atomic_write_text(path, page(title, body))
