"""`facesketch export`: write a trained model as ONNX (one generator) and/or as the light safetensors export."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from facesketch.errors import UserError
from facesketch.inference import MAX_SIZE, MIN_SIZE, check_size


def run_export(args: argparse.Namespace) -> int:
    try:
        return _run_export(args)
    except OSError as e:
        raise UserError(f"cannot write {e.filename or 'the export'}: {e.strerror or e}; choose a writable place") from None


def _run_export(args: argparse.Namespace) -> int:
    from facesketch.default_model import resolve_model
    from facesketch.inference import DIRECTIONS
    from facesketch.translate.load import load_translator

    if args.size:
        check_size(args.size)  # before anything is loaded or written (issue: a 100000 px export allocated 120 GB)
    if not args.onnx and not args.safetensors:
        raise UserError("nothing to write: pass --onnx OUT.onnx and/or --safetensors OUT.safetensors")
    for flag, dest in (("--onnx", args.onnx), ("--safetensors", args.safetensors)):
        if dest and Path(dest).is_dir():
            raise UserError(f"{flag} {dest}: is a folder; name the file to write, e.g. {Path(dest) / 'model'}{'.onnx' if flag == '--onnx' else '.safetensors'}")
        if dest and not os.access(Path(dest).resolve().parent if Path(dest).resolve().parent.exists() else ".", os.W_OK):
            raise UserError(f"{flag} {dest}: cannot write into {Path(dest).resolve().parent}; choose a writable place")
    args.model = resolve_model(args.model)
    if args.onnx:
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError("--onnx needs the onnx extra: pip install 'facesketch[onnx]' (onnx, onnxruntime)") from None
        from facesketch.export.onnx import export_onnx, onnx_parity

        tr = load_translator(args.model, direction=args.direction)
        size = args.size or tr.size
        meta = {"facesketch_config": json.dumps(tr.meta), "direction": args.direction, "size": str(size)}
        out = export_onnx(tr.G, args.onnx, size=size, opset=args.opset, metadata=meta)
        print(f"wrote {out} ({args.direction}, input 'image' (N, 3, {size}, {size}) RGB in [-1, 1], opset {args.opset})")
        if args.check:
            try:
                errs = onnx_parity(out, tr.G, size=size)
            except ImportError:
                print("note: onnxruntime is not installed: skipped the parity check", file=sys.stderr)
            else:
                print("onnxruntime vs PyTorch, max |diff|: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
                if max(errs.values()) > 1e-3:
                    print("warning: the ONNX model disagrees with PyTorch by more than 1e-3", file=sys.stderr)
                    return 1
        if args.half and not args.safetensors:
            print("note: --half applies to --safetensors only", file=sys.stderr)
    if args.safetensors:
        from facesketch.models.export_file import export_generators

        gens, meta = {}, None
        for d in DIRECTIONS:
            try:
                tr = load_translator(args.model, direction=d)
            except UserError:
                if d == "AtoB":
                    raise
                print(f"note: {args.model} has no {d} generator; the export holds G_A only", file=sys.stderr)
                continue
            gens["G_A" if d == "AtoB" else "G_B"], meta = tr.G, tr.meta
        out = export_generators(Path(args.safetensors), gens, meta, half=args.half)
        print(f"wrote {out} ({', '.join(gens)}, {'float16' if args.half else 'float32'}, {out.stat().st_size / 2**20:.2f} MB)")
    return 0


def register(sub, help_text: str) -> None:
    p = sub.add_parser("export", help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=help_text + ".\n\n"
                       "--onnx: one generator (--direction) as an ONNX graph: input 'image' float32 (N, 3, S, S), RGB in\n"
                       "[-1, 1], dynamic batch N; outputs 'translated' (N, 3, S, S) in [-1, 1] and, for attention\n"
                       "generators, 'attention' (N, K+1, S, S). Checked against PyTorch with onnxruntime when installed.\n"
                       "--safetensors: both generators and their config in one file, what `translate` and `serve` load\n"
                       "(--half stores float16 weights: half the size).",
                       epilog="examples:\n"
                       "  facesketch export --model runs/fs2k --onnx sketch.onnx\n"
                       "  facesketch export --model runs/fs2k --safetensors fs2k-half.safetensors --half")  # fmt: skip
    p.add_argument("--model", default=None, help="a run directory or an exported model.safetensors (default: the model shipped with facesketch)")
    p.add_argument("--onnx", metavar="OUT.onnx", help="write the --direction generator as ONNX here")
    p.add_argument("--safetensors", metavar="OUT", help="write the light export (both generators + config) here")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"], help="ONNX: AtoB photo -> sketch (default) or BtoA")
    p.add_argument("--size", type=int, default=0, metavar="N",
                   help=f"ONNX input size N x N (a multiple of 4 from {MIN_SIZE} to {MAX_SIZE}; default: the model's own "
                        "translation size, 288 for the shipped model)")  # fmt: skip
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (11 to 20; default 17)")
    p.add_argument("--half", action="store_true", help="safetensors: store float16 weights")
    p.add_argument("--no-check", dest="check", action="store_false", help="ONNX: skip the onnxruntime parity check")
    p.set_defaults(func=run_export)
