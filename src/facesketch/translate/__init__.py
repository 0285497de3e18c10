"""Translating files, folders and faces: the face path (detect, align to the FS2K framing, translate, paste back)
and the batch writer behind `facesketch translate` (the command itself: ``translate/cli.py``).

Photos of any framing go through the face path (default for A->B): faces are detected, each is aligned to the
FS2K framing the model was trained on and translated on its own (``<stem>.png``, or ``<stem>_face0.png``, ...
for several), optionally composited back into the full frame (``<stem>_pasted.png``). ``--no-align`` resizes
the whole image instead (non-face pictures, sketches). The model itself is an ``inference.Translator``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from facesketch.data.images import UnreadableImageError, is_image_file, load_rgb, save_image_atomic
from facesketch.errors import UserError
from facesketch.inference import DIRECTIONS, Translator, model_meta  # noqa: F401  (the library's public names)

if TYPE_CHECKING:  # the face path's types; the package itself is imported only when faces are looked for
    from facesketch.faces import AlignedFace, Face, FaceDetector


# ---------------------------------------------------------------------------------------------------------------
# files and folders


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)  # face path: inputs in which no face was found
    faces: int = 0  # face path: faces translated


@dataclass
class FaceTranslation:
    """One photo through the face path. ``faces`` in full-image pixels (left to right); ``aligned`` their
    FS2K-framed (S, S, 3) uint8 RGB crops and warps; ``outputs`` the translated (S, S, 3) uint8 RGB crops;
    ``attention`` the (K+1, S, S) masks in [0, 1] per face (None for generators without attention)."""

    faces: list[Face]
    aligned: list[AlignedFace]
    outputs: list[np.ndarray]
    attention: list[np.ndarray | None]

    def pasted(self, frame: np.ndarray, *, feather: float = 0.1) -> np.ndarray:
        """The outputs composited into ``frame`` ((H, W, 3) uint8 RGB, the image the faces were found in): same size."""
        from facesketch.faces import paste_back

        out = frame
        for a, y in zip(self.aligned, self.outputs):
            out = paste_back(out, y, a.matrix, aligned_size=a.image.shape[0], feather=feather)
        return out


def translate_faces(tr: Translator, img: np.ndarray, detector: FaceDetector, *, batch_size: int = 8) -> FaceTranslation:
    """Detect the faces in (H, W, 3) uint8 RGB ``img`` (a ``faces.FaceDetector``), align each to the FS2K framing
    at the model size and translate them; no faces gives empty lists."""
    from facesketch.faces import align_face

    faces = detector.detect(img)
    aligned = [align_face(img, f, tr.size) for f in faces]
    if not aligned:
        return FaceTranslation([], [], [], [])
    outs, masks = tr.translate_arrays([a.image for a in aligned], batch_size=batch_size, return_attention=True)
    return FaceTranslation(faces, aligned, outs, masks)


def collect_inputs(inputs: list[str], *, recursive: bool = False) -> list[Path]:
    """Expand files and folders (images directly inside, or below with ``recursive``) into a sorted, de-duplicated list."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(q for q in it if q.is_file() and is_image_file(q))
            if not found:
                print(f"warning: {p}: no image files found", file=sys.stderr)
            files += found
        else:
            files.append(p)  # a file; a missing one is reported as unreadable at the end, like any other bad input
    seen, out = set(), []
    for f in files:
        key = f.resolve() if f.exists() else f
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _save(img: np.ndarray, dest: Path, rep: TranslateReport) -> None:
    save_image_atomic(img, dest, **({"quality": 95} if dest.suffix in (".jpg", ".jpeg") else {}))
    rep.written.append(dest)


def _save_attention(tr: Translator, inp: np.ndarray, y: np.ndarray, m: np.ndarray, dest: Path) -> None:
    """The attention panel (input, output, masks) at the model size."""
    from facesketch.report.grids import attention_panel

    small = inp if inp.shape[:2] == (tr.size, tr.size) else np.asarray(Image.fromarray(inp).resize((tr.size, tr.size), Image.BICUBIC))
    yy = y if y.shape[:2] == small.shape[:2] else np.asarray(Image.fromarray(y).resize((tr.size, tr.size)))
    save_image_atomic(attention_panel(small, m, yy), dest)


def translate_files(tr: Translator, files: list[Path], out_dir: Path, *, save_masks: bool = False, ext: str = ".png",
                    batch_size: int = 8, output_size: str = "model", progress: bool = True, detector: FaceDetector | None = None,
                    paste_back: bool = False, whole_frame_fallback: bool = False, save_boxes: bool = False) -> TranslateReport:  # fmt: skip
    """Translate each file to ``out_dir/<stem><ext>`` (written atomically, one at a time, so nothing done is lost).

    Unreadable inputs are collected in the report, not raised. With ``save_masks``, ``<stem>_attention.png``
    holds the attention masks as a labelled grid.

    With a ``detector`` (``faces.FaceDetector``) each photo takes the face path: one output per face at the
    model size (``<stem><ext>`` for one face, ``<stem>_face<i><ext>`` left to right for several, attention panels
    alongside), ``<stem>_pasted<ext>`` with ``paste_back``, ``<stem>_faces.png`` (the detections drawn) with
    ``save_boxes``. A photo without a face is reported (``rep.no_face``) and skipped, or translated whole with
    ``whole_frame_fallback``. ``output_size`` applies to whole-frame translations only.
    """
    from tqdm import tqdm

    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise UserError(f"two inputs share the output name {f.stem}{ext}: {stems[f.stem]} and {f} (translate them separately)")
        stems[f.stem] = f
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = TranslateReport()
    bar = tqdm(total=len(files), desc="translating", unit="img", disable=not progress)
    # the face path goes one photo at a time (its faces form the batch); whole frames go batch_size files at a time
    step = 1 if detector is not None else batch_size
    for i in range(0, len(files), step):
        chunk, imgs = [], []
        for f in files[i : i + step]:
            try:
                imgs.append(np.asarray(load_rgb(f)))
                chunk.append(f)
            except UnreadableImageError as e:
                rep.failed.append(str(e))
        if detector is not None and chunk:
            f, img = chunk[0], imgs[0]
            ft = translate_faces(tr, img, detector, batch_size=batch_size)
            if save_boxes:
                from facesketch.faces import draw_faces

                save_image_atomic(draw_faces(img, ft.faces), out_dir / f"{f.stem}_faces.png")
            if not ft.faces:
                rep.no_face.append(f)
                what = "translating the whole frame" if whole_frame_fallback else "skipped (--whole-frame-fallback: translate it whole)"
                tqdm.write(f"{f}: no face found; {what}", file=sys.stderr)
                chunk, imgs = ([f], [img]) if whole_frame_fallback else ([], [])
            else:
                names = [f.stem] if len(ft.faces) == 1 else [f"{f.stem}_face{k}" for k in range(len(ft.faces))]
                for name, a, y, m in zip(names, ft.aligned, ft.outputs, ft.attention):
                    _save(y, out_dir / f"{name}{ext}", rep)
                    if save_masks and m is not None:
                        _save_attention(tr, a.image, y, m, out_dir / f"{name}_attention.png")
                rep.faces += len(ft.faces)
                if paste_back:
                    _save(ft.pasted(img), out_dir / f"{f.stem}_pasted{ext}", rep)
                chunk, imgs = [], []
        if chunk:
            outs, masks = tr.translate_arrays(imgs, batch_size=batch_size, output_size=output_size, return_attention=True)
            for f, img, y, m in zip(chunk, imgs, outs, masks):
                _save(y, out_dir / f"{f.stem}{ext}", rep)
                if save_masks and m is not None:
                    _save_attention(tr, img, y, m, out_dir / f"{f.stem}_attention.png")
        bar.update(len(files[i : i + step]))
    bar.close()
    return rep
