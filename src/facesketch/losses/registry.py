"""The loss-term registry: every generator-loss term, core (adversarial, cycle, identity) and prior (edge, normal), with
its weight, declared once. The training step, the data pipeline, the freeze guard and the curves all read it.

To add a term, register a ``LossTerm`` (docs/overview.md, "How to add a loss term"); nothing else needs editing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from facesketch.errors import UserError


@dataclass
class CycleTensors:
    """Everything a generator-loss term may use. Images are RGB in [-1, 1], (B, 3, H, W).

    targets: the precomputed per-photo targets of the enabled terms by key (e.g. 'normals': (B, 3, H, W) unit
        normals), cropped and flipped like ``real_A``.
    context: the batch entries the enabled terms asked for (``LossTerm.context``): 'A_intrins' (B, 3, 3), the crop's
        camera in the one the target was computed with; 'A_full' (B, 3, L, L) uint8, the load-size photo mirrored
        like the crop, and 'A_window' (B, 4) [x0, y0, h, w], where the crop sits in it.
    """

    real_A: torch.Tensor
    real_B: torch.Tensor
    fake_B: torch.Tensor
    rec_A: torch.Tensor
    fake_A: torch.Tensor
    rec_B: torch.Tensor
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    context: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class PrecomputedTarget:
    """A per-photo target computed before training: one ``.npy`` per photo, (C, L, L) at the load size.

    folder: where the maps are (the photos' paths relative to the data root, as .npy).
    howto: the command that computes them, for the error when some are missing.
    estimator: what computed them; the folder's manifest.json must say the same (or say nothing: older DSINE maps).
    key: the batch serves the maps as ``A_<key>`` and the term reads ``CycleTensors.targets[key]``.
    negate_x_on_flip: a mirror flip also negates channel 0 (normal maps: x points right).
    """

    folder: Path
    howto: str
    estimator: str = "dsine"
    key: str = "normals"
    negate_x_on_flip: bool = False
    estimator_setting: str = ""
    """The config key that chose the estimator, named when the maps on disk came from another."""


CONTEXT_KEYS = ("A_intrins", "A_full", "A_window")
GROUPS = {"gan": "Generator (adversarial)", "cycle": "Cycle / identity (weighted)", "prior": "Prior losses (weighted)"}


@dataclass(frozen=True)
class LossTerm:
    """One generator-loss term: the only place to edit to add one.

    name: its stats key (stats.jsonl, curves). weight(loss_cfg): its weight, read here and nowhere else (> 0 turns
    it on). build(loss_cfg, priors_cfg, device): the term object (``name``, ``networks()``, ``__call__(t:
    CycleTensors)`` returning an unweighted scalar, optional ``stats()``); None for the core terms the step computes
    itself. target(cfg, root): its ``PrecomputedTarget``, if any. context(cfg): the ``CONTEXT_KEYS`` it needs.
    group: its panel of the loss curves (a key of ``GROUPS``).
    """

    name: str
    weight: Callable
    build: Callable | None = None
    target: Callable | None = None
    context: Callable = lambda cfg: ()
    doc: str = ""
    group: str = "prior"


LOSS_TERMS: dict[str, LossTerm] = {}


def register_loss_term(spec: LossTerm) -> LossTerm:
    """Add (or replace) a loss term; returns it."""
    if spec.group not in GROUPS:
        raise ValueError(f"loss term {spec.name}: group must be one of {', '.join(GROUPS)}")
    LOSS_TERMS[spec.name] = spec
    return spec


def loss_weights(loss_cfg) -> dict[str, float]:
    """Every registered term's weight under ``loss_cfg``, by name (the one place weights are read)."""
    return {name: float(spec.weight(loss_cfg)) for name, spec in LOSS_TERMS.items()}


def active_terms(loss_cfg, *, built: bool = True) -> list[LossTerm]:
    """The registered terms with a weight > 0 (``built``: only those with a ``build``, the step's extra terms)."""
    return [s for s in LOSS_TERMS.values() if float(s.weight(loss_cfg)) > 0 and (s.build is not None or not built)]


def build_terms(loss_cfg, priors_cfg, device: torch.device) -> list:
    """The enabled built terms with their frozen networks on ``device``, each given its registered weight (raises
    UserError for missing weights files; refuses a term whose networks are not frozen)."""
    terms = []
    for spec in active_terms(loss_cfg):
        term = spec.build(loss_cfg, priors_cfg, device)
        term.name, term.weight = spec.name, float(spec.weight(loss_cfg))
        for net in term.networks():
            if any(p.requires_grad for p in net.parameters()):
                raise UserError(f"internal error: a network of the {spec.name} loss is not frozen")
        terms.append(term)
    return terms


def curve_groups() -> list[tuple[str, list[str]]]:
    """(panel title, stats keys) of the loss curves, from the registry, in ``GROUPS`` order."""
    return [(title, [n for n, s in LOSS_TERMS.items() if s.group == g]) for g, title in GROUPS.items()]


def check_target_manifest(target: PrecomputedTarget) -> None:
    """Refuse maps another estimator computed (the folder's manifest.json names it; DSINE's older manifests don't)."""
    import json

    mpath = target.folder / "manifest.json"
    if not mpath.is_file():
        return
    try:
        settings = json.loads(mpath.read_text()).get("settings", {})
    except (OSError, ValueError):
        raise UserError(f"{mpath}: unreadable manifest; delete it and recompute the maps ({target.howto})") from None
    found = settings.get("estimator", "dsine")
    if found != target.estimator:
        asked = f"{target.estimator_setting} is {target.estimator}" if target.estimator_setting else f"not {target.estimator}"
        raise UserError(f"{target.folder}: these maps were computed by {found}, but {asked}; {target.howto}")


# the core terms: computed by the training step itself (training/step.py), their weights read here
register_loss_term(LossTerm("G_A", lambda lc: lc.lambda_gan, group="gan", doc="LSGAN: D_A judges fake_B"))
register_loss_term(LossTerm("G_B", lambda lc: lc.lambda_gan, group="gan", doc="LSGAN: D_B judges fake_A"))
register_loss_term(LossTerm("cycle_A", lambda lc: lc.lambda_cycle_A, group="cycle", doc="L1(rec_A, real_A)"))
register_loss_term(LossTerm("cycle_B", lambda lc: lc.lambda_cycle_B, group="cycle", doc="L1(rec_B, real_B)"))
register_loss_term(LossTerm("idt_A", lambda lc: lc.lambda_identity * lc.lambda_cycle_B, group="cycle",
                            doc="L1(G_A(real_B), real_B), relative to the sketch cycle as in CycleGAN"))  # fmt: skip
register_loss_term(LossTerm("idt_B", lambda lc: lc.lambda_identity * lc.lambda_cycle_A, group="cycle",
                            doc="L1(G_B(real_A), real_A), relative to the photo cycle as in CycleGAN"))  # fmt: skip
