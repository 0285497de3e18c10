"""The light generator export: both generators' weights in one safetensors file with the model config in its metadata.

What a trained model is outside training: ``translate``, ``serve``, ``evaluate``, ``export``, the Python API and the
default model read it (never code: safetensors). ``model_meta`` is what it carries, ``build_from_meta`` rebuilds a
generator from it, ``model_size`` is the size the model translates at.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from facesketch.atomic import atomic_write_bytes
from facesketch.errors import UserError
from facesketch.models.generators import build_generator_from

EXPORT_FORMAT = "facesketch-generator/1"


def model_meta(cfg) -> dict:
    """What an export must carry so that inference needs no flags (from a training Config)."""
    return {
        "generator": cfg.model.generator, "ngf": cfg.model.ngf, "n_blocks": cfg.model.n_blocks,
        "n_masks": cfg.model.n_masks, "crop_size": cfg.data.crop_size, "load_size": cfg.data.load_size,
        "preprocess": cfg.data.preprocess, "name": cfg.name, "image_size": cfg.image_size,
        "model": dataclasses.asdict(cfg.model),  # the model config as a whole: inference rebuilds from it
    }  # fmt: skip


def build_from_meta(meta: dict, role: str = "G_A") -> torch.nn.Module:
    """The generator ``role`` ('G_A' photo -> sketch, 'G_B' sketch -> photo) an export describes: from its whole
    model config, or (older exports) from the flat keys."""
    if isinstance(meta.get("model"), dict):
        return build_generator_from(meta["model"], role)
    return build_generator_from({k: meta[k] for k in ("generator", "ngf", "n_blocks", "n_masks") if k in meta}, role)


def model_size(meta: dict) -> int:
    """The square size (px) the exported model translates at (exports before ``model.image_size`` existed: their crop)."""
    return int(meta.get("image_size") or meta["crop_size"])



def export_generators(path: Path, generators: dict[str, torch.nn.Module], meta: dict, *, half: bool = False) -> Path:
    """Write ``{'G_A': module, 'G_B': module}`` into one safetensors file with the model config in its metadata.

    ``meta`` must hold what inference needs: model architecture fields and the image sizes.
    """
    from facesketch.tensorfile import safetensors_bytes

    tensors = {}
    for name, g in generators.items():
        for k, v in g.state_dict().items():
            v = v.detach().cpu()
            tensors[f"{name}.{k}"] = (v.half() if half and v.is_floating_point() else v).contiguous()
    path = Path(path)
    data = safetensors_bytes(tensors, {"format": EXPORT_FORMAT, "config": json.dumps(meta)})  # the same bytes every time
    atomic_write_bytes(path, data)
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
