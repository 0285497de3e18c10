"""The web demo end to end in headless Chromium: upload a face photo, see the sketch; rejected and oversized uploads."""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("FACESKETCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip




@pytest.fixture(scope="module")
def server(request):
    """The demo (1 MB upload limit) served by uvicorn on a free port in a thread; yields its base URL."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set FACESKETCH_CHROMIUM")
    pytest.importorskip("playwright.sync_api", reason="the browser test needs the playwright Python package")
    pytest.importorskip("cv2", reason="the face path needs opencv-python-headless")
    uvicorn = pytest.importorskip("uvicorn", reason="the web demo needs the serve extra")
    from facesketch.serve.app import create_app

    tiny_model = request.getfixturevalue("tiny_model")  # trained only once we know the test can run
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    srv = uvicorn.Server(uvicorn.Config(create_app(tiny_model, max_upload_mb=1), log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the demo server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


def test_demo_page_in_chromium(server, fs2k_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    photo = fs2k_dir / "photo" / "photo3" / "image0204.jpg"  # a wide shot with one face
    notes = tmp_path / "notes.png"
    notes.write_text("a text file that claims to be a PNG")
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + os.urandom(int(1.5 * 2**20)))
    hosts = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
                                                   args=CHROMIUM_ARGS)  # fmt: skip
        try:
            page = ctx.new_page()
            page.on("request", lambda r: hosts.append(r.url.split("/")[2]) if r.url.startswith("http") else None)
            page.goto(server + "/")
            expect(page.locator("#limits")).to_contain_text("1 MB")  # /api/info answered
            # a face photo: the sketch appears, with masks, a download link and the pasted-back frame
            page.set_input_files("#file", str(photo))
            page.click("#submit")
            out = page.locator("img[data-testid=output-0]")
            expect(out).to_be_visible(timeout=30_000)
            img = Image.open(io.BytesIO(base64.b64decode(out.get_attribute("src").split(",", 1)[1])))
            assert img.size == (32, 32) and np.asarray(img).std() > 1  # the tiny model's size; not blank
            assert page.locator("img[data-testid=output-0]").evaluate("e => e.naturalWidth") == 32
            expect(page.locator("#status")).to_contain_text("1 face found")
            expect(page.locator("img[data-testid^=mask-0-]")).to_have_count(4)
            expect(page.locator("a.download").first).to_have_attribute("download", "image0204.png")
            assert page.locator("img[data-testid=pasted]").evaluate("e => e.naturalWidth") == 475
            expect(page.locator("#error")).to_be_hidden()
            # a non-image: the server's message is shown, the old result is cleared
            page.set_input_files("#file", str(notes))
            page.click("#submit")
            expect(page.locator("#error")).to_contain_text("not an image", timeout=15_000)
            expect(page.locator("img[data-testid=output-0]")).to_have_count(0)
            # an upload over the limit: the size error
            page.set_input_files("#file", str(big))
            page.click("#submit")
            expect(page.locator("#error")).to_contain_text("larger than 1 MB", timeout=15_000)
        finally:
            ctx.close()
    assert set(hosts) == {server.split("/")[2]}  # the page fetched nothing from anywhere else
