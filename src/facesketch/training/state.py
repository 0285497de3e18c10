"""``TrainState``: everything a checkpoint holds, with its save and its restore side by side (one format, one place)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facesketch.errors import UserError
from facesketch.losses.gan import ImagePool
from facesketch.training import checkpoint as ck
from facesketch.training.distributed import DistInfo, gather_to_main
from facesketch.training.stats import StatsAccumulator
from facesketch.training.step import CycleDiscriminators, CycleGenerators


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available() and len(s["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(s["cuda"])
    n = s["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))


@dataclass
class TrainState:
    """The networks, optimisers, schedules, image pools, the unfinished stats interval and the position in the
    schedule: what a checkpoint holds. ``to_checkpoint`` / ``restore`` are the format's only writer and reader."""

    G: CycleGenerators
    D: CycleDiscriminators
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    sched_G: torch.optim.lr_scheduler.LRScheduler
    sched_D: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    pool_A: ImagePool
    pool_B: ImagePool
    acc: StatsAccumulator
    step: int = 0
    epoch: int = 0
    done_in_epoch: int = 0
    """Samples of the current epoch this rank has consumed (exact mid-epoch resume)."""
    n_log: int = 0
    """Images since the last stats line."""
    ema: CycleGenerators | None = None
    """Exponential moving average of G (``train.ema_decay``), or None: what samples, evaluation and the export use."""
    ema_decay: float = 0.0

    @property
    def G_eval(self) -> CycleGenerators:
        """The generators to sample, evaluate and export: the EMA when there is one."""
        return self.ema if self.ema is not None else self.G

    @torch.no_grad()
    def update_ema(self) -> None:
        """One EMA step after an optimiser step (warm-up: min(decay, (1 + step) / (10 + step)))."""
        if self.ema is None:
            return
        d = min(self.ema_decay, (1.0 + self.step) / (10.0 + self.step))
        for e, p in zip(self.ema.parameters(), self.G.parameters()):
            e.lerp_(p.detach(), 1.0 - d)

    def to_checkpoint(self, cfg, dist: DistInfo) -> dict | None:
        """The checkpoint dict (rank 0; None on the others, which only contribute their pools and RNG)."""
        per_rank = gather_to_main(dist, {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict(), "rng": rng_state()})
        if not dist.is_main:
            return None
        return {
            "format": ck.FORMAT, "step": self.step, "epoch": self.epoch, "samples_in_epoch": self.done_in_epoch,
            "nets": {"G_A": self.G.G_A.state_dict(), "G_B": self.G.G_B.state_dict(),
                     "D_A": self.D.D_A.state_dict(), "D_B": self.D.D_B.state_dict()},
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "per_rank": per_rank, "config": cfg.to_dict(), "world": dist.world,
            "stats_acc": dict(self.acc.state_dict(), images=self.n_log),
            **({"ema": {"G_A": self.ema.G_A.state_dict(), "G_B": self.ema.G_B.state_dict()}} if self.ema is not None else {}),
        }  # fmt: skip

    def save(self, cfg, dist: DistInfo, run_dir: Path, keep: int) -> Path | None:
        """Write a verified checkpoint of this state and prune older ones (rank 0); UserError when it cannot be written."""
        st = self.to_checkpoint(cfg, dist)
        if st is None:
            return None
        path = ck.checkpoint_path(run_dir, self.step)
        try:
            ck.save_train_state(st, path)
            ck.prune_checkpoints(run_dir, keep, known_good=path)
        except (OSError, RuntimeError) as e:  # torch's zip writer turns an OSError mid-file into a RuntimeError
            cause = e if isinstance(e, OSError) else (e.__cause__ or e.__context__ or e)
            why = getattr(cause, "strerror", None) or str(cause).strip().splitlines()[0][:200]
            last = ck.list_checkpoints(run_dir)
            raise UserError(f"step {self.step}: cannot write the checkpoint {path} ({why}); training stopped"
                            + (f"; the newest earlier checkpoint is {last[-1]}" if last else "")) from None  # fmt: skip
        return path

    def restore(self, state: dict, cfg, dist: DistInfo, device: torch.device, say) -> None:
        """Load a checkpoint dict written by ``to_checkpoint`` into this (freshly built) state."""
        try:
            self.G.G_A.load_state_dict(state["nets"]["G_A"]), self.G.G_B.load_state_dict(state["nets"]["G_B"])
            self.D.D_A.load_state_dict(state["nets"]["D_A"]), self.D.D_B.load_state_dict(state["nets"]["D_B"])
        except RuntimeError as e:
            was = state.get("config", {}).get("model", {})
            changed = [f"model.{k}={getattr(cfg.model, k)!r} (checkpoint: {was[k]!r})" for k in was
                       if hasattr(cfg.model, k) and was[k] != getattr(cfg.model, k)]  # fmt: skip
            what = ", ".join(changed) or str(e).strip().splitlines()[0][:200]
            raise UserError(f"--resume: the checkpoint's networks do not match the configuration ({what}); "
                            "architecture settings cannot change when resuming") from None  # fmt: skip
        if self.ema is not None:
            if state.get("ema"):
                self.ema.G_A.load_state_dict(state["ema"]["G_A"]), self.ema.G_B.load_state_dict(state["ema"]["G_B"])
            else:
                self.ema.load_state_dict(self.G.state_dict())
                say("note: the checkpoint has no EMA of the generators (train.ema_decay was 0): the average starts now")
        self.opt_G.load_state_dict(state["opt_G"]), self.opt_D.load_state_dict(state["opt_D"])
        self.sched_G.load_state_dict(state["sched_G"]), self.sched_D.load_state_dict(state["sched_D"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.done_in_epoch = int(state["step"]), int(state["epoch"]), int(state["samples_in_epoch"])
        per_rank = state["per_rank"]
        if len(per_rank) == dist.world:
            mine = per_rank[dist.rank]
            self.pool_A.load_state_dict(mine["pool_A"], device), self.pool_B.load_state_dict(mine["pool_B"], device)
            set_rng_state(mine["rng"])
        elif dist.is_main:
            say(f"note: checkpoint was written by {len(per_rank)} process(es), now {dist.world}: image pools restart empty")
        if state.get("stats_acc"):
            # a checkpoint between two log lines carries the partial interval: the next line averages the whole of it
            self.acc.load_state_dict(state["stats_acc"], device)
            self.n_log = int(state["stats_acc"].get("images", 0))


def export_from_checkpoint(state: dict) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """What the export of a checkpoint's run would hold: (meta, {'G_A': state_dict, 'G_B': state_dict}), the EMA
    weights when the run kept an average (as the export it writes at the end). The format's reader, like ``restore``."""
    from facesketch.config import load_config
    from facesketch.models.export_file import model_meta

    cfg = load_config(base=state["config"])
    nets = state.get("ema") or state["nets"]
    return model_meta(cfg), {"G_A": nets["G_A"], "G_B": nets["G_B"]}
