"""Steps per second of the real training step (networks, prior losses, optimisers as `facesketch train` builds them) for
a preset and variants of it, timed in one process so the ratios compare on a noisy machine.

Usage: python benchmarks/recipe_step.py [--config fs2k-cpu] [--steps 30] [--warmup 5]
           [--variant NAME=key=value,key=value ...]
Prints a Markdown table: variant, steps/s, its ratio to the first variant, the 1-minute load average before each.
Inputs are random crops of the preset's size (the step's cost does not depend on the pixels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch.config import load_config  # noqa: E402
from facesketch.device import amp_dtype as _amp_dtype  # noqa: E402
from facesketch.losses.registry import build_terms as build_prior_terms  # noqa: E402
from facesketch.training.distributed import DistInfo  # noqa: E402
from facesketch.training.loop import build_state  # noqa: E402
from facesketch.training.step import CycleGANStep, StepSettings  # noqa: E402

DEFAULT_VARIANTS = [
    "baseline=",
    "ema=train.ema_decay=0.999",
    "background_generated=model.background_A=generated",
    "grey=model.grey_sketch=true",
    "resize_up=model.upsample=resize",
    "noise=loss.fake_B_noise=20",
]


def time_variant(preset: str, overrides: list[str], steps: int, warmup: int) -> float:
    cfg = load_config(preset, overrides)
    device = torch.device("cpu")
    dist = DistInfo()
    amp = _amp_dtype(cfg.train.amp, device)  # as `facesketch train` picks it (bf16 on CPUs with AMX)
    cl = cfg.train.channels_last == "on"
    ts = build_state(cfg, dist, device, amp, cl)
    terms = build_prior_terms(cfg.loss, cfg.priors, device)
    G, D = (torch.compile(ts.G), torch.compile(ts.D)) if cfg.train.compile else (ts.G, ts.D)
    settings = StepSettings.from_config(cfg.loss, amp_dtype=amp, channels_last=cl)
    step = CycleGANStep(G, D, ts.opt_G, ts.opt_D, settings, terms, ts.pool_A, ts.pool_B)
    b, s = cfg.train.batch_size, cfg.data.crop_size
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(b, 3, s, s, generator=g) * 2 - 1, torch.rand(b, 3, s, s, generator=g) * 2 - 1) for _ in range(4)]
    for i in range(warmup):
        step(*batches[i % 4])
        ts.update_ema()
    t = time.perf_counter()
    for i in range(steps):
        step(*batches[i % 4])
        ts.step += 1
        ts.update_ema()
    return steps / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="fs2k-cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--variant", action="append", help="NAME=key=value,key=value (repeatable; default: each lever of the recipe search)")
    args = ap.parse_args()
    variants = args.variant or DEFAULT_VARIANTS
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "cpu")  # fmt: skip
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; preset {args.config}, "
          f"{args.steps} timed steps after {args.warmup}\n")  # fmt: skip
    print("| variant | overrides | steps/s | ratio | load (1 min) |\n|---|---|---|---|---|")
    base = None
    for v in variants:
        name, _, rest = v.partition("=")
        overrides = [o for o in rest.split(",") if o]
        load = os.getloadavg()[0]
        rate = time_variant(args.config, overrides, args.steps, args.warmup)
        base = base or rate
        print(f"| {name} | {' '.join(overrides) or '-'} | {rate:.3f} | {rate / base:.2f} | {load:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
