"""`facesketch report RUN`: one self-contained report.html for a training run (config, curves, samples, masks, evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from facesketch import run_layout as layout
from facesketch.report import html as H
from facesketch.report.plots import plot_losses, plot_metrics

N_SAMPLE_GRIDS = 6


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx))]


def _attention_panels(run: Path, cfg: dict, n: int = 3) -> list[np.ndarray]:
    """Attention masks of the first ``n`` test photos under the run's current generator (empty if unavailable)."""
    from facesketch.data.datasets import discover
    from facesketch.data.images import load_rgb
    from facesketch.errors import UserError
    from facesketch.inference import Translator
    from facesketch.models.generators import GENERATORS
    from facesketch.report.grids import attention_panel

    spec = GENERATORS.get(cfg.get("model", {}).get("generator", "attention"))
    if spec is None or not spec.attention:
        return []
    try:
        tr = Translator.from_export(layout.export_file(run))  # a finished run's export (the report is its last act)
        root = cfg["data"]["root"]
        if not root:
            from facesketch.data import fs2k

            root = fs2k.find_root()
        files = discover(root, "test", cfg["data"].get("source", "auto"))
    except (UserError, KeyError, TypeError, OSError):
        return []
    photos = [np.asarray(load_rgb(p)) for p in files.A[:n]]
    outs, masks = tr.translate_arrays(photos, return_attention=True)
    from PIL import Image

    small = [np.asarray(Image.fromarray(p).resize((tr.size, tr.size), Image.BICUBIC)) for p in photos]
    return [attention_panel(s, m, o) for s, m, o in zip(small, masks, outs) if m is not None]


def _evaluation_sections(run: Path) -> list[str]:
    out = []
    for mj in sorted(run.glob("eval*/metrics.json")):
        try:
            m = json.loads(mj.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out.append(f"<h3>{H.esc(mj.parent.name)}</h3>")
        from facesketch.evaluation.registry import header, metric_keys

        keys = [k for k in metric_keys() if k in m]
        out.append(H.table([header(k) for k in keys], [[f"{m[k]:.4f}" if isinstance(m[k], (int, float)) else m[k] for k in keys]]))
        table_md = mj.parent / "table.md"
        if table_md.exists():
            out.append(f"<pre>{H.esc(table_md.read_text())}</pre>")
    return out


def write_run_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (images embedded, no external files) for the run directory ``run``; returns its path."""
    from facesketch.errors import UserError

    run = Path(run)
    cfg_path = run / layout.CONFIG
    if not cfg_path.is_file():
        raise UserError(f"{run}: no config.yaml here: not a facesketch run directory")
    cfg = yaml.safe_load(cfg_path.read_text())
    stats = layout.read_stats(run / layout.STATS)
    out = Path(out) if out else run / layout.REPORT
    parts = [f"<h1>facesketch run: {H.esc(cfg.get('name', run.name))}</h1>", f"<p class=muted>{H.esc(run.resolve())}</p>"]
    train_stats = [r for r in stats if "G_total" in r]
    if train_stats:
        last = train_stats[-1]
        parts.append(H.table(["step", "epoch", "G total", "D_A + D_B", "lr", "images/s"],
                             [[last["step"], last.get("epoch", ""), f"{last['G_total']:.4f}",
                               f"{last.get('D_A', 0) + last.get('D_B', 0):.4f}", f"{last.get('lr', 0):.2e}",
                               f"{last.get('images_per_s', 0):.2f}"]]))  # fmt: skip
    parts.append("<h2>Loss curves</h2>")
    curves = plot_losses(train_stats, out.parent / "losses.png", title=cfg.get("name", "")) if train_stats else None
    parts.append(H.img(curves) if curves else "<p>no training statistics yet</p>")
    metric_png = plot_metrics(stats, out.parent / "metrics.png")
    if metric_png:
        parts += ["<h2>Evaluation during training</h2>", H.img(metric_png)]
    grids = sorted((run / layout.SAMPLES).glob("step_*.png"))
    if grids:
        parts.append("<h2>Samples over training</h2><p class=muted>Fixed test images; columns: real_A, fake_B, rec_A, "
                     "real_B, fake_A, rec_B.</p>")  # fmt: skip
        parts += [H.img(g, caption=g.stem.replace("_", " ")) for g in _evenly(grids, N_SAMPLE_GRIDS)]
    panels = _attention_panels(run, cfg)
    if not panels:
        latest = sorted((run / layout.SAMPLES).glob("attention_*.png"))
        panels = [latest[-1]] if latest else []
    if panels:
        parts.append("<h2>Attention masks</h2><p class=muted>9 foreground masks (A1..A9) and the background mask (bg) that "
                     "copies the input; the number is the mean weight. A bg near 1 everywhere means attention collapse.</p>")  # fmt: skip
        parts += [H.img(p) for p in panels]
    ev = _evaluation_sections(run)
    if ev:
        parts += ["<h2>Evaluation</h2>", *ev]
    parts += ["<h2>Configuration</h2>", f"<pre>{H.esc(yaml.safe_dump(cfg, sort_keys=False))}</pre>"]
    return H.write_page(out, f"facesketch report: {cfg.get('name', run.name)}", "\n".join(parts))
