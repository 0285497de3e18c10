"""Inference: a trained generator, loaded from an export file or a run directory, ready to translate uint8 images.

``Translator`` is the library object every user of a model goes through (``translate``, ``serve``, ``evaluate``,
``export``, the demo, the in-training evaluator); ``model_meta`` is what an export carries so that inference needs
no flags, and ``build_from_meta`` rebuilds the generator from it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facesketch import run_layout as layout
from facesketch.data.transforms import from_model_range, to_model_range
from facesketch.errors import UserError
from facesketch.models.generators import GeneratorOutput, build_generator_from

DIRECTIONS = ("AtoB", "BtoA")


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


class Translator:
    """A generator ready for inference. Images in and out are (H, W, 3) uint8 RGB.

    Inputs are resized to ``size`` x ``size`` with bicubic (CycleGAN's test-time preprocessing, aspect not
    kept); outputs come at the model size, or at each input's size with ``output_size='input'``.
    """

    def __init__(self, generator: torch.nn.Module, meta: dict, *, direction: str = "AtoB", device: str | torch.device = "cpu"):
        if direction not in DIRECTIONS:
            raise UserError(f"--direction {direction}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)")
        self.device = torch.device(device)
        self.G = generator.to(self.device).eval()
        self.meta, self.direction = meta, direction
        # the model's own inference size (exports before model.image_size existed translate at their crop size)
        self.size = int(meta.get("image_size") or meta["crop_size"])

    @classmethod
    def from_path(cls, path: str | Path, direction: str = "AtoB", device: str | torch.device = "cpu") -> "Translator":
        """From an export (``.safetensors``) or a run directory (its export, else its latest checkpoint)."""
        from facesketch.training.checkpoint import latest_checkpoint, read_export

        if direction not in DIRECTIONS:
            raise UserError(f"--direction {direction}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)")
        path = Path(path)
        name = "G_A" if direction == "AtoB" else "G_B"
        if path.is_dir():
            export = layout.export_file(path)
            if export.is_file():
                path = export
            else:
                found = latest_checkpoint(path)
                if found is None:
                    runs = sorted(p for p in path.iterdir() if p.is_dir() and layout.is_run_dir(p))
                    hint = f"; did you mean --model {runs[0]}?" if runs else ""
                    raise UserError(f"--model {path}: a directory without export/model.safetensors or checkpoints/{hint}")
                ckpt_path, state = found
                from facesketch.config import load_config

                cfg = load_config(base=state["config"])
                meta = model_meta(cfg)
                g = build_from_meta(meta, name)
                g.load_state_dict(state["nets"][name])
                return cls(g, meta, direction=direction, device=device)
        if not path.is_file():
            raise UserError(f"--model {path}: no such file or run directory")
        meta, sds = read_export(path)
        if name not in sds:
            raise UserError(f"--model {path}: the export has no {name} ({direction}); it holds {', '.join(sds)}")
        g = build_from_meta(meta, name)
        try:
            g.load_state_dict(sds[name])
        except RuntimeError as e:
            raise UserError(f"--model {path}: weights do not match the stored config ({str(e).splitlines()[0]})") from None
        return cls(g, meta, direction=direction, device=device)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> GeneratorOutput:
        """x: RGB in [-1, 1] (B, 3, S, S) -> the generator's output structure (on the translator's device)."""
        return self.G(x.to(self.device))

    def _prepare(self, img: np.ndarray) -> torch.Tensor:
        im = Image.fromarray(img)
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy())

    def translate_arrays(self, images: list[np.ndarray], *, batch_size: int = 8, output_size: str = "model",
                         return_attention: bool = False):  # fmt: skip
        """uint8 RGB images (any size) -> translated uint8 RGB images; with ``return_attention`` also (K+1, S, S) masks."""
        outs, masks = [], []
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            x = to_model_range(torch.stack([self._prepare(im) for im in chunk]))
            o = self.forward(x)
            ys = from_model_range(o.image).cpu().numpy()
            for j, y in enumerate(ys):
                if output_size == "input" and chunk[j].shape[:2] != y.shape[:2]:
                    h, w = chunk[j].shape[:2]
                    y = np.asarray(Image.fromarray(y).resize((w, h), Image.BICUBIC))
                outs.append(y)
                if return_attention:
                    masks.append(None if o.attention is None else o.attention[j].float().cpu().numpy())
        return (outs, masks) if return_attention else outs
