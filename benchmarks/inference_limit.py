"""How close translation runs to this CPU's limit: the fp32 matrix-multiply rate against the shipped model's translation
rate in GFLOP/s (the generator's FLOPs at its size x photos/s), for each route, in one run.

Usage: python benchmarks/inference_limit.py [--model default] [--size 0] [--batches 1,8] [--repeats 3]
Prints the machine, the load average before and after, and a Markdown table. Routes: eager fp32, eager bf16 (autocast),
fp32 channels_last, and ONNX Runtime when it is installed. Run it on an idle machine: ratios within one run compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch.translate.load import load_translator  # noqa: E402


def matmul_gflops(n: int = 2048, seconds: float = 3.0) -> float:
    """Best fp32 GFLOP/s of an n x n matrix multiply over ``seconds``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def generator_gflop(G, size: int) -> float:
    """FLOPs (x 1e-9) of one photo through the generator, by torch's FLOP counter (a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        G(torch.zeros(1, 3, size, size))
    return fc.get_total_flops() / 1e9


def photos_per_s(fn, batch: int, size: int, repeats: int) -> float:
    x = torch.rand(batch, 3, size, size) * 2 - 1
    fn(x)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        best = max(best, batch / (time.perf_counter() - t))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=0, help="translation size (default: the model's own)")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tr = load_translator(args.model, precision="fp32")
    G, size = tr.G, args.size or tr.size
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "cpu")  # fmt: skip
    load0 = os.getloadavg()[0]
    mm = matmul_gflops()
    flop = generator_gflop(G, size)
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; load {load0:.2f}")
    print(f"fp32 matmul 2048^2: {mm:.0f} GFLOP/s; generator at {size}x{size}: {flop:.1f} GFLOP per photo\n")

    def eager(x):
        with torch.no_grad():
            return G(x).image

    def bf16(x):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return G(x).image

    def channels_last(x):
        with torch.no_grad():
            return G(x.contiguous(memory_format=torch.channels_last)).image

    routes = {"eager fp32": eager, "eager bf16 (autocast)": bf16, "fp32 channels_last": channels_last}
    try:
        import onnxruntime as ort  # noqa: F401

        from facesketch.export.onnx import export_onnx

        path = Path("/tmp") / f"facesketch-bench-{os.getpid()}.onnx"
        export_onnx(G, path, size=size)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        routes["ONNX Runtime fp32"] = lambda x: sess.run(None, {"image": x.numpy()})[0]
    except ImportError:
        print("(onnxruntime not installed: no ONNX row)")
    print("| route | batch | photos/s | GFLOP/s | share of the matmul rate |\n|---|---|---|---|---|")
    for name, fn in routes.items():
        for b in (int(v) for v in args.batches.split(",")):
            r = photos_per_s(fn, b, size, args.repeats)
            print(f"| {name} | {b} | {r:.2f} | {r * flop:.0f} | {r * flop / mm:.0%} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
