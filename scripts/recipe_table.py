"""The recipe search's table: each run's setting, wall time, steps/s, its held-out validation scores (what decides: the
EMA export and the raw weights), its test-split scores and the figures of a drawing of its test sketches.

Usage: python scripts/recipe_table.py RUN [RUN ...] [--json OUT]
Reads RUN/config.yaml, stats.jsonl (the last eval/ and eval_raw/ line), RUN/eval-test/metrics.json and drawing.json
(scripts/score_recipe_runs.sh). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch import run_layout as layout  # noqa: E402

M = ("lpips", "ssim", "ms_ssim", "fsim", "scoot")


def row(run: Path) -> dict:
    stats = layout.read_stats(run / layout.STATS)
    steps = [s for s in stats if "G_total" in s]
    evals = [s for s in stats if "eval/ssim" in s]
    out = {"run": run.name, "steps": steps[-1]["step"] if steps else 0}
    if len(steps) > 1:
        span = steps[-1]["time"] - steps[0]["time"]
        out["minutes"] = span / 60
        out["steps_per_s"] = (steps[-1]["step"] - steps[0]["step"]) / span
    if evals:
        out["holdout"] = {m: evals[-1].get(f"eval/{m}") for m in M}
        if "eval_raw/ssim" in evals[-1]:
            out["holdout_raw"] = {m: evals[-1].get(f"eval_raw/{m}") for m in M}
    mj = run / "eval-test" / "metrics.json"
    if mj.is_file():
        d = json.loads(mj.read_text())
        out["test"] = {m: d.get(m) if not isinstance(d.get(m), dict) else d[m].get("mean") for m in M}
    dj = run / "eval-test" / "drawing.json"
    if dj.is_file():
        out["drawing"] = json.loads(dj.read_text())[0]
    return out


def fmt(d: dict | None) -> str:
    return " | ".join(f"{d[m]:.4f}" if d and d.get(m) is not None else "—" for m in M)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = [row(r) for r in args.runs]
    print("| run | steps | minutes | steps/s | held out: LPIPS↓ | SSIM↑ | MS-SSIM↑ | FSIM↑ | SCOOT↑ | raw weights: LPIPS↓ | SSIM↑ "
          "| MS-SSIM↑ | FSIM↑ | SCOOT↑ |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['steps']} | {r.get('minutes', 0):.1f} | {r.get('steps_per_s', 0):.2f} | {fmt(r.get('holdout'))} | "
              f"{fmt(r.get('holdout_raw'))} |")
    print("\n| run | test: LPIPS↓ | SSIM↑ | MS-SSIM↑ | FSIM↑ | SCOOT↑ | mean chroma | 2-px energy (×1e-3) | white paper |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r.get("drawing") or {}
        fig = (f"{d['chroma']:.2f} | {d['checker_energy'] * 1e3:.3f} | {d['paper_share']:.3f}" if d else "— | — | —")
        print(f"| {r['run']} | {fmt(r.get('test'))} | {fig} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
