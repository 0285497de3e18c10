"""The machine: which torch device a run or a translation uses, and whether the CPU has AMX tiles (fast bf16)."""

from __future__ import annotations

import torch

from facesketch.errors import UserError


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available, else cpu; 'cuda' without a GPU is a UserError."""
    if pref == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {pref}: CUDA is not available on this machine (use cpu)", arg="device")
        return torch.device(f"cuda:{local_rank}") if pref == "cuda" else torch.device(pref)
    if pref == "cpu":
        return torch.device("cpu")
    raise UserError(f"device {pref!r}: use auto, cpu, cuda or cuda:N", arg="device")


def cpu_has_amx() -> bool:
    """True on CPUs with AMX tiles and oneDNN bf16 support (Intel Sapphire Rapids and later)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and bool(torch.cpu._init_amx())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype of ``train.amp`` ('auto', 'bf16', 'fp16', 'off') on ``device``; None = fp32."""
    if setting == "off":
        return None
    if setting == "fp16":
        return torch.float16
    if setting == "bf16":
        return torch.bfloat16
    # auto: bf16 on GPUs that support it, and on CPUs with AMX tiles (oneDNN runs bf16 convolutions ~3x faster
    # there, see docs/benchmarks.md); fp32 elsewhere, where CPU bf16 is emulated and slower than fp32
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and cpu_has_amx():
        return torch.bfloat16
    return None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it), at least 1."""
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
