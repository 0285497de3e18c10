"""`facesketch report RUN`: write the run's self-contained report.html."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_report(args: argparse.Namespace) -> int:
    from facesketch.report.run_report import write_run_report

    from facesketch import run_layout as layout

    out = args.out
    if out is not None and (Path(out).is_dir() or str(out).endswith(("/", "\\"))):
        out = Path(out) / layout.REPORT  # a folder, as --out is in every other verb
    path = write_run_report(args.run, out)
    print(f"report: {path}")
    return 0


def register(sub, help_text: str) -> None:
    p = sub.add_parser("report", help=help_text, description=help_text + " (written automatically at the end of training).")
    p.add_argument("run", help="a training run directory")
    p.add_argument("--out", help="a folder to write report.html into, or the HTML file itself (default RUN/report.html)")
    p.set_defaults(func=run_report)
