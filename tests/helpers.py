"""Test helpers: tiny synthetic datasets in the unpaired layout and tiny training configs."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random smooth colour image (H, W, 3) uint8 (upsampled noise: has structure, compresses well)."""
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def make_unpaired(root: Path, n_a: int = 6, n_b: int = 5, n_test: int = 2, size=(40, 48), seed: int = 0) -> Path:
    """trainA/ trainB/ testA/ testB/ with PNG/JPEG images, one RGBA and one grey file among them."""
    rng = np.random.default_rng(seed)
    h, w = size
    for folder, n in (("trainA", n_a), ("trainB", n_b), ("testA", n_test), ("testB", n_test)):
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = smooth_image(rng, h, w)
            if folder == "trainB" and i == 0:
                Image.fromarray(np.dstack([img, np.full((h, w), 200, np.uint8)]), "RGBA").save(d / f"b{i:02d}.png")
            elif folder == "trainA" and i == 1:
                Image.fromarray(img[..., 0], "L").save(d / f"a{i:02d}.png")
            else:
                Image.fromarray(img).save(d / f"{folder[-1].lower()}{i:02d}.jpg", quality=95)
    return root


def tiny_overrides(root: Path, **extra) -> list[str]:
    """key=value overrides for a seconds-long CPU run on ``root``."""
    base = {
        "data.root": str(root), "data.load_size": 36, "data.crop_size": 32, "data.num_workers": 0, "data.max_items": 0,
        "model.ngf": 4, "model.n_blocks": 1, "model.ndf": 4, "model.n_masks": 3,
        "loss.lambda_edge": 0, "loss.lambda_normal": 0, "loss.pool_size": 3,
        "train.batch_size": 2, "train.log_every": 1, "train.sample_every": 100, "train.checkpoint_every": 100,
        "train.progress": False, "train.max_steps": 4,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` ({path: bytes}); ``server.mode`` = 'range' | 'norange' | 'drop'.

    'drop' sends half of the body and hangs up once, then behaves as 'range'. Every request is logged in
    ``server.requests`` with its path and Range header.
    """

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if srv.mode in ("range", "drop") and rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if srv.mode != "norange" else "none")
        self.end_headers()
        if srv.mode == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            srv.mode = "range"  # only the first request drops
            return
        self.wfile.write(body)


@contextmanager
def local_http_server(files: dict[str, bytes], mode: str = "range"):
    """A real HTTP server on 127.0.0.1 (random port) serving ``files``; yields it with ``.url``, ``.files``, ``.mode``."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    srv.files, srv.mode, srv.requests = dict(files), mode, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
