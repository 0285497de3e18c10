"""ONNX export of one generator and a parity check against PyTorch with onnxruntime.

The ONNX graph takes ``image``: float32 (N, 3, S, S), RGB in [-1, 1] (N dynamic), and returns ``translated``:
float32 (N, 3, S, S) RGB in [-1, 1] and, for attention generators, ``attention``: float32 (N, K+1, S, S)
softmax masks in [0, 1] (K foreground masks, then the background mask). ONNX gives every value one name, so
the output cannot also be called ``image``. The facesketch model config travels in the model's metadata
(``facesketch_config``, JSON) together with ``direction`` and ``input_range``.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facesketch.atomic import atomic_output
from facesketch.errors import UserError

INPUT_NAME = "image"
OUTPUT_NAMES = ("translated", "attention")
# the TorchScript-based exporter, which needs no extra packages, goes up to opset 20; Pad(reflect) needs >= 11
OPSET_RANGE = (11, 20)


class _Outputs(nn.Module):
    """The generator with its NamedTuple output flattened to the tensors ONNX returns."""

    def __init__(self, generator: nn.Module, with_attention: bool):
        super().__init__()
        self.generator, self.with_attention = generator, with_attention

    def forward(self, image: torch.Tensor):
        out = self.generator(image)
        return (out.image, out.attention) if self.with_attention else out.image


def _cpu_eval_copy(generator: nn.Module) -> nn.Module:
    """The generator on the CPU in eval mode, copied so the caller's module keeps its device and mode."""
    return copy.deepcopy(generator).cpu().eval()


def has_attention(generator: nn.Module, size: int) -> bool:
    """Whether the generator returns attention masks (probed on a tiny input: cheap and architecture-agnostic)."""
    with torch.no_grad():
        return generator(torch.zeros(1, 3, size, size)).attention is not None


def export_onnx(generator: nn.Module, path: str | Path, *, size: int, opset: int = 17, metadata: dict | None = None) -> Path:
    """Write ``generator`` (CPU, eval mode) as an ONNX model for S x S inputs with a dynamic batch; atomic write.

    ``metadata``: extra string key/values stored in the model (e.g. ``facesketch_config``, ``direction``).
    """
    import onnx

    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        raise UserError(f"--opset {opset}: use {OPSET_RANGE[0]} to {OPSET_RANGE[1]} (17 is a good default)")
    if size < 4 or size % 4:
        raise UserError(f"--size {size}: the generators need a multiple of 4 (e.g. 256)")
    g = _cpu_eval_copy(generator)
    with_attention = has_attention(g, 8)
    names = list(OUTPUT_NAMES[: 2 if with_attention else 1])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript exporter narrates harmless details (instance norm in "train" mode is exactly what
            # running-stat-free InstanceNorm computes; slices it cannot constant-fold)
            warnings.simplefilter("ignore")
            torch.onnx.export(_Outputs(g, with_attention), (torch.zeros(1, 3, size, size),), tmp, dynamo=False,
                              input_names=[INPUT_NAME], output_names=names, opset_version=opset,
                              dynamic_axes={n: {0: "batch"} for n in [INPUT_NAME, *names]})  # fmt: skip
        model = onnx.load(tmp)
        meta = {"input_range": "RGB in [-1, 1], (N, 3, S, S) float32", "producer": "facesketch", **(metadata or {})}
        for k, v in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
        onnx.checker.check_model(model)
        onnx.save(model, tmp)
    return path


def onnx_parity(path: str | Path, generator: nn.Module, *, size: int, batch: int = 2, seed: int = 0) -> dict[str, float]:
    """Max |onnxruntime - PyTorch| per output on a random (batch, 3, S, S) input in [-1, 1] (CPU, float32)."""
    import onnxruntime as ort

    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(4, os.cpu_count() or 1)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: x.numpy()})
    with torch.no_grad():
        ref = _cpu_eval_copy(generator)(x)
    refs = {"translated": ref.image, "attention": ref.attention}
    return {o.name: float(np.abs(g - refs[o.name].numpy()).max()) for o, g in zip(sess.get_outputs(), got)}
