"""Inference: load a trained model (export file or run directory) and translate images, files and folders.

`facesketch translate --model RUN_OR_EXPORT --out DIR INPUT...` writes one image per input with the same file
stem (A->B: photo -> sketch by default; ``--direction BtoA`` for sketch -> photo).

Photos of any framing go through the face path (default for A->B): faces are detected, each is aligned to the
FS2K framing the model was trained on and translated on its own (``<stem>.png``, or ``<stem>_face0.png``, ...
for several), optionally composited back into the full frame (``<stem>_pasted.png``). ``--no-align`` resizes
the whole image instead (non-face pictures, sketches).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from facesketch.data.images import UnreadableImageError, is_image_file, load_rgb, save_image_atomic
from facesketch.data.transforms import from_model_range, to_model_range
from facesketch.errors import UserError
from facesketch.models.generators import GeneratorOutput, build_generator

if TYPE_CHECKING:  # the face path's types; the package itself is imported only when faces are looked for
    from facesketch.faces import AlignedFace, Face, FaceDetector

DIRECTIONS = ("AtoB", "BtoA")


def model_meta(cfg) -> dict:
    """What an export must carry so that inference needs no flags (from a training Config)."""
    return {
        "generator": cfg.model.generator, "ngf": cfg.model.ngf, "n_blocks": cfg.model.n_blocks,
        "n_masks": cfg.model.n_masks, "crop_size": cfg.data.crop_size, "load_size": cfg.data.load_size,
        "preprocess": cfg.data.preprocess, "name": cfg.name, "image_size": cfg.image_size,
    }  # fmt: skip


def _build(meta: dict) -> torch.nn.Module:
    return build_generator(meta["generator"], ngf=meta["ngf"], n_blocks=meta["n_blocks"], n_masks=meta.get("n_masks", 9))


class Translator:
    """A generator ready for inference. Images in and out are (H, W, 3) uint8 RGB.

    Inputs are resized to ``size`` x ``size`` with bicubic (CycleGAN's test-time preprocessing, aspect not
    kept); outputs come at the model size, or at each input's size with ``output_size='input'``.
    """

    def __init__(self, generator: torch.nn.Module, meta: dict, *, direction: str = "AtoB", device: str | torch.device = "cpu"):
        if direction not in DIRECTIONS:
            raise UserError(f"--direction {direction}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)")
        self.device = torch.device(device)
        self.G = generator.to(self.device).eval()
        self.meta, self.direction = meta, direction
        # the model's own inference size (exports before model.image_size existed translate at their crop size)
        self.size = int(meta.get("image_size") or meta["crop_size"])

    @classmethod
    def from_path(cls, path: str | Path, direction: str = "AtoB", device: str | torch.device = "cpu") -> "Translator":
        """From an export (``.safetensors``) or a run directory (its export, else its latest checkpoint)."""
        from facesketch.training.checkpoint import latest_checkpoint, read_export

        if direction not in DIRECTIONS:
            raise UserError(f"--direction {direction}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)")
        path = Path(path)
        name = "G_A" if direction == "AtoB" else "G_B"
        if path.is_dir():
            export = path / "export" / "model.safetensors"
            if export.is_file():
                path = export
            else:
                found = latest_checkpoint(path)
                if found is None:
                    runs = sorted(p for p in path.iterdir() if p.is_dir() and ((p / "export" / "model.safetensors").is_file()
                                                                               or (p / "checkpoints").is_dir()))  # fmt: skip
                    hint = f"; did you mean --model {runs[0]}?" if runs else ""
                    raise UserError(f"--model {path}: a directory without export/model.safetensors or checkpoints/{hint}")
                ckpt_path, state = found
                from facesketch.config import load_config

                cfg = load_config(base=state["config"])
                meta = model_meta(cfg)
                g = _build(meta)
                g.load_state_dict(state["nets"][name])
                return cls(g, meta, direction=direction, device=device)
        if not path.is_file():
            raise UserError(f"--model {path}: no such file or run directory")
        meta, sds = read_export(path)
        if name not in sds:
            raise UserError(f"--model {path}: the export has no {name} ({direction}); it holds {', '.join(sds)}")
        g = _build(meta)
        try:
            g.load_state_dict(sds[name])
        except RuntimeError as e:
            raise UserError(f"--model {path}: weights do not match the stored config ({str(e).splitlines()[0]})") from None
        return cls(g, meta, direction=direction, device=device)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> GeneratorOutput:
        """x: RGB in [-1, 1] (B, 3, S, S) -> the generator's output structure (on the translator's device)."""
        return self.G(x.to(self.device))

    def _prepare(self, img: np.ndarray) -> torch.Tensor:
        im = Image.fromarray(img)
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy())

    def translate_arrays(self, images: list[np.ndarray], *, batch_size: int = 8, output_size: str = "model",
                         return_attention: bool = False):  # fmt: skip
        """uint8 RGB images (any size) -> translated uint8 RGB images; with ``return_attention`` also (K+1, S, S) masks."""
        outs, masks = [], []
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            x = to_model_range(torch.stack([self._prepare(im) for im in chunk]))
            o = self.forward(x)
            ys = from_model_range(o.image).cpu().numpy()
            for j, y in enumerate(ys):
                if output_size == "input" and chunk[j].shape[:2] != y.shape[:2]:
                    h, w = chunk[j].shape[:2]
                    y = np.asarray(Image.fromarray(y).resize((w, h), Image.BICUBIC))
                outs.append(y)
                if return_attention:
                    masks.append(None if o.attention is None else o.attention[j].float().cpu().numpy())
        return (outs, masks) if return_attention else outs


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


def _face_detector(args: argparse.Namespace):
    """A FaceDetector when the face path is on (``--align``, or by default for AtoB), else None."""
    align = args.align if args.align is not None else args.direction == "AtoB"
    face_flags = [n for n, on in (("--paste-back", args.paste_back), ("--whole-frame-fallback", args.whole_frame_fallback),
                                  ("--max-faces", args.max_faces), ("--save-boxes", args.save_boxes)) if on]  # fmt: skip
    if not align:
        if face_flags:
            why = "--no-align" if args.align is False else "--direction BtoA aligns only with --align"
            print(f"note: {', '.join(face_flags)} ignored ({why})", file=sys.stderr)
        return None
    try:
        from facesketch.faces import FaceDetector
        from facesketch.faces.detect import require_cv2

        require_cv2()
    except UserError:
        if args.align:  # asked for explicitly: a clear error
            raise
        print("note: face alignment is off: OpenCV is not installed (pip install 'opencv-python-headless<5'); "
              "translating whole frames", file=sys.stderr)  # fmt: skip
        return None
    if args.max_faces < 0:
        raise UserError(f"--max-faces {args.max_faces}: use 0 (all faces) or a positive number")
    return FaceDetector(max_faces=args.max_faces)


def run_translate(args: argparse.Namespace) -> int:
    from facesketch.training.distributed import pick_device

    device = pick_device(args.device)
    from facesketch.default_model import resolve_model

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder; choose another --out")
    args.model = resolve_model(args.model)
    tr = Translator.from_path(args.model, direction=args.direction, device=device)
    files = collect_inputs(args.inputs, recursive=args.recursive)
    if not files:
        raise UserError("no input images found (pass image files or folders)")
    if args.save_masks and tr.meta["generator"] == "resnet":
        print("note: --save-masks ignored: this generator has no attention masks", file=sys.stderr)
    detector = _face_detector(args)
    ext = "." + args.format.lower().lstrip(".")
    rep = translate_files(tr, files, Path(args.out), save_masks=args.save_masks, ext=ext, batch_size=args.batch_size,
                          output_size=args.output_size, progress=not args.quiet, detector=detector,
                          paste_back=args.paste_back, whole_frame_fallback=args.whole_frame_fallback,
                          save_boxes=args.save_boxes)  # fmt: skip
    faces = f" ({rep.faces} face(s))" if detector is not None else ""
    print(f"wrote {len(rep.written)} image(s){faces} to {args.out}")
    rc = 0
    if rep.no_face:
        what = "translated whole" if args.whole_frame_fallback else "skipped; --whole-frame-fallback translates them whole"
        print(f"{len(rep.no_face)} input(s) without a detected face ({what}):", file=sys.stderr)
        for f in rep.no_face:
            print(f"  {f}", file=sys.stderr)
        rc = 0 if args.whole_frame_fallback else 1
    if rep.failed:
        print(f"{len(rep.failed)} input(s) could not be read:", file=sys.stderr)
        for f in rep.failed:
            print(f"  {f}", file=sys.stderr)
        rc = 1
    return rc


def register(sub, help_text: str) -> None:
    p = sub.add_parser("translate", help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=help_text + ". Outputs keep each input's file stem.\n\n"
                       "Face path (default for --direction AtoB): faces are detected (OpenCV Haar cascades), each is\n"
                       "rotated, scaled and cropped to the FS2K framing the model was trained on, and translated:\n"
                       "<stem>.png for one face, <stem>_face0.png, <stem>_face1.png, ... (left to right) for several.\n"
                       "A photo without a face is reported and skipped (exit status 1) unless --whole-frame-fallback.\n"
                       "--no-align resizes the whole image to the model size instead (bicubic): use it for pictures\n"
                       "that are not face photos. For --direction BtoA alignment is off by default: sketches are not\n"
                       "photos and the detector is made for photos (--align turns it on).",
                       epilog="examples:\n"
                       "  facesketch translate --model runs/fs2k --out sketches group.jpg selfie.jpg --paste-back\n"
                       "  facesketch translate --model model.safetensors --out out --no-align painting.png\n"
                       "  facesketch translate --model runs/fs2k --out photos --direction BtoA sketch.png")  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("--model", default=None, help="a run directory or an exported model.safetensors (default: the model shipped with facesketch)")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--direction", default="AtoB", choices=DIRECTIONS, help="AtoB: photo -> sketch (default); BtoA: sketch -> photo")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=None,
                   help="detect and align faces (default: on for AtoB, off for BtoA); --no-align: whole image, resized")  # fmt: skip
    p.add_argument("--paste-back", action="store_true",
                   help="face path: also write <stem>_pasted.png, the translated face(s) blended into the full photo")  # fmt: skip
    p.add_argument("--whole-frame-fallback", action="store_true",
                   help="face path: when no face is found, translate the whole image instead of skipping it")  # fmt: skip
    p.add_argument("--max-faces", type=int, default=0, metavar="N", help="face path: keep the N largest faces (default 0: all)")
    p.add_argument("--save-boxes", action="store_true", help="face path: also write <stem>_faces.png with the detected faces drawn")
    p.add_argument("--save-masks", action="store_true", help="also write <stem>_attention.png with the attention masks")
    p.add_argument("--format", default="png", choices=["png", "jpg"], help="output image format (default png)")
    p.add_argument("--output-size", default="model", choices=["model", "input"],
                   help="whole-frame outputs: model size (default) or each input's size; face crops: model size")  # fmt: skip
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_translate)
