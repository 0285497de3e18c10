"""Finding a model: the default model, an export file, or a run directory (its export, else its latest checkpoint)."""

from __future__ import annotations

from pathlib import Path

import torch

from facesketch import run_layout as layout
from facesketch.errors import UserError
from facesketch.inference import Translator


def load_translator(model: str | Path | None = "default", direction: str = "AtoB", device: str | torch.device = "cpu", *,
                    announce: bool = False, precision: str = "fp32") -> Translator:  # fmt: skip
    """A ``Translator`` for ``model``: 'default' (or None / ''; the model shipped in the package), an export file, or a
    run directory, whose export is used or, when the run has none yet (still training, or stopped before its end),
    its newest checkpoint's weights through the checkpoint's one reader (``training.state.export_from_checkpoint``).
    ``precision``: 'fp32' (default here), 'bf16' or 'auto' (``inference.precision_dtype``)."""
    from facesketch.default_model import resolve_model

    path = Path(resolve_model(str(model) if model else "default", announce=announce))
    if path.is_dir():
        export = layout.export_file(path)
        if export.is_file():
            return Translator.from_export(export, direction, device, precision)
        from facesketch.training.checkpoint import latest_checkpoint
        from facesketch.training.state import export_from_checkpoint

        found = latest_checkpoint(path)
        if found is None:
            runs = sorted(p for p in path.iterdir() if p.is_dir() and layout.is_run_dir(p))
            hint = f"; did you mean {runs[0]}?" if runs else ""
            raise UserError(f"model {path}: a directory without export/model.safetensors or checkpoints/{hint}", arg="model")
        meta, sds = export_from_checkpoint(found[1])
        return Translator.from_weights(meta, sds, direction, device, source=str(found[0]), precision=precision)
    if not path.is_file():
        raise UserError(f"model {path}: no such file or run directory", arg="model")
    return Translator.from_export(path, direction, device, precision)
