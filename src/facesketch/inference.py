"""Inference: a trained generator, built from an export, ready to translate uint8 images.

``Translator`` is the library object every user of a model goes through (``translate``, ``serve``, ``evaluate``,
``export``, the demo, the Python API, the in-training evaluator). It reads exports only
(``models/export_file.py``); ``translate.load_translator`` finds one for a model name, a file or a run directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facesketch.data.transforms import from_model_range, to_model_range
from facesketch.errors import UserError
from facesketch.models.export_file import build_from_meta, model_size, read_export
from facesketch.models.generators import GeneratorOutput

DIRECTIONS = ("AtoB", "BtoA")
MIN_SIZE, MAX_SIZE = 64, 2048  # translation sizes: multiples of 4 (two stride-2 stages) in this range


PRECISIONS = ("auto", "fp32", "bf16")


def precision_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Inference precision -> the autocast dtype (None: fp32). 'auto': bf16 where it is fast (CPUs with AMX tiles,
    GPUs with bf16), else fp32; measured within 0.002 of fp32 on each FS2K metric (docs/benchmarks.md)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}", arg="precision")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    from facesketch.device import amp_dtype

    return amp_dtype("auto", torch.device(device))


def check_size(size: int, arg: str = "size") -> int:
    """A translation size: an integer multiple of 4 from MIN_SIZE to MAX_SIZE, else a UserError naming ``arg``."""
    if isinstance(size, bool) or not isinstance(size, int) or not (MIN_SIZE <= size <= MAX_SIZE) or size % 4:
        raise UserError(f"{arg} {size!r}: use a multiple of 4 from {MIN_SIZE} to {MAX_SIZE} (px, square)", arg=arg)
    return size


class Translator:
    """A generator ready for inference. Images in and out are (H, W, 3) uint8 RGB.

    Inputs are resized to ``size`` x ``size`` with bicubic (CycleGAN's test-time preprocessing, aspect not
    kept); outputs come at the model size, or at each input's size with ``output_size='input'``.
    """

    def __init__(self, generator: torch.nn.Module, meta: dict, *, direction: str = "AtoB", device: str | torch.device = "cpu",
                 precision: str = "fp32"):  # fmt: skip
        if direction not in DIRECTIONS:
            raise UserError(f"direction {direction!r}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)", arg="direction")
        self.device = torch.device(device)
        self.precision = precision
        self.amp = precision_dtype(precision, self.device)
        self.G = generator.to(self.device).eval()
        self.meta, self.direction = meta, direction
        self.size = model_size(meta)  # the model's own inference size

    @classmethod
    def from_weights(cls, meta: dict, state_dicts: dict, direction: str = "AtoB", device: str | torch.device = "cpu",
                     *, source: str = "the export", precision: str = "fp32") -> "Translator":  # fmt: skip
        """From an export's content: ``meta`` (``model_meta``) and ``{'G_A': state_dict, 'G_B': state_dict}``."""
        if direction not in DIRECTIONS:
            raise UserError(f"direction {direction!r}: use AtoB (photo -> sketch) or BtoA (sketch -> photo)", arg="direction")
        name = "G_A" if direction == "AtoB" else "G_B"
        if name not in state_dicts:
            raise UserError(f"{source}: the export has no {name} ({direction}); it holds {', '.join(state_dicts)}")
        g = build_from_meta(meta, name)
        try:
            g.load_state_dict(state_dicts[name])
        except RuntimeError as e:
            raise UserError(f"{source}: weights do not match the stored config ({str(e).splitlines()[0]})") from None
        return cls(g, meta, direction=direction, device=device, precision=precision)

    @classmethod
    def from_export(cls, path: str | Path, direction: str = "AtoB", device: str | torch.device = "cpu",
                    precision: str = "fp32") -> "Translator":  # fmt: skip
        """From an export file (``.safetensors`` written by training, ``facesketch export`` or the default model)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such export file")
        meta, sds = read_export(path)
        return cls.from_weights(meta, sds, direction, device, source=str(path), precision=precision)

    def at_size(self, size: int | None) -> "Translator":
        """This translator working at ``size`` x ``size`` (the same network; None: the model's own size)."""
        if size is None or size == self.size:
            return self
        import copy

        other = copy.copy(self)
        other.size = check_size(size)
        return other

    @property
    def styles(self) -> int:
        """How many sketch styles this generator draws on request (0: one, unconditional)."""
        return int(getattr(self.G, "styles", 0) or 0)

    def check_style(self, style) -> None:
        """A UserError naming the ``style`` argument when this model cannot draw it."""
        if style is None:
            return
        if not self.styles:
            raise UserError(f"style {style!r}: this model has no styles (it was trained without model.styles)", arg="style")
        values = style if isinstance(style, (list, tuple)) else [style]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < self.styles:
                raise UserError(f"style {v!r}: this model draws styles 0..{self.styles - 1}", arg="style")

    @torch.no_grad()
    def forward(self, x: torch.Tensor, style=None) -> GeneratorOutput:
        """x: RGB in [-1, 1] (B, 3, S, S) -> the generator's output structure (on the translator's device). ``style``:
        an int or (B,) indices for a style-conditioned model (None: style 0); ignored otherwise."""
        x = x.to(self.device)
        import contextlib

        ctx = torch.autocast(self.device.type, dtype=self.amp) if self.amp is not None else contextlib.nullcontext()
        with ctx:
            if not self.styles:
                o = self.G(x)
            else:
                st = torch.as_tensor(0 if style is None else style, device=self.device).reshape(-1).long()
                o = self.G(x, st.expand(x.shape[0]) if st.numel() == 1 else st)
        if self.amp is None:
            return o
        return GeneratorOutput(o.image.float(), None if o.attention is None else o.attention.float(),
                               None if o.content is None else o.content.float())  # fmt: skip

    def _prepare(self, img: np.ndarray) -> torch.Tensor:
        im = Image.fromarray(img)
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy())

    def translate_arrays(self, images: list[np.ndarray], *, batch_size: int = 8, output_size: str = "model",
                         return_attention: bool = False, style=None):  # fmt: skip
        """uint8 RGB images (any size) -> translated uint8 RGB images; with ``return_attention`` also (K+1, S, S) masks.
        ``style``: for a style-conditioned model, one style for all, or one per image (default 0)."""
        self.check_style(style)
        per_image = list(style) if isinstance(style, (list, tuple)) else None
        if per_image is not None and len(per_image) != len(images):
            raise UserError(f"style: {len(per_image)} styles for {len(images)} images", arg="style")
        outs, masks = [], []
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            x = to_model_range(torch.stack([self._prepare(im) for im in chunk]))
            o = self.forward(x, per_image[i : i + batch_size] if per_image is not None else style)
            ys = from_model_range(o.image).cpu().numpy()
            for j, y in enumerate(ys):
                if output_size == "input" and chunk[j].shape[:2] != y.shape[:2]:
                    h, w = chunk[j].shape[:2]
                    y = np.asarray(Image.fromarray(y).resize((w, h), Image.BICUBIC))
                outs.append(y)
                if return_attention:
                    masks.append(None if o.attention is None else o.attention[j].float().cpu().numpy())
        return (outs, masks) if return_attention else outs
