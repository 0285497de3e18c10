"""Loss and metric curves from stats.jsonl as PNG plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# the step's other scalars; the loss terms' panels come from the loss-term registry (every registered term is drawn)
OTHER_GROUPS = [
    ("Discriminators", ["D_A", "D_B"]),
    ("Attention background mass", ["attn_bg_A", "attn_bg_B"]),
    ("Learning rate", ["lr"]),
]


def groups() -> list[tuple[str, list[str]]]:
    """(panel title, stats keys): the registry's loss-term groups, then the discriminators, attention and lr."""
    from facesketch.losses.registry import curve_groups

    return curve_groups() + OTHER_GROUPS


def _metric_keys() -> list[str]:
    """``eval/<key>`` for every registered metric (the registry's order)."""
    from facesketch.evaluation.registry import metric_keys

    return [f"eval/{k}" for k in metric_keys()]


def plot_losses(records: list[dict], out: Path, *, title: str = "") -> Path | None:
    """One panel per group of keys present in the records; x axis = step. Returns the PNG path (None if nothing to plot)."""
    panels = [(t, [k for k in keys if any(k in r for r in records)]) for t, keys in groups()]
    panels = [(t, ks) for t, ks in panels if ks]
    if not panels:
        return None
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, (t, keys) in zip(axes.flat, panels):
        for k in keys:
            pts = [(r["step"], r[k]) for r in records if k in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, lw=1.2)
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_metrics(records: list[dict], out: Path) -> Path | None:
    """Evaluation metrics over training (one panel each), if the run evaluated during training."""
    from facesketch.evaluation.registry import REGISTRY

    keys = [k for k in _metric_keys() if any(k in r for r in records)]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        pts = [(r.get("epoch", r["step"]), r[k]) for r in records if k in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", lw=1.2)
        m = REGISTRY[k.split("/", 1)[1]]
        ax.set_title(m.header + ("" if m.higher_is_better else " (lower is better)"), fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
