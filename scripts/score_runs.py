"""Score training runs on a fixed, evenly spread subset of the FS2K test split (the recipe search of docs/results.md).

Usage: python scripts/score_runs.py RUN [RUN ...] [--subset 104] [--image-size 256] [--fs2k DIR] [--json OUT]

For each run directory: its settings that differ between the runs, steps, wall time (from stats.jsonl) and the
five FS2K-protocol means of G_A on every ``len(test) // subset``-th test photo, translated at ``--image-size``
(default: the model's own size). Prints a Markdown table; ``--json`` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import yaml  # noqa: E402

from facesketch.data import fs2k  # noqa: E402
from facesketch.evaluation import METRICS  # noqa: E402
from facesketch.evaluation.during_training import evaluate_translator, spread_subset  # noqa: E402
from facesketch.translate.load import load_translator

KEYS = ("data.load_size", "data.crop_size", "model.ngf", "model.n_blocks", "model.ndf", "train.batch_size",
        "loss.lambda_cycle_A", "loss.lambda_edge", "loss.lambda_normal", "train.amp")  # fmt: skip


def run_facts(run: Path) -> dict:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    facts = {k: cfg[k.split(".")[0]][k.split(".")[1]] for k in KEYS}
    lines = [json.loads(s) for s in (run / "stats.jsonl").read_text().splitlines() if s.strip()]
    lines = [s for s in lines if "step" in s]
    facts["steps"] = lines[-1]["step"] if lines else 0
    facts["epochs"] = round(lines[-1].get("epoch", 0), 2) if lines else 0
    wall = sum(s.get("interval_s", 0) for s in lines)
    if not wall and len(lines) > 1:
        wall = lines[-1]["time"] - lines[0]["time"]
    facts["minutes"] = round(wall / 60, 1)
    return facts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--subset", type=int, default=104, help="test photos scored (evenly spread over the split)")
    ap.add_argument("--image-size", type=int, default=0, help="translate at this size (default: the model's own)")
    ap.add_argument("--fs2k", default=None, help="FS2K root (default: $FS2K_ROOT or ../shared/data/FS2K)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    root = fs2k.find_root(args.fs2k)
    if root is None:
        print(f"error: {fs2k.FS2K_HOWTO}", file=sys.stderr)
        return 2
    records = spread_subset([r for r in fs2k.load_split(root, "test") if r.photo and r.sketch], args.subset)
    rows = []
    for run in args.runs:
        tr = load_translator(run)
        if args.image_size:
            tr.size = args.image_size
        scores = evaluate_translator(lambda imgs: tr.translate_arrays(imgs), records)
        rows.append({"run": run.name, **run_facts(run), "size": tr.size, **{m: round(scores[m], 4) for m in METRICS}})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
