"""Run infrastructure beside the loop: the run directory's checks, its log, the environment record, stop signals,
and where a run reports (stats lines, log, progress bar)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import torch

from facesketch import run_layout as layout
from facesketch.errors import UserError
from facesketch.logs import stdout
from facesketch.training import checkpoint as ck
from facesketch.training.state import TrainState
from facesketch.training.stats import StatsWriter

log = logging.getLogger(__name__)


def prepare_run_dir(run_dir: Path, resume: bool, *, write: bool = True) -> None:
    """Check ``run_dir`` before anything slow happens: a folder we can write, holding a run exactly when resuming.

    With ``write`` (the main process): creates it, proves it writable, removes the temporary files of writes a
    crash interrupted, and moves the stats of an earlier run that never wrote a checkpoint aside (stats.prev.jsonl),
    so a new run never appends to another run's statistics.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir}: is a file, not a folder; choose another --out")
    has_ckpt = bool(ck.list_checkpoints(run_dir))
    if resume and not has_ckpt:
        raise UserError(f"--resume: no checkpoint in {run_dir / 'checkpoints'} (start a new run without --resume)")
    if not resume and has_ckpt:
        raise UserError(f"--out {run_dir} already holds a training run: pass --resume to continue it, or choose another --out")
    if not write:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)  # checkpoints/ comes with the first checkpoint
        probe = run_dir / f".write-test-{os.getpid()}.tmp"
        try:
            probe.write_bytes(b"facesketch")
        finally:  # a full disk can leave the file behind, empty
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise UserError(f"--out {run_dir}: cannot write there ({e.strerror or e}); choose a writable --out") from None
    left = ck.remove_leftovers(run_dir)
    if left:
        stdout().info(f"removed {len(left)} temporary file(s) left by interrupted writes in {run_dir}")
    stats = run_dir / layout.STATS
    if not resume and stats.exists():
        os.replace(stats, run_dir / layout.STATS_PREVIOUS)
        stdout().info(f"note: {stats} of an earlier run without a checkpoint moved to stats.prev.jsonl")


class RunLog:
    """``log.txt`` beside ``stats.jsonl``: what the run printed, one timestamped line each (appended on resume)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.path = run_dir / layout.LOG if enabled else None

    def __call__(self, msg: str, *, echo: bool = True, err: bool = False) -> None:
        if echo:
            (log.warning if err else stdout().info)(msg)
        if self.path is not None:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {msg.strip()}\n")
            except OSError:
                pass  # the log is a convenience; checkpoints and stats report their own write errors


def environment(device: torch.device, amp) -> dict:
    """What produced a run: versions, machine, device, precision, the code's git revision and the command line."""
    import platform
    import subprocess

    from facesketch import __version__

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)  # fmt: skip
        git = rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "facesketch": __version__, "git": git, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "amp": str(amp).replace("torch.", "") if amp is not None else "fp32", "argv": sys.argv,
    }  # fmt: skip


class StopSignals:
    """SIGINT/SIGTERM ask the loop to stop after the current step (it then checkpoints); a second one stops at once."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # the second one: give up waiting for the step
            raise KeyboardInterrupt
        self.signum = signum
        log.warning(f"signal {signum}: stopping after this step (checkpoint first); send it again to stop at once")

    def __exit__(self, *exc):
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


class RunOutputs:
    """Where a run reports: stats.jsonl lines (means since the last line), log.txt, the progress bar."""

    def __init__(self, writer: StatsWriter, say: RunLog, bar, samples_per_epoch: int, world: int):
        self.writer, self.say, self.bar = writer, say, bar
        self.samples_per_epoch, self.world = samples_per_epoch, world
        self.t_log = time.time()

    def _epoch(self, ts: TrainState) -> float:
        return ts.epoch + ts.done_in_epoch / self.samples_per_epoch

    def log_line(self, ts: TrainState, partial: bool = False) -> None:
        """One stats.jsonl line: the means since the last one. ``partial``: the stop's unfinished interval (a resume
        drops it and completes the interval from the checkpoint, so its lines match an uninterrupted run's)."""
        values = ts.acc.pop()
        now = time.time()
        values["lr"] = ts.opt_G.param_groups[0]["lr"]
        values["images_per_s"] = ts.n_log * self.world / max(now - self.t_log, 1e-9)
        if partial:
            values["partial"] = 1.0
        self.t_log, ts.n_log = now, 0
        self.writer.write(ts.step, self._epoch(ts), values)
        self.say(f"step {ts.step}  epoch {self._epoch(ts):.3f}  " + "  ".join(f"{k} {v:.4g}" for k, v in values.items()),
                 echo=False)  # fmt: skip
        self.bar.set_postfix(G=f"{values['G_total']:.3f}", D=f"{values['D_A'] + values['D_B']:.3f}", refresh=False)

    def log_evaluation(self, ts: TrainState, metrics: dict) -> None:
        """``metrics``: {'lpips': ..., ...}, keys with a '/' (e.g. 'raw/lpips') logged as 'eval_raw/lpips'."""
        self.writer.write(ts.step, float(ts.epoch), {(f"eval_{k}" if "/" in k else f"eval/{k}"): v for k, v in metrics.items()})
        self.say(f"epoch {ts.epoch} evaluation: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()), echo=False)
