"""Make the README's face-path and web-demo images for a trained model.

Writes into --out (default docs/images):
  face_input_boxes.png   a wide shot with the detected face box and eyes drawn
  face_aligned.png       the crop aligned to the FS2K framing (what the model sees)
  face_sketch.png        the model's sketch of that crop
  face_pasted.png        the sketch blended back into the full photo (--paste-back)
  face_path.png          the four above side by side, labelled
  group_boxes.png, group_pasted.png   the same for several faces (FS2K portraits pasted onto one canvas)
  demo_page.png          a screenshot of `facesketch serve` in headless Chromium after translating the photo

    python scripts/readme_images.py --model runs/fs2k [--out docs/images] [--photo my_photo.jpg]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _height(img: np.ndarray, h: int) -> np.ndarray:
    w = round(img.shape[1] * h / img.shape[0])
    return np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS if img.shape[0] > h else Image.BICUBIC))


def group_canvas(fs2k: Path) -> np.ndarray:
    """Three FS2K test portraits pasted onto a plain backdrop (FS2K has no group photos)."""
    from facesketch.data.images import load_rgb

    canvas = np.full((520, 1100, 3), (214, 206, 196), np.uint8)
    names = ["image0788", "image0790", "image0793"]
    for name, (x, y, s) in zip(names, [(40, 150, 300), (390, 40, 330), (760, 130, 300)]):
        face = load_rgb(fs2k / "photo" / "photo1" / f"{name}.jpg").resize((s, s), Image.BICUBIC)
        canvas[y : y + s, x : x + s] = np.asarray(face)
    return canvas


def face_path_images(tr, detector, img: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    from facesketch.faces import draw_faces
    from facesketch.translate import TranslateOptions, translate_image

    ft = translate_image(tr, img, TranslateOptions(whole_frame_fallback=False), detector)
    if not ft.faces:
        raise SystemExit(f"no face found in the {prefix} image: pass another --photo")
    imgs = {"boxes": draw_faces(img, ft.faces), "aligned": ft.aligned[0].image, "sketch": ft.outputs[0], "pasted": ft.pasted(img)}
    return imgs


def screenshot(model: str, photo: Path, dest: Path, chromium: Path) -> None:
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    from facesketch.serve.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    srv = uvicorn.Server(uvicorn.Config(create_app(model), log_level="warning"))
    th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)
    try:
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
                                                       viewport={"width": 1100, "height": 900})  # fmt: skip
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            page.set_input_files("#file", str(photo))
            page.click("#submit")
            expect(page.locator("img[data-testid=output-0]")).to_be_visible(timeout=120_000)
            page.wait_for_timeout(300)
            page.screenshot(path=str(dest), full_page=True)
            ctx.close()
    finally:
        srv.should_exit = True
        th.join(10)
        sock.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a run directory or an exported model.safetensors")
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"), help="output folder (default docs/images)")
    ap.add_argument("--fs2k", default=str(ROOT / ".." / "shared" / "data" / "FS2K"), help="FS2K root (for the default photos)")
    ap.add_argument("--photo", help="the single-face example (default: FS2K test photo photo3/image0204.jpg, a wide shot)")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium for the demo screenshot")
    ap.add_argument("--no-screenshot", action="store_true", help="skip the web demo screenshot")
    args = ap.parse_args(argv)

    from facesketch.data.images import load_rgb, save_image_atomic
    from facesketch.faces import FaceDetector
    from facesketch.report.grids import label_image, tile
    from facesketch.translate.load import load_translator

    fs2k = Path(args.fs2k)
    photo = Path(args.photo) if args.photo else fs2k / "photo" / "photo3" / "image0204.jpg"
    if not photo.is_file():
        print(f"--photo {photo}: not found (pass --photo or --fs2k)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tr, detector = load_translator(args.model), FaceDetector()

    img = np.asarray(load_rgb(photo))
    single = face_path_images(tr, detector, img, "photo")
    for key, name in (("boxes", "face_input_boxes"), ("aligned", "face_aligned"), ("sketch", "face_sketch"), ("pasted", "face_pasted")):
        save_image_atomic(single[key], out / f"{name}.png")
    h = 256
    labels = {"boxes": "1. detect (face + eyes)", "aligned": "2. align to FS2K framing", "sketch": "3. translate",
              "pasted": "4. paste back"}  # fmt: skip
    save_image_atomic(tile([[label_image(_height(single[k], h), labels[k]) for k in labels]], pad=6), out / "face_path.png")

    if (fs2k / "photo" / "photo1").is_dir():
        group = face_path_images(tr, detector, group_canvas(fs2k), "group")
        save_image_atomic(group["boxes"], out / "group_boxes.png")
        save_image_atomic(group["pasted"], out / "group_pasted.png")

    if not args.no_screenshot:
        if not Path(args.chromium).is_file():
            print(f"note: {args.chromium} not found: no demo screenshot (apt-get install chromium)", file=sys.stderr)
        else:
            screenshot(args.model, photo, out / "demo_page.png", Path(args.chromium))
    for p in sorted(out.glob("*.png")):
        print(p)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
