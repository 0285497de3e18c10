"""The web demo's FastAPI app: upload checks (size while reading, type by content, pixel count), translation, JSON out.

Routes: ``GET /`` the page, ``GET /api/info`` the model and limits, ``POST /api/translate?direction=AtoB&align=true``
with the image as the ``file`` field of a multipart form or as the raw request body. The answer holds base64 PNG
data URLs (see ``DemoModel.run``); rejected uploads get ``{"detail": message}`` with 400, 413 or 415.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image, ImageOps, UnidentifiedImageError

from facesketch.data.images import image_bounds_problem, to_rgb
from facesketch.errors import UserError

# Formats PIL identifies that a browser upload plausibly is (MPO: JPEGs from phones with a second frame)
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF")
FORM_SLACK = 64 * 1024  # room for the multipart envelope around the file
# After the limit is passed, up to this many times the limit is still read (and dropped, never kept) so that the
# browser, still sending, is listening when the 413 arrives; a server that stops reading at once makes browsers
# report a reset connection instead of the message.
DRAIN_FACTOR = 4
MAX_PASTED_SIDE = 2048  # the pasted-back image comes back at most this large (it travels as base64)
MAX_OVERLAY_SIDE = 1024


class UploadRejected(Exception):
    """An upload refused with an HTTP status and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _OverLimit(Exception):
    pass


def default_workers() -> int:
    """Images decoded and translated at once by default: one per two usable CPUs (at least one)."""
    from facesketch.device import usable_cpus

    return max(1, usable_cpus() // 2)


@dataclass(frozen=True)
class Limits:
    """max_upload_bytes: largest accepted file; max_pixels: largest accepted width x height (decompression bombs);
    workers: images decoded and translated at once (what bounds memory); queue: requests that may wait beyond those,
    after which the answer is 503 with Retry-After; body_timeout: seconds a client may pause while sending its upload."""

    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = 50_000_000
    workers: int = 1
    queue: int = 8
    body_timeout: float = 30.0

    def too_large(self) -> str:
        return f"the upload is larger than {self.max_upload_bytes / 2**20:g} MB, this server's limit (--max-upload-mb)"


async def read_upload(request: Request, limits: Limits) -> bytes:
    """The uploaded file's bytes from a multipart form (field ``file``) or a raw body, counted while reading:
    nothing beyond the limit is kept, and the answer is a 413 as soon as the client has stopped sending
    (or at once for a declared Content-Length beyond what we drain)."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    cap = limits.max_upload_bytes + FORM_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap * DRAIN_FACTOR:
        raise UploadRejected(413, limits.too_large())
    raw = request.stream().__aiter__()
    seen = 0

    async def counted():
        nonlocal seen
        while True:
            try:  # a client that stops sending mid-upload is answered 408, not waited on
                chunk = await asyncio.wait_for(raw.__anext__(), timeout=limits.body_timeout)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise UploadRejected(408, f"the upload stalled for {limits.body_timeout:g} s; send it again") from None
            seen += len(chunk)
            if seen > cap:
                raise _OverLimit
            yield chunk

    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("multipart/form-data"):
            form = await MultiPartParser(request.headers, counted(), max_files=1, max_fields=8).parse()
            try:
                up = form.get("file")
                if up is None or isinstance(up, str):
                    raise UploadRejected(400, 'no file in the form: send the image as the "file" field')
                data = await up.read()
            finally:
                await form.close()
        else:
            data = b"".join([chunk async for chunk in counted()])
    except _OverLimit:
        async for chunk in raw:  # drop the rest, bounded, so the client reads our answer
            seen += len(chunk)
            if seen > cap * DRAIN_FACTOR:
                break
        raise UploadRejected(413, limits.too_large()) from None
    except MultiPartException as e:
        raise UploadRejected(400, f"malformed upload form ({e.message})") from None
    if len(data) > limits.max_upload_bytes:
        raise UploadRejected(413, limits.too_large())
    if not data:
        raise UploadRejected(400, "the upload is empty: choose an image file")
    return data


def decode_upload(data: bytes, limits: Limits) -> Image.Image:
    """Bytes -> RGB PIL image (EXIF rotation applied, alpha over white), after checking the content is an image
    of an accepted format within the pixel limit; raises UploadRejected (415, 413, 400)."""
    try:
        im = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadRejected(415, "the upload is not an image: use PNG, JPEG, WebP, BMP, TIFF or GIF") from None
    except Image.DecompressionBombError:
        raise UploadRejected(413, f"the image has too many pixels (limit {limits.max_pixels / 1e6:g} megapixels)") from None
    if im.format not in ACCEPTED_FORMATS:
        raise UploadRejected(415, f"{im.format} images are not accepted: use PNG, JPEG, WebP, BMP, TIFF or GIF")
    w, h = im.size
    problem = image_bounds_problem(w, h)
    if problem:
        raise UploadRejected(413, f"the image is refused: {problem}")
    if w * h > limits.max_pixels:
        raise UploadRejected(413, f"the image is {w} x {h} ({w * h / 1e6:.1f} megapixels); the limit is "
                                  f"{limits.max_pixels / 1e6:g} megapixels")  # fmt: skip
    try:
        im.load()
        return to_rgb(ImageOps.exif_transpose(im))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UploadRejected(400, f"the image could not be decoded ({e})") from None


class Gate:
    """At most ``workers`` requests decode and translate at once; at most ``queue`` more wait (reading their upload or
    their turn); anything beyond is turned away at once (503) instead of piling up memory and latency."""

    def __init__(self, workers: int, queue: int):
        self.workers, self.queue = workers, queue
        self.inside = 0  # waiting + working
        self.working = 0
        self.slots = asyncio.Semaphore(workers)

    def enter(self) -> bool:
        if self.inside >= self.workers + self.queue:
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1

    def status(self) -> dict:
        return {"working": self.working, "waiting": self.inside - self.working, "workers": self.workers, "queue": self.queue}


def _trim_memory() -> None:
    """Give freed heap back to the system after a large image (glibc keeps it otherwise, and the server's RSS creeps)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def short(text: str, n: int = 80) -> str:
    """At most ``n`` characters of something a client sent, for an error message."""
    text = str(text)
    return text if len(text) <= n else text[:n] + f"... ({len(text)} characters)"


def png_data_url(img: np.ndarray) -> str:
    """(H, W, 3) or (H, W) uint8 -> ``data:image/png;base64,...``."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fit(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= side:
        return img
    k = side / max(h, w)
    return np.asarray(Image.fromarray(img).resize((max(1, round(w * k)), max(1, round(h * k))), Image.LANCZOS))


class DemoModel:
    """The model behind the demo: a Translator per available direction, the face detector, one inference at a time."""

    def __init__(self, model: str | Path, *, device: str = "cpu", size: int | None = None, precision: str = "fp32"):
        from facesketch.inference import DIRECTIONS
        from facesketch.translate.load import load_translator

        self.translators = {}
        for d in DIRECTIONS:
            try:
                self.translators[d] = load_translator(model, direction=d, device=device, precision=precision).at_size(size)
            except UserError:
                if d == "AtoB":  # the photo -> sketch generator is what the demo is for
                    raise
        try:
            from facesketch.faces import FaceDetector

            self.detector = FaceDetector()
        except UserError:  # OpenCV missing: whole frames only
            self.detector = None
        self.meta = self.translators["AtoB"].meta
        self._lock = threading.Lock()  # CPU inference: one request at a time is faster than several competing

    def info(self) -> dict:
        from facesketch.data.fs2k import STYLE_NAMES

        n = self.translators["AtoB"].styles
        return {"name": self.meta.get("name", "model"), "generator": self.meta["generator"], "size": self.translators["AtoB"].size,
                "directions": list(self.translators), "face_detection": self.detector is not None,
                "styles": [STYLE_NAMES[k] if k < len(STYLE_NAMES) else f"style{k}" for k in range(n)]}  # fmt: skip

    def run(self, img: np.ndarray, *, direction: str = "AtoB", align: bool = True, style: str | None = None) -> dict:
        """(H, W, 3) uint8 RGB -> the API answer.

        ``results``: one entry per face (or one for the whole image), each with ``name``, ``box`` (x, y, w, h in
        input pixels, or None), ``from_eyes``, and PNG data URLs ``input`` (the S x S crop the model saw),
        ``output`` (S x S) and ``attention`` (a list of {label, mean, image} per mask, or None). ``pasted``: the
        outputs composited into the input (long side at most 2048), ``detections``: the input with boxes drawn.
        ``style`` (models with styles, photo -> sketch): an index or name, or 'all' (one result per style and face,
        named ``face0_contour``, ...; ``pasted`` is then the first style's).
        """
        from facesketch.faces import draw_faces
        from facesketch.translate.image import TranslateOptions, translate_image

        tr = self.translators[direction]
        h, w = img.shape[:2]
        answer = {"direction": direction, "width": w, "height": h, "aligned": False, "faces": 0, "no_face": False,
                  "results": [], "pasted": None, "detections": None}  # fmt: skip
        face_path = align and self.detector is not None
        styles: list[int | None] = [None]
        if style not in (None, ""):
            from facesketch.data.fs2k import STYLE_NAMES, parse_style

            if direction != "AtoB" or not tr.styles:
                raise UploadRejected(400, f"style {short(style)!r}: this model has no styles")
            try:
                chosen = parse_style(style, tr.styles)
            except UserError as e:
                raise UploadRejected(400, str(e)) from None
            styles = list(range(tr.styles)) if chosen == "all" else [chosen]
        results = []
        with self._lock:
            for st in styles:
                results.append((st, translate_image(tr, img, TranslateOptions(align=face_path, whole_frame_fallback=True, style=st),
                                                    self.detector)))  # fmt: skip
        t = results[0][1]
        for st, tt in results:
            sfx = "" if len(results) == 1 else "_" + (STYLE_NAMES[st] if st < len(STYLE_NAMES) else f"style{st}")
            names = [f"face{i}" for i in range(len(tt.faces))] if tt.faces else ["image"]
            for i, name in enumerate(names):
                face = tt.faces[i] if tt.faces else None
                answer["results"].append(self._result(name + sfx, tt.inputs[i], tt.outputs[i], tt.attention[i],
                                                      box=face.box if face else None,
                                                      from_eyes=tt.aligned[i].from_eyes if face else None))  # fmt: skip
        if t.faces:
            n = len(t.faces)
            answer.update(aligned=True, faces=n, message=f"{n} face{'s' if n > 1 else ''} found, aligned and translated.",
                          pasted=png_data_url(_fit(t.pasted(img), MAX_PASTED_SIDE)),
                          detections=png_data_url(_fit(draw_faces(img, t.faces), MAX_OVERLAY_SIDE)))  # fmt: skip
        elif t.no_face:
            answer.update(no_face=True, message="No face found: translated the whole image instead.")
        else:
            answer["message"] = "Translated the whole image (resized to the model size)."
        return answer

    @staticmethod
    def _result(name, inp, out, attention, *, box=None, from_eyes=None) -> dict:
        from facesketch.models.generators import mask_labels

        masks = None
        if attention is not None:
            masks = [{"label": label, "mean": float(m.mean()), "image": png_data_url((np.clip(m, 0, 1) * 255 + 0.5).astype(np.uint8))}
                     for label, m in zip(mask_labels(attention.shape[0]), attention)]  # fmt: skip
        return {"name": name, "box": None if box is None else [round(v, 1) for v in box], "from_eyes": from_eyes,
                "input": png_data_url(inp), "output": png_data_url(out), "attention": masks}  # fmt: skip


def create_app(model: str | Path | DemoModel, *, max_upload_mb: float = 10, max_megapixels: float = 50,
               device: str = "cpu", size: int | None = None, workers: int | None = None, queue: int = 8,
               body_timeout: float = 30.0, precision: str = "fp32"):  # fmt: skip
    """The FastAPI application for ``model`` (a run directory, an export file, or a loaded DemoModel)."""
    page_html = (Path(__file__).resolve().parent / "static" / "index.html").read_text(encoding="utf-8")

    if max_upload_mb <= 0 or max_megapixels <= 0:
        raise UserError("--max-upload-mb and --max-megapixels must be positive")
    demo = model if isinstance(model, DemoModel) else DemoModel(model, device=device, size=size, precision=precision)
    limits = Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=int(max_megapixels * 1e6),
                    workers=workers or default_workers(), queue=queue, body_timeout=body_timeout)  # fmt: skip
    if limits.workers < 1 or limits.queue < 0 or not limits.body_timeout > 0:
        raise UserError("--workers must be >= 1, --queue >= 0 and --body-timeout > 0")
    gate = Gate(limits.workers, limits.queue)
    app = FastAPI(title="facesketch demo", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.demo, app.state.limits, app.state.gate = demo, limits, gate

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors()[:3]:  # name the parameter and what it needs; echo at most a short prefix of the value
            where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {err.get('msg', 'invalid')} (got {short(err.get('input', ''), 40)!r})")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=400)
    # the page uses nothing outside this server: say so to the browser too
    csp = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
           "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")  # fmt: skip

    @app.get("/", response_class=HTMLResponse)
    def page():
        return HTMLResponse(page_html, headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"})

    @app.get("/api/info")
    def info():
        return {**demo.info(), "max_upload_mb": limits.max_upload_bytes / 2**20, "max_megapixels": limits.max_pixels / 1e6,
                "workers": limits.workers, "queue": limits.queue}  # fmt: skip

    @app.get("/api/status")
    def status():
        return gate.status()

    @app.post("/api/translate")
    async def translate(request: Request, direction: str = "AtoB", align: bool = True, style: str | None = None):
        if not gate.enter():
            return JSONResponse({"detail": f"the server is busy ({gate.inside} requests in hand); try again in a few seconds"},
                                status_code=503, headers={"Retry-After": "5"})  # fmt: skip
        try:
            if direction not in demo.translators:
                raise UploadRejected(400, f"direction {short(direction)!r} is not available; this model offers "
                                          f"{', '.join(demo.translators)}")  # fmt: skip
            data = await read_upload(request, limits)
            async with gate.slots:  # decoding and translating: the memory-heavy part, ``workers`` at a time
                gate.working += 1
                try:
                    img = await run_in_threadpool(decode_upload, data, limits)
                    del data
                    big = img.width * img.height > 4_000_000
                    answer = await run_in_threadpool(demo.run, np.asarray(img), direction=direction, align=align, style=style)
                    del img
                    if big:
                        _trim_memory()
                finally:
                    gate.working -= 1
            return answer
        except UploadRejected as e:
            return JSONResponse({"detail": e.message}, status_code=e.status)
        finally:
            gate.leave()

    return app
