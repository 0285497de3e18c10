"""facesketch from Python: ``facesketch.load()`` gives a ``Sketcher``, called on images.

    import facesketch
    sketcher = facesketch.load()                 # the model shipped with facesketch, on CUDA when present
    sketch = sketcher("photo.jpg")               # a PIL image: the sketch of the face in the photo
    sketches = sketcher([pil_image, array])      # a list in, a list out (PIL -> PIL, array -> uint8 array)
    sketch, masks = sketcher(array, masks=True)  # and the attention masks, (K+1, S, S) in [0, 1]

Every call goes through the same use case as ``facesketch translate`` (``translate/image.py``), so with the same
options it gives the same pixels.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facesketch.errors import UserError
from facesketch.inference import DIRECTIONS, Translator, check_size
from facesketch.translate.image import TranslateOptions, Translation, translate_images

ACCEPTED = ("a PIL image, a numpy array (H x W grey, H x W x 3 RGB or H x W x 4 RGBA; uint8, uint16, or float in "
            "[0, 1]), a path to an image file, or a list of these")  # fmt: skip


def as_rgb_array(image: Any) -> np.ndarray:
    """One input -> (H, W, 3) uint8 RGB: PIL images of any mode (alpha over white), arrays as ``ACCEPTED`` says,
    paths (str or os.PathLike) decoded from disk. Anything else: TypeError or ValueError naming what was given."""
    from facesketch.data.images import UnreadableImageError, load_rgb, to_rgb

    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image))
    if isinstance(image, (str, PathLike)):
        try:
            return np.asarray(load_rgb(Path(image)))
        except UnreadableImageError as e:
            raise ValueError(str(e)) from None
    if not isinstance(image, np.ndarray):
        raise TypeError(f"cannot translate a {type(image).__name__}: give {ACCEPTED}")
    a = image
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or min(a.shape[:2]) < 1:
        raise ValueError(f"cannot translate an array of shape {a.shape}: give H x W, H x W x 3 or H x W x 4")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.uint16:
        u8 = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("a float array must hold values in [0, 1]; this one has non-finite values (NaN or inf)")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(f"a float array must hold values in [0, 1] (got {a.min():g} .. {a.max():g}); scale it, or pass uint8")
        u8 = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    else:
        raise TypeError(f"cannot translate an array of dtype {a.dtype}: use uint8, uint16 or float in [0, 1]")
    if u8.ndim == 2 or u8.shape[2] == 1:
        return np.repeat(u8.reshape(u8.shape[0], u8.shape[1], 1), 3, axis=2)
    if u8.shape[2] == 4:
        return np.asarray(to_rgb(Image.fromarray(np.ascontiguousarray(u8), "RGBA")))
    return np.ascontiguousarray(u8)


class Sketcher:
    """A loaded model, called on images (``facesketch.load`` makes one).

    ``sketcher(images, *, align=None, paste_back=False, size=None, direction='AtoB', style=None, masks=False,
    output_size='model')``: see ``__call__``. ``.to(device)`` moves it; ``.translate(image)`` gives the whole
    ``Translation`` (every face, boxes, masks, the pasted frame, "no face").
    """

    def __init__(self, translators: dict[str, Translator], detector=None):
        self.translators, self.detector = translators, detector

    @property
    def size(self) -> int:
        """The square size (px) the model translates at by default."""
        return self.translators["AtoB"].size

    @property
    def meta(self) -> dict:
        """What the export says of the model (architecture, sizes, name)."""
        return self.translators["AtoB"].meta

    def to(self, device) -> "Sketcher":
        """Move the networks to ``device`` ('cpu', 'cuda', 'cuda:1', a torch.device); returns self."""
        import torch

        from facesketch.device import pick_device

        dev = pick_device(device) if isinstance(device, str) else torch.device(device)
        for tr in self.translators.values():
            tr.G.to(dev)
            tr.device = dev
        return self

    def _options(self, align, paste_back, size, direction, style, masks, output_size) -> tuple[Translator, TranslateOptions]:
        if direction not in self.translators:
            raise ValueError(f"direction={direction!r}: this model offers {', '.join(self.translators)}")
        tr = self.translators[direction]
        if style is not None:
            from facesketch.data.fs2k import parse_style

            if direction != "AtoB" or not tr.styles:
                raise ValueError(f"style={style!r}: this model has no styles (it was trained without model.styles)")
            try:
                style = parse_style(style, tr.styles)
            except UserError as e:
                raise ValueError(str(e)) from None
            if style == "all":
                raise ValueError("style='all': call once per style (0, 1, 2, ...)")
        if align is None:  # as `facesketch translate`: the face path for photos, whole frames for sketches
            align = direction == "AtoB" and self.detector is not None
        if align and self.detector is None:
            raise ValueError("align=True needs OpenCV for face detection: pip install 'facesketch[faces]'")
        if size is not None:
            try:
                check_size(size)
            except UserError as e:
                raise ValueError(str(e)) from None
        opts = TranslateOptions(align=bool(align), whole_frame_fallback=True, output_size=output_size, masks=masks, size=size,
                                style=style)  # fmt: skip
        return tr, opts

    def translate(self, images, *, align: bool | None = None, size: int | None = None, direction: str = "AtoB",
                  style=None, output_size: str = "model") -> Translation | list[Translation]:  # fmt: skip
        """The full result of each image (``translate.image.Translation``): every face's sketch (left to right) and
        what the model saw, the boxes, the masks, ``pasted(frame)``, and ``no_face`` (translated whole instead)."""
        single = not isinstance(images, (list, tuple))
        arrays = [as_rgb_array(x) for x in ([images] if single else images)]
        tr, opts = self._options(align, False, size, direction, style, True, output_size)
        out = translate_images(tr, arrays, opts, self.detector if opts.align else None)
        return out[0] if single else out

    def __call__(self, images, *, align: bool | None = None, paste_back: bool = False, size: int | None = None,
                 direction: str = "AtoB", style=None, masks: bool = False, output_size: str = "model"):  # fmt: skip
        """Translate ``images`` (``ACCEPTED``); returns the same kind: PIL in (or a path) -> PIL RGB out, array in ->
        (S, S, 3) uint8 array out, a list -> a list.

        align: detect the face and align it to the FS2K framing first (default: on for photos when OpenCV is
            installed); the sketch of the largest face comes back, or of the whole frame when no face is found.
        paste_back: return the photo with the face(s) replaced by their sketches (the input's size) instead.
        size: translate at size x size px (a multiple of 4 from 64 to 2048; default: the model's own, ``self.size``).
        direction: 'AtoB' photo -> sketch (default) or 'BtoA' sketch -> photo.
        style: a sketch style, for models trained with styles.
        masks: also return the attention masks of each result, (K+1, S, S) float32 in [0, 1] (None without attention).
        output_size: whole-frame results at the model size ('model') or at the input's size ('input').
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        arrays = [as_rgb_array(x) for x in items]
        tr, opts = self._options(align, paste_back, size, direction, style, masks, output_size)
        results = translate_images(tr, arrays, opts, self.detector if opts.align else None)
        outs = []
        for x, a, t in zip(items, arrays, results):
            k = _largest(t)
            img = t.outputs[k]
            if paste_back and t.faces:
                img = t.pasted(a)
            back = Image.fromarray(img) if isinstance(x, (Image.Image, str, PathLike)) else img
            outs.append((back, t.attention[k]) if masks else back)
        return outs[0] if single else outs


def _largest(t: Translation) -> int:
    """Index of the largest detected face (by box area), 0 for a whole-frame result."""
    if not t.faces:
        return 0
    return max(range(len(t.faces)), key=lambda i: t.faces[i].box[2] * t.faces[i].box[3])


def load(model: str | PathLike | None = "default", device: str = "auto", *, detector: str = "haar",
         precision: str = "auto") -> Sketcher:
    """A ``Sketcher`` for ``model``: 'default' (the model shipped with facesketch), an export file
    (``model.safetensors``) or a training run directory; on ``device`` ('auto': CUDA when present, else the CPU).

    detector: the face detector of the face path, 'haar' (OpenCV's cascades, the default) or 'blazeface'.
    precision: 'auto' (bf16 where it is fast: CPUs with AMX tiles, GPUs with bf16; within 0.002 of fp32 on each FS2K
        metric), 'fp32' or 'bf16'.
    Raises ``facesketch.UserError`` for a model that cannot be found or read, naming the ``model`` argument.
    """
    from facesketch.device import pick_device
    from facesketch.translate.load import load_translator

    from facesketch.faces import DETECTORS

    if detector not in DETECTORS:
        raise ValueError(f"detector={detector!r}: use one of {', '.join(repr(d) for d in DETECTORS)}")
    dev = pick_device(device)
    translators = {}
    for d in DIRECTIONS:
        try:
            translators[d] = load_translator(model, direction=d, device=dev, announce=d == "AtoB", precision=precision)
        except UserError:
            if d == "AtoB":
                raise
    det = None
    try:
        if detector == "blazeface":
            from facesketch.faces.blazeface import BlazeFaceDetector

            det = BlazeFaceDetector(None)
        elif detector == "haar":
            from facesketch.faces import FaceDetector
            from facesketch.faces.detect import require_cv2

            require_cv2()
            det = FaceDetector()
    except UserError:
        det = None  # no OpenCV (or no BlazeFace weights): whole frames only, as the CLI does
    return Sketcher(translators, det)
