"""The paper's reported FS2K numbers (Tables I and II) and the Markdown table that puts an evaluation beside them."""

from __future__ import annotations

from facesketch.evaluation.registry import arrow, header, paper_keys

METRICS = paper_keys()  # the paper's columns, in its order

# Values as printed in the paper (FS2K test split, 1,046 images); columns LPIPS, SSIM, MS-SSIM, FSIM, SCOOT.
# The paper does not state its SSIM variant, LPIPS net or evaluation size (docs/metrics.md).
PAPER_TABLE_I = {
    "CycleGAN": (0.462, 0.364, 0.419, 0.563, 0.331),
    "Learn2Draw": (0.429, 0.408, 0.473, 0.583, 0.392),
    "FSGAN": (0.369, 0.508, 0.583, 0.490, 0.275),
    "paper (full model)": (0.412, 0.456, 0.515, 0.609, 0.404),
}
PAPER_TABLE_II = {
    "w/o edge & normal": (0.478, 0.400, 0.520, 0.609, 0.392),
    "w/o normal": (0.401, 0.465, 0.519, 0.608, 0.380),
    "w/o edge": (0.454, 0.421, 0.526, 0.614, 0.379),
    "full model": (0.412, 0.456, 0.515, 0.609, 0.404),
}


def md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell: one line, '|' escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def paper_rows() -> dict[str, dict[str, dict[str, float]]]:
    """{'table_I': {method: {metric: value}}, 'table_II': {...}}, as reported in the paper."""
    return {
        "table_I": {k: dict(zip(METRICS, v)) for k, v in PAPER_TABLE_I.items()},
        "table_II": {k: dict(zip(METRICS, v)) for k, v in PAPER_TABLE_II.items()},
    }


def _fmt(x, digits: int = 4) -> str:
    return "NaN" if x is None else f"{x:.{digits}f}"


def _head(metrics) -> str:
    cols = [f"{header(m)}{arrow(m)}" for m in metrics]
    return "| row | source | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols) + "\n"


def render_table(summary: dict) -> str:
    """table.md for a metrics.json ``summary``: our row beside the paper's rows, then attribute-subset means."""
    label = md_cell(summary.get("label") or "this run")
    proto = summary["protocol"]
    counts = summary["counts"]
    ours_metrics = [m for m in METRICS if m in summary.get("metrics", METRICS)]
    lines = [f"# FS2K evaluation: {label}\n"]
    split = summary.get("split")
    lines.append(
        f"Evaluated {counts['evaluated']} of {counts['ground_truth']} ground-truth images"
        + (f" (FS2K {split} split)" if split else "")
        + f"; missing {counts['missing']}, unreadable {counts['unreadable']}.\n"
    )
    lines.append(
        "Protocol: grey = MATLAB rgb2gray weights, uint8 (round half away); "
        f"evaluation size = {proto['eval_size_rule']}; resize = PIL bicubic of the uint8 grey prediction; "
        "SSIM = MATLAB IPT `ssim` (FS2K-official, full-map mean); MS-SSIM = Wang 2003 pyramid; "
        f"FSIM = FeatureSIM.m (grey); SCOOT = FS2KToolbox; LPIPS = v0.1 `{proto['lpips_net']}` on grey x3.\n"
    )
    lines.append("## Table I (FS2K test split)\n")
    lines.append(
        "Rows marked *reported in the paper* are copied from the paper, not recomputed; the paper does not "
        "state its SSIM variant, LPIPS net or evaluation size, so compare with care.\n"
    )
    table = _head(METRICS)
    ours = [_fmt(summary.get(m)) if m in ours_metrics else "—" for m in METRICS]
    table += f"| **ours: {label}** | this evaluation | " + " | ".join(ours) + " |\n"
    for name, vals in PAPER_TABLE_I.items():
        table += f"| {name} | reported in the paper (Table I) | " + " | ".join(f"{v:.3f}" for v in vals) + " |\n"
    lines.append(table)
    lines.append("## Table II (ablations, reported in the paper)\n")
    table = _head(METRICS)
    for name, vals in PAPER_TABLE_II.items():
        table += f"| {name} | reported in the paper (Table II) | " + " | ".join(f"{v:.3f}" for v in vals) + " |\n"
    lines.append(table)
    extra = [m for m in summary.get("metrics", []) if m not in METRICS]
    notes = []
    for m in extra:
        notes.append(f"- {header(m)}: {_fmt(summary.get(m))} (same images; 'valid' window)")
    for m, k in summary.get("n_nan", {}).items():
        if k:
            notes.append(
                f"- {header(m)}: {k} image(s) undefined (NaN; e.g. constant images for FSIM), so the mean "
                f"above is NaN; mean over the others ({m}_nan_excluded): {_fmt(summary.get(f'{m}_nan_excluded'))}. "
                "Ids in metrics.json (nan_ids)."
            )
    neg = counts.get("msssim_negative_term")
    if neg:
        notes.append(f"- MS-SSIM: {neg} image(s) had a negative per-level term and score 0 (clamp rule).")
    if notes:
        lines.append("Notes:\n\n" + "\n".join(notes) + "\n")
    subsets = summary.get("subsets") or {}
    if subsets:
        lines.append("## Attribute subsets (this evaluation)\n")
        cols = [m for m in summary.get("metrics", METRICS)]
        table = "| attribute | value | n | " + " | ".join(header(m) for m in cols) + " |\n"
        table += "|---|---|---|" + "---|" * len(cols) + "\n"
        for attr, groups in subsets.items():
            for value, entry in groups.items():
                table += f"| {attr} | {value} | {entry['n']} | " + " | ".join(_fmt(entry.get(m)) for m in cols) + " |\n"
        lines.append(table)
    return "\n".join(lines)
