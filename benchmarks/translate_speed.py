"""Translation throughput: a batch of 16 photos at 256x256 through G_A, eager PyTorch vs torch.compile vs ONNX Runtime.

Usage: python benchmarks/translate_speed.py [--batch 16] [--size 256] [--reps 3] [--no-compile] [--no-onnx]
Random-initialised paper-size generator (speed does not depend on the weights). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import _cpu_name  # noqa: E402

from facesketch.models import build_generator  # noqa: E402


def bench(fn, x, reps) -> float:
    fn(x)
    t = time.perf_counter()
    for _ in range(reps):
        fn(x)
    return x.shape[0] * reps / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-onnx", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    g = build_generator("attention").eval()
    x = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    rows = []
    with torch.inference_mode():
        rows.append(("PyTorch eager fp32", bench(lambda t: g(t).image, x, args.reps)))
        from facesketch.device import cpu_has_amx

        if cpu_has_amx():
            def bf16(t):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return g(t).image
            rows.append(("PyTorch eager bf16 autocast (AMX)", bench(bf16, x, args.reps)))
    if not args.no_compile:
        cg = torch.compile(g)
        with torch.no_grad():
            t0 = time.perf_counter()
            cg(x[:1])
            cg(x)
            ct = time.perf_counter() - t0
            rows.append((f"torch.compile fp32 (compile took {ct:.0f} s)", bench(lambda t: cg(t).image, x, args.reps)))
    if not args.no_onnx:
        try:
            import onnxruntime as ort

            from facesketch.export.onnx import export_onnx
        except ImportError as e:
            print(f"ONNX skipped: {e}")
        else:
            with tempfile.TemporaryDirectory() as d:
                path = export_onnx(g, Path(d) / "g.onnx", size=args.size)
                sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                name = sess.get_inputs()[0].name
                xn = x.numpy()
                rows.append(("ONNX Runtime (CPU EP) fp32", bench(lambda t: sess.run(None, {name: t}), xn, args.reps)))
                out = sess.run(None, {name: xn[:2]})[0]
                with torch.no_grad():
                    ref = g(x[:2]).image.numpy()
                print(f"ONNX vs PyTorch max |diff| on 2 images: {np.abs(out - ref).max():.2e}")
    print(f"\n{_cpu_name()}; torch {torch.__version__}; {torch.get_num_threads()} threads; batch {args.batch} at {args.size}x{args.size}\n")
    print("| path | images/s |\n|---|---|")
    for name, v in rows:
        print(f"| {name} | {v:.2f} |")


if __name__ == "__main__":
    main()
