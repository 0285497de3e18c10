"""Seconds per training iteration of facesketch's CycleGAN step (batch 4, attention generator, no prior losses).

Usage: python benchmarks/train_step.py [--sizes 128,256] [--device cpu] [--steps 3]
Prints a Markdown table (fp32 and the 'auto' mixed precision this machine gets) with the hardware named.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import _cpu_name, build_nets, ours_step, sync  # noqa: E402

from facesketch.device import amp_dtype as _amp_dtype  # noqa: E402


def time_step(device, size, amp, steps, warmup=1) -> float:
    nets = build_nets(device)
    step = ours_step(nets, {}, {"edge": 0, "normal": 0}, device, amp=amp, channels_last=device.type == "cuda", fused=True)
    a = torch.rand(4, 3, size, size, device=device) * 2 - 1
    b = torch.rand(4, 3, size, size, device=device) * 2 - 1
    for _ in range(warmup):
        step(a, b)
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step(a, b)
    sync(device)
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="128 only, 2 steps")
    args = ap.parse_args()
    device = torch.device(args.device)
    sizes = [128] if args.quick else [int(s) for s in args.sizes.split(",")]
    steps = 2 if args.quick else args.steps
    auto = _amp_dtype("auto", device)
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(f"{hw}; torch {torch.__version__}; {torch.get_num_threads()} threads; batch 4; AttentionGAN generators (ngf 64, 9 blocks)\n")
    print("| size | fp32 s/iter | " + (f"{auto} (auto) s/iter |" if auto else "") + "\n|---|---|" + ("---|" if auto else ""))
    for size in sizes:
        row = f"| {size}x{size} | {time_step(device, size, None, steps):.2f} |"
        if auto:
            row += f" {time_step(device, size, auto, steps):.2f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
