#!/usr/bin/env bash
# Score finished recipe-search runs on the whole FS2K test split (what is reported; the held-out training photos,
# scored during training, are what decides): `facesketch evaluate --model RUN` into RUN/eval-test, then the figures of
# a drawing of its sketches into RUN/eval-test/drawing.json. A run already scored is skipped.
# Usage: scripts/score_recipe_runs.sh RUN [RUN ...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for run in "$@"; do
  if [ -f "$run/eval-test/metrics.json" ] && [ -f "$run/eval-test/drawing.json" ]; then echo "skip $run: scored"; continue; fi
  echo "$(date -Is) evaluate $run load $(cut -d' ' -f1-3 /proc/loadavg)"
  facesketch evaluate --model "$run" --fs2k --out "$run/eval-test" --label "$(basename "$run")" || continue
  python "$here/drawing_figures.py" "$run/eval-test/predictions" --json "$run/eval-test/drawing.json"
done
