#!/usr/bin/env bash
# Every GPU measurement of the throughput work in one script (< 8 minutes on one H100-class GPU).
# Usage: benchmarks/gpu_check.sh [OUT_DIR]   (default: $OUT or ./gpu_results). Writes JSON files and a summary.md.
# Overrides for a dry run elsewhere: DEVICE=cpu SIZE=32 STEPS=1 benchmarks/gpu_check.sh dry_results
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_results}}"
DEVICE="${DEVICE:-cuda}"
SIZE="${SIZE:-256}"
STEPS="${STEPS:-30}"
PY="${PY:-python}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
{
  echo "# facesketch GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  $PY -c "import torch; print('torch', torch.__version__, '| device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  echo
  echo "## Training throughput, reference loop (a) vs facesketch (b), batch 4, ${SIZE}x${SIZE}"
  timeout 420 $PY benchmarks/train_throughput.py --device "$DEVICE" --size "$SIZE" --steps "$STEPS" --json "$OUT_DIR/train_throughput.json"
  echo
  echo "## Prior networks, per image (fp32 and auto precision)"
  timeout 60 $PY benchmarks/priors_speed.py --device "$DEVICE" --size "$SIZE" --batch 4 --json "$OUT_DIR/priors_fp32.json"
  timeout 60 $PY benchmarks/priors_speed.py --device "$DEVICE" --size "$SIZE" --batch 4 --amp auto --json "$OUT_DIR/priors_amp.json"
} 2>&1 | tee "$OUT_DIR/summary.md"
