"""Checkpoints: full training state (atomic, resumable) and a light generator export (safetensors + config).

Neither kind ever executes code when loaded: training states are read with ``torch.load(weights_only=True)``
(tensors, numbers, strings, lists and dicts only) and exports are safetensors.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from facesketch.atomic import atomic_output
from facesketch.errors import UserError

CKPT_RE = re.compile(r"^step_(\d{8})\.pt$")
FORMAT = "facesketch-train-state/1"
EXPORT_FORMAT = "facesketch-generator/1"


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save into a temporary file in the same directory, fsync, then os.replace (never a half-written file)."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m[1]), p) for p in d.iterdir() if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def load_train_state(path: Path) -> dict:
    """Load a training-state checkpoint (weights_only: no code runs). UserError if it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a facesketch training checkpoint")
    return state


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; an unreadable newer one is reported and skipped (older ones are kept for this)."""
    import sys

    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_train_state(path)
        except UserError as e:
            print(f"warning: skipping unreadable checkpoint: {e}", file=sys.stderr)
    return None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for p in list_checkpoints(run_dir)[:-keep]:
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------
# light export


def export_generators(path: Path, generators: dict[str, torch.nn.Module], meta: dict, *, half: bool = False) -> Path:
    """Write ``{'G_A': module, 'G_B': module}`` into one safetensors file with the model config in its metadata.

    ``meta`` must hold what inference needs: model architecture fields and the image sizes.
    """
    from safetensors.torch import save_file

    tensors = {}
    for name, g in generators.items():
        for k, v in g.state_dict().items():
            v = v.detach().cpu()
            tensors[f"{name}.{k}"] = (v.half() if half and v.is_floating_point() else v).contiguous()
    path = Path(path)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": EXPORT_FORMAT, "config": json.dumps(meta)})
    return path


def read_export(path: Path) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """(meta, {'G_A': state_dict, 'G_B': state_dict}) from an export file (safetensors: no code execution)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            if md.get("format") != EXPORT_FORMAT:
                raise UserError(f"{path}: not a facesketch generator export (no '{EXPORT_FORMAT}' metadata)")
            meta = json.loads(md["config"])
            sds: dict[str, dict] = {}
            for k in f.keys():
                net, _, rest = k.partition(".")
                t = f.get_tensor(k)
                sds.setdefault(net, {})[rest] = t.float() if t.is_floating_point() else t
    except SafetensorError as e:
        raise UserError(f"{path}: not a safetensors file ({e})") from None
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise UserError(f"{path}: unreadable export ({type(e).__name__}: {e})") from None
    return meta, sds
