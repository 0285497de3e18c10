"""Named scalars from the training step, averaged per interval and written to stats.jsonl and TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from facesketch import run_layout as layout


class StatsAccumulator:
    """Sums detached 0-dim tensors on their device (no host sync per step); ``pop()`` returns the means as floats."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def pop(self) -> dict[str, float]:
        if not self.count:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() for k in keys]).cpu().tolist()  # one sync
        out = {k: v / self.count for k, v in zip(keys, values)}
        self.sums, self.count = {}, 0
        return out

    def state_dict(self) -> dict:
        """The partial interval (sums and count), for a checkpoint written between two log lines."""
        return {"count": self.count, "sums": {k: v.detach().cpu().clone() for k, v in self.sums.items()}}

    def load_state_dict(self, sd: dict, device="cpu") -> None:
        self.count = int(sd.get("count", 0))
        self.sums = {k: v.to(device) for k, v in sd.get("sums", {}).items()}


class StatsWriter:
    """Appends one JSON object per log interval to ``stats.jsonl`` (and mirrors it to TensorBoard under ``tb/``).

    On resume, entries newer than the checkpoint's step (from the interrupted run), the stop's partial interval
    line and any torn line are dropped first, so the file describes exactly the training that the checkpoint
    continues and the resumed run's lines match an uninterrupted run's.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / layout.STATS
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            kept = [ln for ln in self.path.read_bytes().decode('utf-8', errors='replace').splitlines()
                    if (rec := layout.parse_stats_line(ln)) is not None and rec.get("step", 0) <= resume_step and not rec.get("partial")]  # fmt: skip
            from facesketch.atomic import atomic_write_text

            atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / layout.TENSORBOARD))
            except ImportError:
                self.tb = None

    def write(self, step: int, epoch: float, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        rec = {"step": step, "epoch": round(epoch, 4), "time": round(time.time(), 3), **{k: float(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
