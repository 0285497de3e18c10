"""The web demo's server side: page, JSON API, upload checks (size while reading, type by content, pixels), `serve` CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import socket
import warnings

import numpy as np
import pytest
from helpers import smooth_image
from PIL import Image

from facesketch.cli import main

pytest.importorskip("fastapi", reason="the web demo needs the serve extra (fastapi, uvicorn, python-multipart)")
pytest.importorskip("cv2", reason="the face path needs opencv-python-headless")

with warnings.catch_warnings():  # Starlette nudges towards httpx2 at import; the httpx-based client still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from starlette.requests import Request  # noqa: E402

from facesketch.serve.app import (  # noqa: E402
    DRAIN_FACTOR,
    FORM_SLACK,
    Limits,
    UploadRejected,
    create_app,
    read_upload,
)

MB = 2**20




@pytest.fixture(scope="module")
def client(tiny_model):
    with TestClient(create_app(tiny_model, max_upload_mb=1, max_megapixels=2)) as c:
        yield c


@pytest.fixture(scope="module")
def face_jpeg(fs2k_dir) -> bytes:
    """An FS2K wide shot (475 x 340, one face) as JPEG bytes."""
    return (fs2k_dir / "photo" / "photo3" / "image0204.jpg").read_bytes()


def decode(data_url: str) -> Image.Image:
    head, b64 = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'type="file"' in html and 'id="align"' in html and "/api/translate" in html
    # no CDN or other external asset: no absolute URLs in src/href, and the browser is told so (CSP)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "default-src 'none'" in r.headers["content-security-policy"]
    info = client.get("/api/info").json()
    assert info["directions"] == ["AtoB", "BtoA"] and info["size"] == 32 and info["max_upload_mb"] == 1


def test_translate_a_face_photo(client, face_jpeg):
    r = client.post("/api/translate", files={"file": ("street.jpg", face_jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["aligned"] and j["faces"] == 1 and not j["no_face"] and (j["width"], j["height"]) == (475, 340)
    (res,) = j["results"]
    x, y, w, h = res["box"]
    assert x > 475 / 3 and w < 340  # the face is in the right half of the wide shot (FS2K photo3/image0204)
    out = decode(res["output"])
    assert out.size == (32, 32) and np.asarray(out).std() > 0
    assert decode(res["input"]).size == (32, 32)
    assert len(res["attention"]) == 4 and res["attention"][-1]["label"] == "background"  # n_masks=3 + background
    assert abs(sum(m["mean"] for m in res["attention"]) - 1) < 1e-3  # softmax masks
    assert decode(j["pasted"]).size == (475, 340)
    assert decode(j["detections"]).size == (475, 340)


def test_raw_body_without_alignment_and_a_photo_without_a_face(client, face_jpeg):
    r = client.post("/api/translate?align=false", content=face_jpeg, headers={"content-type": "image/jpeg"})
    j = r.json()
    assert r.status_code == 200 and not j["aligned"] and [res["name"] for res in j["results"]] == ["image"]
    assert j["pasted"] is None
    wall = png_bytes(np.asarray(smooth_image(np.random.default_rng(0), 240, 320)))
    j = client.post("/api/translate", files={"file": ("wall.png", wall, "image/png")}).json()
    assert j["no_face"] and "No face found" in j["message"] and len(j["results"]) == 1  # still shows a translation
    j = client.post("/api/translate?direction=BtoA&align=false", files={"file": ("s.png", wall, "image/png")}).json()
    assert j["direction"] == "BtoA" and decode(j["results"][0]["output"]).size == (32, 32)


@pytest.mark.parametrize("name, payload, status, words", [
    ("notes.png", b"this is text, not a picture", 415, "not an image"),
    ("empty.jpg", b"", 400, "empty"),
    ("truncated.png", None, 400, "could not be decoded"),
    ("icon.ico", "ICO", 415, "ICO images are not accepted"),
    ("huge.png", "PIXELS", 413, "megapixels"),
    ("big.jpg", b"\xff" * (MB + 10), 413, "larger than 1 MB"),
])  # fmt: skip
def test_uploads_are_checked(client, name, payload, status, words):
    if payload is None:  # a real PNG cut short: identified, then fails to decode
        payload = png_bytes(np.asarray(smooth_image(np.random.default_rng(1), 200, 200)))[:-400]
    elif payload == "ICO":
        buf = io.BytesIO()
        Image.new("RGB", (32, 32)).save(buf, format="ICO")
        payload = buf.getvalue()
    elif payload == "PIXELS":  # 2000 x 1500 = 3 MP > 2 MP, a small file (decompression-bomb style)
        payload = png_bytes(np.zeros((1500, 2000), np.uint8))
    r = client.post("/api/translate", files={"file": (name, payload, "application/octet-stream")})
    assert r.status_code == status and words in r.json()["detail"], r.text


def test_form_and_parameter_mistakes(client, face_jpeg):
    r = client.post("/api/translate", files={"photo": ("a.jpg", face_jpeg, "image/jpeg")})
    assert r.status_code == 400 and '"file" field' in r.json()["detail"]
    r = client.post("/api/translate?direction=CtoD", files={"file": ("a.jpg", face_jpeg, "image/jpeg")})
    assert r.status_code == 400 and "AtoB, BtoA" in r.json()["detail"]


def _request(chunks: list[bytes], headers: dict[str, str]) -> tuple[Request, dict]:
    """A Starlette request whose body arrives in ``chunks``; ``read['n']`` counts the chunks the app pulled."""
    read = {"n": 0}

    async def receive():
        if read["n"] < len(chunks):
            read["n"] += 1
            return {"type": "http.request", "body": chunks[read["n"] - 1], "more_body": read["n"] < len(chunks)}
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/api/translate", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}  # fmt: skip
    return Request(scope, receive), read


def test_size_limit_is_enforced_while_reading():
    limits = Limits(max_upload_bytes=1 * MB)
    chunk = b"\0" * (256 * 1024)
    chunks = [chunk] * 200  # a 50 MB body, streamed without a Content-Length
    req, read = _request(chunks, {"content-type": "application/octet-stream"})
    with pytest.raises(UploadRejected) as e:
        asyncio.run(read_upload(req, limits))
    assert e.value.status == 413
    # it stopped reading well before the end: past the limit it only drains a bounded amount, never keeping it
    assert read["n"] * len(chunk) <= DRAIN_FACTOR * (limits.max_upload_bytes + FORM_SLACK) + len(chunk)
    assert read["n"] < len(chunks) / 4
    # a declared Content-Length far beyond the limit is refused before reading anything
    req, read = _request(chunks, {"content-type": "application/octet-stream", "content-length": str(50 * MB)})
    with pytest.raises(UploadRejected):
        asyncio.run(read_upload(req, limits))
    assert read["n"] == 0
    # within the limit: the bytes come back whole
    req, _ = _request([b"abc", b"def"], {"content-type": "image/png"})
    assert asyncio.run(read_upload(req, limits)) == b"abcdef"


def test_serve_cli_errors(tiny_model, tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing.safetensors"), "--port", "0"]) == 2
    assert "no such file or run directory" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(tiny_model), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--port {port}" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "127.0.0.1" in out and "--max-upload-mb" in out
