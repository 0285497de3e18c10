"""`facesketch translate --model RUN_OR_EXPORT --out DIR INPUT...`: one image per input with the same file stem
(A->B: photo -> sketch by default; ``--direction BtoA`` for sketch -> photo). The face path and the batch writer are
``facesketch.translate``; the model is an ``inference.Translator``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facesketch.cli import add_device, add_precision, add_quiet, show_progress
from facesketch.errors import UserError
from facesketch.inference import DIRECTIONS, MAX_SIZE, MIN_SIZE, check_size
from facesketch.models.generators import GENERATORS
from facesketch.translate import collect_inputs, translate_files
from facesketch.translate.load import load_translator


def _face_detector(args: argparse.Namespace):
    """A FaceDetector when the face path is on (``--align``, or by default for AtoB), else None."""
    align = args.align if args.align is not None else args.direction == "AtoB"
    face_flags = [n for n, on in (("--paste-back", args.paste_back), ("--whole-frame-fallback", args.whole_frame_fallback),
                                  ("--max-faces", args.max_faces), ("--save-boxes", args.save_boxes),
                                  ("--detector blazeface", args.detector == "blazeface")) if on]  # fmt: skip
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
    if args.detector == "blazeface":
        from facesketch.faces.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(args.mediapipe_dir, max_faces=args.max_faces)
    if args.mediapipe_dir is not None:
        print("note: --mediapipe-dir ignored (it is for --detector blazeface)", file=sys.stderr)
    return FaceDetector(max_faces=args.max_faces)


def run_translate(args: argparse.Namespace) -> int:
    from facesketch.device import pick_device

    device = pick_device(args.device)
    from facesketch.default_model import resolve_model

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.size is not None:
        check_size(args.size)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder; choose another --out")
    args.model = resolve_model(args.model)
    tr = load_translator(args.model, direction=args.direction, device=device, precision=args.precision).at_size(args.size)
    styles, suffixes = None, None
    if args.style is not None:
        from facesketch.data.fs2k import STYLE_NAMES, parse_style

        if not tr.styles:
            raise UserError(f"--style {args.style}: this model has no styles (it was trained without model.styles)")
        chosen = parse_style(args.style, tr.styles)
        styles = list(range(tr.styles)) if chosen == "all" else [chosen]
        suffixes = ["_" + (STYLE_NAMES[k] if k < len(STYLE_NAMES) else f"style{k}") for k in styles]
    files = collect_inputs(args.inputs, recursive=args.recursive)
    if not files:
        raise UserError("no input images found (pass image files or folders)")
    if args.save_masks and not GENERATORS[tr.meta["generator"]].attention:
        print("note: --save-masks ignored: this generator has no attention masks", file=sys.stderr)
    detector = _face_detector(args)
    ext = "." + args.format.lower().lstrip(".")
    rep = translate_files(tr, files, Path(args.out), save_masks=args.save_masks, ext=ext, batch_size=args.batch_size,
                          output_size=args.output_size, progress=show_progress(args), detector=detector,
                          paste_back=args.paste_back, whole_frame_fallback=args.whole_frame_fallback,
                          save_boxes=args.save_boxes, styles=styles, style_suffixes=suffixes)  # fmt: skip
    faces = f" ({rep.faces} face(s), {args.detector} detector)" if detector is not None else ""
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
                       "Face path (default for --direction AtoB): faces are detected (OpenCV Haar cascades, or MediaPipe's\n"
                       "BlazeFace with --detector blazeface), each is rotated, scaled and cropped to the FS2K framing the\n"
                       "model was trained on, and translated:\n"
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
    from facesketch.faces import DETECTORS

    p.add_argument("--detector", default="haar", choices=DETECTORS,
                   help="face path: OpenCV's Haar cascades (default, shipped with OpenCV) or MediaPipe's BlazeFace, tiled "
                        "(finds more small faces in wide shots; needs `facesketch weights fetch blazeface blazeface-anchors`)")  # fmt: skip
    p.add_argument("--mediapipe-dir", default=None, metavar="DIR",
                   help="--detector blazeface: a folder with blazeface.pth and anchors_face.npy (default: the weight cache)")  # fmt: skip
    p.add_argument("--save-boxes", action="store_true", help="face path: also write <stem>_faces.png with the detected faces drawn")
    p.add_argument("--save-masks", action="store_true", help="also write <stem>_attention.png with the attention masks")
    p.add_argument("--format", default="png", choices=["png", "jpg"], help="output image format (default png)")
    p.add_argument("--output-size", default="model", choices=["model", "input"],
                   help="whole-frame outputs: model size (default) or each input's size; face crops: model size")  # fmt: skip
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help=f"translate at N x N px (a multiple of 4 from {MIN_SIZE} to {MAX_SIZE}; default: the model's own size, 288 "
                        "for the shipped model): faces are aligned to it, whole frames resized to it")  # fmt: skip
    p.add_argument("--style", default=None, metavar="STYLE",
                   help="for a model trained with styles: 0 or contour (light contour lines), 1 or bold (dark strokes, filled "
                        "hair), 2 or shaded (soft shaded pencil), or all (one sketch per style: <stem>_contour.png, ...)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per forward pass (default 8)")
    add_device(p)
    add_precision(p)
    add_quiet(p)
    p.set_defaults(func=run_translate)
