"""Translating files, folders and faces: the face path (detect, align to the FS2K framing, translate, paste back)
and the batch writer behind `facesketch translate` (the command itself: ``cli/translate.py``).

Photos of any framing go through the face path (default for A->B): faces are detected, each is aligned to the
FS2K framing the model was trained on and translated on its own (``<stem>.png``, or ``<stem>_face0.png``, ...
for several), optionally composited back into the full frame (``<stem>_pasted.png``). ``--no-align`` resizes
the whole image instead (non-face pictures, sketches). The model itself is an ``inference.Translator``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facesketch.data.images import UnreadableImageError, is_image_file, load_rgb, save_image_atomic
from facesketch.errors import UserError
from facesketch.inference import DIRECTIONS, Translator  # noqa: F401  (the library's public names)
from facesketch.translate.image import TranslateOptions, Translation, translate_image, translate_images  # noqa: F401
from facesketch.translate.load import load_translator  # noqa: F401

if TYPE_CHECKING:  # the face path's types; the package itself is imported only when faces are looked for
    from facesketch.faces import FaceDetector


# ---------------------------------------------------------------------------------------------------------------
# files and folders

log = logging.getLogger(__name__)


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)  # face path: inputs in which no face was found
    faces: int = 0  # face path: faces translated


def collect_inputs(inputs: list[str], *, recursive: bool = False) -> list[Path]:
    """Expand files and folders (images directly inside, or below with ``recursive``) into a sorted, de-duplicated list."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(q for q in it if q.is_file() and is_image_file(q))
            if not found:
                log.warning(f"warning: {p}: no image files found")
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


def output_names(stem: str, ext: str) -> list[str]:
    """Every name ``translate_files`` may write for an input of this stem (face outputs matched by pattern)."""
    return [f"{stem}{ext}", f"{stem}_pasted{ext}", f"{stem}_attention.png", f"{stem}_faces.png", f"{stem}_face*{ext}",
            f"{stem}_face*_attention.png", f"{stem}_*{ext}", f"{stem}_*_attention.png"]  # fmt: skip


def refuse_overwriting_inputs(files: list[Path], out_dir: Path, ext: str) -> None:
    """UserError, before anything is written, when an output would replace one of the inputs: the same file by
    path, through a symlink or as a hard link (compared by device and inode)."""
    if not out_dir.is_dir():
        return  # a new folder holds no input
    inputs = {}
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        inputs[(st.st_dev, st.st_ino)] = f
    for f in files:
        for pattern in output_names(f.stem, ext):
            for cand in out_dir.glob(pattern):
                try:
                    st = cand.stat()
                except OSError:
                    continue
                hit = inputs.get((st.st_dev, st.st_ino))
                if hit is not None:
                    raise UserError(f"--out {out_dir}: writing {cand.name} would replace the input {hit}; "
                                    "choose another --out (nothing was written)")  # fmt: skip


def translate_files(tr: Translator, files: list[Path], out_dir: Path, *, save_masks: bool = False, ext: str = ".png",
                    batch_size: int = 8, output_size: str = "model", progress: bool = True, detector: FaceDetector | None = None,
                    paste_back: bool = False, whole_frame_fallback: bool = False, save_boxes: bool = False,
                    styles: list[int] | None = None, style_suffixes: list[str] | None = None) -> TranslateReport:  # fmt: skip
    """Translate each file to ``out_dir/<stem><ext>`` (written atomically, one at a time, so nothing done is lost),
    each through the use case ``translate_images`` (``translate/image.py``).

    ``styles``: for a style-conditioned model, the styles to draw each input in (one run per style); with several,
    each output name gets that style's suffix from ``style_suffixes`` (``<stem>_contour.png``, ...).

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
    refuse_overwriting_inputs(files, out_dir, ext)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = TranslateReport()
    styles = list(styles) if styles else [None]
    suffixes = style_suffixes if len(styles) > 1 else [""] * len(styles)
    if len(suffixes) != len(styles):
        raise ValueError("one suffix per style")
    runs = [(TranslateOptions(align=detector is not None, whole_frame_fallback=whole_frame_fallback, output_size=output_size,
                              masks=save_masks, batch_size=batch_size, style=st), sfx) for st, sfx in zip(styles, suffixes)]  # fmt: skip
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
        for r, (opts, sfx) in enumerate(runs):
            for f, img, t in zip(chunk, imgs, translate_images(tr, imgs, opts, detector)):
                first = r == 0  # what does not depend on the style is written and counted once
                if first and save_boxes and detector is not None:
                    from facesketch.faces import draw_faces

                    save_image_atomic(draw_faces(img, t.faces), out_dir / f"{f.stem}_faces.png")
                if first and t.no_face:
                    rep.no_face.append(f)
                    what = "translating the whole frame" if whole_frame_fallback else "skipped (--whole-frame-fallback: translate it whole)"
                    log.warning(f"{f}: no face found; {what}")
                for k, name in enumerate(t.names(f.stem + sfx)):
                    _save(t.outputs[k], out_dir / f"{name}{ext}", rep)
                    panel = t.panel(k) if save_masks else None
                    if panel is not None:
                        save_image_atomic(panel, out_dir / f"{name}_attention.png")
                if first:
                    rep.faces += len(t.faces)
                if paste_back and t.faces:
                    _save(t.pasted(img), out_dir / f"{f.stem}{sfx}_pasted{ext}", rep)
        bar.update(len(files[i : i + step]))
    bar.close()
    return rep
