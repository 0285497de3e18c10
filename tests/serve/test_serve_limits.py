"""The web demo under hostile images: refused with bounded memory, and it keeps answering."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import make_unpaired


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("rel_data"))


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (1-bit grey) with a token IDAT: what a decompression bomb or
    a forged header looks like to a server that trusts the header (a few dozen bytes on the wire)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


RSS_LIMIT_MB = 300  # the peak may grow by at most this much over the idle server while it refuses hostile images


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_server_refuses_thin_huge_and_bomb_images_with_bounded_memory_and_keeps_answering(tiny_model, tmp_path):
    import io
    import socket
    import urllib.error
    import urllib.request

    from PIL import Image

    pytest.importorskip("fastapi")
    pytest.importorskip("cv2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "facesketch", "serve", "--model", str(tiny_model), "--port", str(port),
                          "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def post(data: bytes) -> tuple[int, str]:
        req = urllib.request.Request(f"{base}/api/translate", data=data, headers={"Content-Type": "image/png"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def png(w: int, h: int) -> bytes:
        buf = io.BytesIO()
        Image.new("L", (w, h), 128).save(buf, format="PNG")
        return buf.getvalue()

    try:
        deadline = time.monotonic() + 120
        while True:
            assert p.poll() is None, p.stderr.read()
            try:
                urllib.request.urlopen(f"{base}/api/info", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        assert post(png(96, 96))[0] == 200  # warm: the first real translation allocates the model's buffers
        idle = _rss_mb(p.pid, "VmHWM")
        hostile = {
            "1000x1": png(1000, 1), "3000x1": png(3000, 1), "1x5000": png(1, 5000),  # thin strips (the findings)
            "49000000x1": _png_claiming(49_000_000, 1),  # the HTTP 500 finding, as a forged header
            "16000x16000 bomb": _png_claiming(16_000, 16_000),  # 256 megapixels claimed in 80 bytes
            "16384x16384 real": png(16_384, 16_384),  # a real all-grey 268-megapixel PNG (about 100 kB)
            "30000x20000 bomb": _png_claiming(30_000, 20_000),
        }  # fmt: skip
        for name, data in hostile.items():
            status, body = post(data)
            assert status == 413, (name, status, body)
            assert "detail" in json.loads(body), (name, body)
        peak = _rss_mb(p.pid, "VmHWM")
        print(f"server peak RSS: {idle:.0f} MB warmed up, {peak:.0f} MB after {len(hostile)} hostile uploads")
        assert peak - idle < RSS_LIMIT_MB, f"peak RSS grew {peak - idle:.0f} MB (idle {idle:.0f} MB)"
        status, body = post(png(120, 100))  # still answering, and still translating
        assert status == 200 and '"output"' in body, body[:200]
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(timeout=30)
