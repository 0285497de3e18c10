"""Checkpoints: the full training state, written atomically and verified, resumable (the export is ``models/export_file.py``).

Neither kind ever executes code when loaded: training states are read with ``torch.load(weights_only=True)``
(tensors, numbers, strings, lists and dicts only) and exports are safetensors.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from facesketch import run_layout as layout
from facesketch.atomic import atomic_output
from facesketch.errors import UserError
from facesketch.tensorfile import read_weights_only

CKPT_RE = re.compile(r"^step_(\d{8})\.pt$")
FORMAT = "facesketch-train-state/1"

log = logging.getLogger(__name__)


def state_digest(obj) -> str:
    """sha256 over a training state's content: every tensor's dtype, shape and bytes, every other leaf's repr, in key order."""
    import hashlib

    h = hashlib.sha256()

    def walk(x, key: str) -> None:
        if isinstance(x, dict):
            for k in sorted(x, key=str):
                if key == "" and k == "checksum":
                    continue
                walk(x[k], f"{key}/{k}")
        elif isinstance(x, (list, tuple)):
            h.update(f"{key}:{type(x).__name__}{len(x)};".encode())
            for i, v in enumerate(x):
                walk(v, f"{key}[{i}]")
        elif isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"{key}:{t.dtype}{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(f"{key}={x!r};".encode())

    walk(obj, "")
    return h.hexdigest()


def _non_finite(state: dict) -> str | None:
    """The first network/optimiser tensor holding NaN or inf, as 'nets/G_A/model.1.weight', or None."""
    for part in ("nets", "opt_G", "opt_D"):
        stack = [(part, state.get(part))]
        while stack:
            key, x = stack.pop()
            if isinstance(x, dict):
                stack += [(f"{key}/{k}", v) for k, v in x.items()]
            elif isinstance(x, (list, tuple)):
                stack += [(f"{key}[{i}]", v) for i, v in enumerate(x)]
            elif isinstance(x, torch.Tensor) and x.is_floating_point() and not torch.isfinite(x).all():
                return key
    return None


def _check_state(state, path: Path) -> dict:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a facesketch training checkpoint")
    want = state.get("checksum")  # checkpoints written before checksums existed have none
    if want is not None and state_digest(state) != want:
        raise UserError(f"{path}: damaged checkpoint (content checksum mismatch)")
    bad = _non_finite(state)
    if bad is not None:
        raise UserError(f"{path}: damaged checkpoint (non-finite values in {bad})")
    return state


def atomic_torch_save(obj, path: Path, *, verify=None) -> None:
    """torch.save into a temporary file in the same directory, fsync, then os.replace (never a half-written file).

    ``verify(tmp_path)``, if given, runs on the written temporary file before it replaces ``path``.
    """
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)


def save_train_state(state: dict, path: Path) -> Path:
    """Write a training state with its content checksum, read it back and verify it before it takes ``path``."""
    state = dict(state, checksum=state_digest(state))
    bad = _non_finite(state)
    if bad is not None:
        raise UserError(f"{path}: refusing to write a checkpoint with non-finite values in {bad}")

    def verify(tmp: Path) -> None:
        back = read_weights_only(tmp, "the checkpoint just written")
        if state_digest(back) != state["checksum"]:
            raise UserError(f"{path}: the checkpoint read back differs from what was written (disk or memory fault)")

    atomic_torch_save(state, path, verify=verify)
    return Path(path)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return layout.checkpoint_file(run_dir, step)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    d = Path(run_dir) / layout.CHECKPOINTS
    if not d.is_dir():
        return []
    found = [(int(m[1]), p) for p in d.iterdir() if (m := CKPT_RE.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def load_train_state(path: Path) -> dict:
    """Load a training-state checkpoint (weights_only: no code runs) and verify it (checksum, finite tensors).

    UserError, in one line naming the file, if it is not a readable, intact facesketch checkpoint.
    """
    return _check_state(read_weights_only(path, "a facesketch checkpoint (cannot read checkpoint)"), path)


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; an unreadable newer one is reported and skipped (older ones are kept for this)."""

    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_train_state(path)
        except UserError as e:
            log.warning(f"warning: skipping unreadable checkpoint: {e}")
    return None


def is_readable(path: Path) -> bool:
    try:
        load_train_state(path)
        return True
    except UserError:
        return False


def prune_checkpoints(run_dir: Path, keep: int, *, known_good: Path | None = None) -> list[Path]:
    """Delete readable checkpoints older than the ``keep`` newest readable ones; returns what was deleted.

    Only a checkpoint that loads counts as kept, and only one that loads and is older than a newer readable
    one is ever deleted: unreadable files (garbage, a damaged copy) are left for a person to look at.
    ``known_good`` (the checkpoint just written and verified) is not read again.
    """
    kept, deleted = 0, []
    for p in reversed(list_checkpoints(run_dir)):
        good = (known_good is not None and p == Path(known_good)) or is_readable(p)
        if not good:
            continue
        if kept < keep:
            kept += 1
        else:
            p.unlink(missing_ok=True)
            deleted.append(p)
    return deleted


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Temporary files of writes that a crash interrupted (``.NAME.XXXX.tmp`` beside checkpoints, exports, stats)."""
    run_dir = Path(run_dir)
    found = []
    for d in (run_dir, run_dir / layout.CHECKPOINTS, run_dir / layout.EXPORT_DIR, run_dir / layout.SAMPLES):
        if d.is_dir():
            found += [p for p in d.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file()]
    for p in found:
        p.unlink(missing_ok=True)
    return found
