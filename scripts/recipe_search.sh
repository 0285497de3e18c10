#!/usr/bin/env bash
# The quality levers' screen (docs/results.md, "Levers"): each lever alone on the fs2k-cpu-screen preset, one run after
# another, each resumable; a run whose log says it finished is skipped.
# Usage: scripts/recipe_search.sh OUT_DIR [NAME ...]      (default: every lever, in the order below)
set -uo pipefail
out=${1:?usage: scripts/recipe_search.sh OUT_DIR [NAME ...]}
shift
declare -A LEVERS=(
  [base]=""
  [bg-generated]="model.background_A=generated"
  [grey]="model.grey_sketch=true"
  [resize-up]="model.upsample=resize"
  [noise20]="loss.fake_B_noise=20"
)
order=(base bg-generated grey resize-up noise20)
if [ $# -gt 0 ]; then names=("$@"); else names=("${order[@]}"); fi
for n in "${names[@]}"; do
  if [ -z "${LEVERS[$n]+x}" ]; then echo "unknown lever $n (known: ${order[*]})" >&2; exit 2; fi
  run="$out/$n"
  if grep -qs "stopped (done)" "$run/log.txt"; then echo "skip $n: finished"; continue; fi
  resume=""
  [ -d "$run/checkpoints" ] && resume="--resume"
  echo "$(date -Is) start $n ${LEVERS[$n]} load $(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC2086
  facesketch train --config fs2k-cpu-screen --out "$run" $resume ${LEVERS[$n]} train.progress=false
  echo "$(date -Is) end $n rc $? load $(cut -d' ' -f1-3 /proc/loadavg)"
done
