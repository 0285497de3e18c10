"""Fault injection: kill -9 a debug training run at random moments, resume it each time, compare with a straight run.

Usage: python benchmarks/fault_injection.py [--kills 20] [--seed 0] [--work DIR]

A reference run trains a tiny model on synthetic images to the end (24 steps, a checkpoint and a prune after every
step). Then the same run is started and killed with SIGKILL: after a random delay (uniform over the reference run's
wall time: start-up or mid-step), or, for every third kill each, the moment a checkpoint's temporary file appears
(mid-write) or a new checkpoint stands beside the one it replaces (mid-prune); it is then resumed (`--resume` when a
checkpoint exists, else started anew), again and again, until --kills kills have landed and the run finishes by
itself. Each finished run must equal the reference: the exported model byte for byte, the final checkpoint's networks
and optimiser state tensor for tensor, and stats.jsonl line for line (all but `time` and `images_per_s`).
Prints one line per kill (where it landed, judged from what it left behind) and a summary; exit status 1 on any
difference. `tests/test_reliability.py` runs it with 3 kills; docs/reliability.md has a 20-kill result.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facesketch.training import checkpoint as ck  # noqa: E402

KEEP = 1
OVERRIDES = {
    "data.load_size": 36, "data.crop_size": 32, "data.num_workers": 0, "data.max_items": 0,
    "model.ngf": 4, "model.n_blocks": 1, "model.ndf": 4, "model.n_masks": 3,
    "loss.lambda_edge": 0, "loss.lambda_normal": 0, "loss.pool_size": 3,
    "train.batch_size": 2, "train.n_epochs": 4, "train.n_epochs_decay": 4, "train.max_steps": 0,
    "train.log_every": 3, "train.sample_every": 1000, "train.checkpoint_every": 1, "train.keep_checkpoints": KEEP,
    "train.eval_every": 0, "train.progress": False,
}  # fmt: skip


def synthetic_data(root: Path, seed: int = 0) -> Path:
    """trainA/ trainB/ with 6 small random-texture PNGs each (3 steps per epoch at batch 2)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for folder in ("trainA", "trainB", "testA", "testB"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(6 if folder.startswith("train") else 1):
            img = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
            Image.fromarray(img).save(root / folder / f"{i:03d}.png")
    return root


def command(run: Path, data: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "facesketch", "train", "--out", str(run)]
    if resume:
        return [*cmd, "--resume"]
    return [*cmd, "--config", "debug", f"data.root={data}", *(f"{k}={v}" for k, v in OVERRIDES.items())]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))


def where_it_landed(run: Path) -> str:
    """Judge from the run folder what the kill interrupted."""
    tmp = [p for d in ("checkpoints", "export", ".") for p in (run / d).glob(".*.tmp")] if run.exists() else []
    if any(p.parent.name == "checkpoints" for p in tmp):
        return "mid-checkpoint-write"
    if tmp:
        return "mid-export/other write"
    ckpts = ck.list_checkpoints(run)
    if len(ckpts) > KEEP:
        return "mid-prune"
    if not ckpts:
        return "start-up (no checkpoint yet)"
    return "mid-step"


def _starts(run: Path) -> int:
    try:
        return (run / "log.txt").read_text().count("  run: ")
    except OSError:
        return 0


def _wait_for(p: subprocess.Popen, run: Path, mode: str, deadline: float) -> bool:
    """Poll (every ~0.2 ms) until the run is inside a checkpoint write (a temporary file exists) or between writing a
    checkpoint and pruning the older one (more than KEEP checkpoints); True when caught, False if it ended first.
    Only from the moment this process has started training (its "run:" line in log.txt): what an earlier kill left
    behind does not count."""
    ck_dir = run / "checkpoints"
    before = _starts(run)
    while time.monotonic() < deadline and p.poll() is None and _starts(run) <= before:
        time.sleep(0.005)
    while time.monotonic() < deadline and p.poll() is None:
        try:
            names = os.listdir(ck_dir)
        except OSError:
            names = []
        if mode == "write" and any(n.endswith(".tmp") for n in names):
            return True
        if mode == "prune" and sum(1 for n in names if n.startswith("step_") and n.endswith(".pt")) > KEEP:
            return True
        time.sleep(0.0002)
    return False


def comparable_stats(run: Path) -> list[dict]:
    lines = [json.loads(s) for s in (run / "stats.jsonl").read_text().splitlines() if s.strip()]
    return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in lines]


def differences(ref: Path, run: Path) -> list[str]:
    import torch

    out = []
    if (ref / "export" / "model.safetensors").read_bytes() != (run / "export" / "model.safetensors").read_bytes():
        out.append("export differs")
    (_, a), (_, b) = ck.latest_checkpoint(ref), ck.latest_checkpoint(run)
    if a["step"] != b["step"]:
        out.append(f"final step {b['step']} != {a['step']}")
    for net in a["nets"]:
        if any(not torch.equal(v, b["nets"][net][k]) for k, v in a["nets"][net].items()):
            out.append(f"{net} differs")
    for opt in ("opt_G", "opt_D"):
        for pid, st in a[opt]["state"].items():
            if any(not torch.equal(v, b[opt]["state"][pid][k]) for k, v in st.items()):
                out.append(f"{opt} state differs")
                break
    if comparable_stats(ref) != comparable_stats(run):
        out.append("stats.jsonl differs")
    return out


def inject(kills: int, seed: int, work: Path, log=print) -> dict:
    rnd = random.Random(seed)
    data = synthetic_data(work / "data")
    ref = work / "reference"
    t0 = time.monotonic()
    subprocess.run(command(ref, data, False), check=True, env=_env(), capture_output=True, text=True)
    t_ref = time.monotonic() - t0
    landed: dict[str, int] = {}
    rounds, diffs, n, attempts = [], [], 0, 0
    while True:
        run = work / f"victim{len(rounds)}"
        while True:
            attempts += 1
            resume = bool(ck.list_checkpoints(run))
            p = subprocess.Popen(command(run, data, resume), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            mode = ("random", "write", "prune")[n % 3]  # every third kill waits for a write, every third for a prune
            delay = rnd.uniform(0, t_ref)
            t0 = time.monotonic()
            if n < kills and mode != "random":
                hit = _wait_for(p, run, mode, deadline=t0 + 2 * t_ref)
                rc = None if hit else p.poll()
                if rc is None and not hit:
                    rc = p.wait(timeout=600)
            else:
                try:
                    rc = p.wait(timeout=delay) if n < kills else p.wait(timeout=600)
                except subprocess.TimeoutExpired:
                    rc = None
            if rc is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
                n += 1
                where = where_it_landed(run)
                landed[where] = landed.get(where, 0) + 1
                log(f"kill {n:3d} ({mode:6s}) after {time.monotonic() - t0:5.2f} s: {where}")
                continue
            err = p.stderr.read()
            if rc != 0:
                raise RuntimeError(f"a resumed run failed (exit {rc}): {err.strip()[-2000:]}")
            break
        d = differences(ref, run)
        rounds.append(run.name)
        diffs += [f"{run.name}: {x}" for x in d]
        log(f"{run.name} finished: {'identical to the reference' if not d else '; '.join(d)}")
        if n >= kills:
            break
    return {"kills": n, "rounds": len(rounds), "starts": attempts, "reference_s": round(t_ref, 2), "landed": landed,
            "differences": diffs}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one, removed)")
    args = ap.parse_args()
    if args.kills < 1:
        ap.error("--kills must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = inject(args.kills, args.seed, work)
    print(json.dumps(report, indent=1))
    ok = not report["differences"]
    print(f"{report['kills']} kills in {report['rounds']} run(s), {report['starts']} starts: "
          + ("every finished run identical to the uninterrupted one" if ok else "DIFFERENCES FOUND"))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
