"""`facesketch report RUN`: write the run's self-contained report.html."""

from __future__ import annotations

import argparse


def run_report(args: argparse.Namespace) -> int:
    from facesketch.report.run_report import write_run_report

    path = write_run_report(args.run, args.out)
    print(f"report: {path}")
    return 0


def register(sub, help_text: str) -> None:
    p = sub.add_parser("report", help=help_text, description=help_text + " (written automatically at the end of training).")
    p.add_argument("run", help="a training run directory")
    p.add_argument("--out", help="output HTML file (default RUN/report.html)")
    p.set_defaults(func=run_report)
