"""Process-group set-up for `torchrun` (NCCL on CUDA, gloo on CPU) and device selection; a no-op for one process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from facesketch.errors import UserError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available, else cpu; 'cuda' without a GPU is a UserError."""
    if pref == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {pref}: CUDA is not available on this machine (use --device cpu)")
        return torch.device(f"cuda:{local_rank}") if pref == "cuda" else torch.device(pref)
    if pref == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device {pref}: use auto, cpu, cuda or cuda:N")


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=pick_device(device_pref))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_pref, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_to_main(info: DistInfo, obj) -> list | None:
    """Every rank's ``obj`` as a list on rank 0 (None elsewhere); ``[obj]`` for one process."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
