"""Evaluation during training: G_A (or its EMA) scored on the held-out training photos, else a fixed test subset."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from facesketch.config import Config
from facesketch.data import fs2k
from facesketch.training.step import CycleGenerators

log = logging.getLogger(__name__)


def make_evaluator(cfg: Config, root: Path, G: CycleGenerators, device: torch.device, holdout: list = (),
                    raw: CycleGenerators | None = None):  # fmt: skip
    """A closure evaluating G_A on the held-out training photos (``data.holdout``), else on a fixed subset of the FS2K
    test split (five metrics); None without FS2K. With ``raw`` (the trained weights when ``G`` is their EMA), those
    are scored too, as 'raw/<metric>', so every EMA run measures what the average buys."""
    if not fs2k.is_fs2k_root(root):
        log.warning("note: train.eval_every needs FS2K (test split with ground-truth sketches); evaluation disabled")
        return None
    from facesketch.errors import UserError as _UserError
    from facesketch.evaluation import METRICS
    from facesketch.evaluation.during_training import evaluate_translator, spread_subset
    from facesketch.inference import Translator
    from facesketch.models.export_file import model_meta

    if holdout:
        records = list(holdout)
    else:
        records = spread_subset([r for r in fs2k.load_split(root, "test") if r.photo and r.sketch], cfg.train.eval_subset)
    metrics = METRICS
    try:
        from facesketch.priors.build import build_lpips

        build_lpips("alex")
    except _UserError as e:
        metrics = tuple(m for m in METRICS if m != "lpips")
        log.warning(f"note: evaluation during training without LPIPS ({e})")

    styled = cfg.model.styles > 0  # a style model is scored with each photo drawn in its own sketch's style

    def score(gens: CycleGenerators) -> dict:
        tr = Translator(gens.G_A, model_meta(cfg), device=device)
        fn = (lambda imgs, st: tr.translate_arrays(imgs, style=st)) if styled else (lambda imgs: tr.translate_arrays(imgs))
        try:
            return evaluate_translator(fn, records, lpips_net="alex", device=device, metrics=metrics,
                                       style_of=(lambda r: min(fs2k.style_of(r) or 0, cfg.model.styles - 1)) if styled else None)  # fmt: skip
        finally:
            gens.train()

    def run() -> dict:
        out = score(G)
        if raw is not None:
            out.update({f"raw/{k}": v for k, v in score(raw).items()})
        return out

    return run
