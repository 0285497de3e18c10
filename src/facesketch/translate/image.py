"""The translate use case, once: one image in, its sketches (per face, or the whole frame), boxes, masks, the pasted-back
frame and "no face" out. The CLI's batch writer, the web demo, ``make demo`` and the Python API all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from facesketch.errors import UserError
from facesketch.inference import Translator

if TYPE_CHECKING:  # the face path's types; the package itself is imported only when faces are looked for
    from facesketch.faces import AlignedFace, Face, FaceDetector

OUTPUT_SIZES = ("model", "input")


@dataclass(frozen=True)
class TranslateOptions:
    """How one image is translated.

    align: the face path (detect, align each face to the FS2K framing, translate it); needs a detector.
    whole_frame_fallback: when the face path finds no face, translate the whole frame instead of nothing.
    output_size: whole-frame outputs at the model size ('model') or at the input's size ('input'); faces are
        always at the model size.
    masks: keep the attention masks (generators with attention only).
    batch_size: images per forward pass.
    size: the square size (px) faces are aligned to and frames resized to; None: the model's own size.
    style: for a style-conditioned model, the style to draw in (an index; None: style 0).
    """

    align: bool = True
    whole_frame_fallback: bool = True
    output_size: str = "model"
    masks: bool = True
    batch_size: int = 8
    size: int | None = None
    style: int | None = None

    def __post_init__(self):
        if self.size is not None:
            from facesketch.inference import check_size

            check_size(self.size)
        if self.output_size not in OUTPUT_SIZES:
            raise UserError(f"output_size {self.output_size!r}: use one of {', '.join(OUTPUT_SIZES)}")
        if self.batch_size < 1:
            raise UserError(f"batch_size {self.batch_size}: must be >= 1")


@dataclass
class Translation:
    """One image through the use case.

    outputs: the translated images, (S, S, 3) uint8 RGB per face (left to right), or one whole-frame output (at the
        model size S, or the input's size with ``output_size='input'``); empty when no face was found and there is
        no fallback.
    inputs: what the model saw for each output, (S, S, 3) uint8 RGB (the aligned face, or the resized frame).
    attention: per output, (K+1, S, S) masks in [0, 1] (K foreground, then the background), or None.
    faces / aligned: the detections (full-image pixels) and their alignments; empty for a whole-frame translation.
    no_face: the face path ran and found no face.
    """

    outputs: list[np.ndarray] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)
    attention: list[np.ndarray | None] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    aligned: list[AlignedFace] = field(default_factory=list)
    no_face: bool = False

    @property
    def whole_frame(self) -> bool:
        return bool(self.outputs) and not self.faces

    def names(self, stem: str) -> list[str]:
        """Output names: ``stem`` for one output, ``stem_face0``, ``stem_face1``, ... for several faces."""
        return [stem] if len(self.outputs) == 1 else [f"{stem}_face{k}" for k in range(len(self.outputs))]

    def pasted(self, frame: np.ndarray, *, feather: float = 0.1) -> np.ndarray | None:
        """The face outputs composited into ``frame`` ((H, W, 3) uint8 RGB, the image they were found in); None
        for a whole-frame translation or when nothing was translated."""
        if not self.faces:
            return None
        from facesketch.faces import paste_back

        out = frame
        for a, y in zip(self.aligned, self.outputs):
            out = paste_back(out, y, a.matrix, aligned_size=a.image.shape[0], feather=feather)
        return out

    def panel(self, i: int) -> np.ndarray | None:
        """Output ``i``'s attention panel (input, output, labelled masks) at the model size, or None without masks."""
        m = self.attention[i]
        if m is None:
            return None
        from facesketch.report.grids import attention_panel

        inp, y = self.inputs[i], self.outputs[i]
        if y.shape[:2] != inp.shape[:2]:
            y = resize(y, inp.shape[0])
        return attention_panel(inp, m, y)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 with bicubic, aspect not kept (CycleGAN's test-time resize)."""
    if img.shape[:2] == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))


def _whole_frames(tr: Translator, imgs: list[np.ndarray], opts: TranslateOptions) -> list[Translation]:
    outs, masks = tr.translate_arrays(imgs, batch_size=opts.batch_size, output_size=opts.output_size, return_attention=True,
                                      style=opts.style)  # fmt: skip
    return [Translation([y], [resize(x, tr.size)], [m if opts.masks else None]) for x, y, m in zip(imgs, outs, masks)]


def translate_image(tr: Translator, img: np.ndarray, options: TranslateOptions = TranslateOptions(),
                    detector: FaceDetector | None = None) -> Translation:  # fmt: skip
    """Translate (H, W, 3) uint8 RGB ``img``: each detected face aligned to the FS2K framing (``options.align`` with a
    ``detector``), else the whole frame resized to the model size."""
    return translate_images(tr, [img], options, detector)[0]


def translate_images(tr: Translator, imgs: list[np.ndarray], options: TranslateOptions = TranslateOptions(),
                     detector: FaceDetector | None = None) -> list[Translation]:  # fmt: skip
    """``translate_image`` for several images: the face path one image at a time (its faces form the batch), whole
    frames ``options.batch_size`` at a time."""
    tr = tr.at_size(options.size)
    tr.check_style(options.style)
    results: list[Translation | None] = [None] * len(imgs)
    whole: list[int] = []
    for i, img in enumerate(imgs):
        if not (options.align and detector is not None):
            whole.append(i)
            continue
        from facesketch.faces import align_face

        faces = detector.detect(img)
        aligned = [align_face(img, f, tr.size) for f in faces]
        if not aligned:
            if options.whole_frame_fallback:
                whole.append(i)
            results[i] = Translation(no_face=True)
            continue
        outs, masks = tr.translate_arrays([a.image for a in aligned], batch_size=options.batch_size, return_attention=True,
                                          style=options.style)  # fmt: skip
        masks = masks if options.masks else [None] * len(outs)
        results[i] = Translation(outs, [a.image for a in aligned], masks, list(faces), aligned)
    if whole:
        for i, t in zip(whole, _whole_frames(tr, [imgs[i] for i in whole], options)):
            t.no_face = results[i] is not None and results[i].no_face
            results[i] = t
    return results  # type: ignore[return-value]
