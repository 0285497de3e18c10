"""The metrics, in one registry: key, header, direction, batch function. The only place to edit to add a metric.

The runner scores what is registered (``--metrics`` accepts every key), the tables and the report label it with its
header and arrow, and the training curves plot ``eval/<key>``. A batch function takes two (N, H, W) uint8 grey
stacks of one size and a ``MetricContext`` and returns (N,) float64; work shared between metrics (SSIM's blurs, which
Wang's SSIM and MS-SSIM reuse) goes through ``MetricContext.shared``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class MetricContext:
    """What a batch function may use besides the two stacks: options, and a per-stack cache for shared work."""

    lpips_net: str = "alex"
    device: str = "cpu"
    fsim_precision: str = "float32"
    cache: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    """Per-image side outputs the runner keeps (e.g. ``msssim_negative_term``)."""

    def shared(self, key: str, compute: Callable):
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    higher_is_better: bool
    batch: Callable[[np.ndarray, np.ndarray, MetricContext], np.ndarray]
    paper: bool = False
    """A column of the paper's Tables I and II (in registration order: LPIPS, SSIM, MS-SSIM, FSIM, SCOOT)."""
    doc: str = ""


REGISTRY: dict[str, Metric] = {}


def register_metric(m: Metric) -> Metric:
    """Add (or replace) a metric; returns it."""
    REGISTRY[m.key] = m
    return m


def metric_keys() -> tuple[str, ...]:
    """Every registered key: the paper's columns first (in their order), then the others."""
    return paper_keys() + tuple(k for k, m in REGISTRY.items() if not m.paper)


def paper_keys() -> tuple[str, ...]:
    return tuple(k for k, m in REGISTRY.items() if m.paper)


def header(key: str) -> str:
    return REGISTRY[key].header if key in REGISTRY else key


def arrow(key: str) -> str:
    return "↑" if REGISTRY[key].higher_is_better else "↓"


# ---------------------------------------------------------------------------------------------- the built-ins
def _ssim_all(gt, gen, ctx: MetricContext) -> dict:
    from facesketch.evaluation.ssim import ssim_batch

    return ctx.shared("ssim", lambda: ssim_batch(gt, gen))


def _ms_ssim(gt, gen, ctx: MetricContext) -> np.ndarray:
    from facesketch.evaluation.msssim import ms_ssim_batch

    value, negative = ms_ssim_batch(gt, gen, level1_cs=_ssim_all(gt, gen, ctx)["cs_valid"])
    ctx.extras["msssim_negative_term"] = negative
    return value


def _fsim(gt, gen, ctx: MetricContext) -> np.ndarray:
    from facesketch.evaluation.fsim import fsim_batch

    return fsim_batch(gt, gen, precision=ctx.fsim_precision, device=ctx.device)


def _scoot(gt, gen, ctx: MetricContext) -> np.ndarray:
    from facesketch.evaluation.scoot import scoot_batch

    return scoot_batch(gt, gen)


def _lpips(gt, gen, ctx: MetricContext) -> np.ndarray:
    from facesketch.evaluation.lpips_grey import lpips_grey_batch, lpips_model

    return lpips_grey_batch(lpips_model(ctx.lpips_net, ctx.device), gt, gen, ctx.device)


register_metric(Metric("lpips", "LPIPS", False, _lpips, paper=True, doc="v0.1 LPIPS on grey x3 (AlexNet by default)"))
register_metric(Metric("ssim", "SSIM", True, lambda gt, gen, ctx: _ssim_all(gt, gen, ctx)["ssim"], paper=True,
                       doc="MATLAB IPT ssim, full-map mean (FS2K's)"))  # fmt: skip
register_metric(Metric("ms_ssim", "MS-SSIM", True, _ms_ssim, paper=True, doc="Wang 2003 five-scale pyramid"))
register_metric(Metric("fsim", "FSIM", True, _fsim, paper=True, doc="FeatureSIM.m on grey"))
register_metric(Metric("scoot", "SCOOT", True, _scoot, paper=True, doc="FS2KToolbox's SCOOT"))
register_metric(Metric("ssim_wang2003", "SSIM (Wang 2003)", True,
                       lambda gt, gen, ctx: _ssim_all(gt, gen, ctx)["ssim_wang2003"],
                       doc="Wang et al.'s ssim_index.m, 'valid' window"))  # fmt: skip
