#!/usr/bin/env bash
# Every GPU check in one command, within 10 minutes on one H100/H200 with no network:
#   scripts/gpu_check.sh [CAMVID_ROOT] [more flags of python -m cotrain.bench_gpu]
# Writes gpu_check.csv (override with --out) and prints the table and the goals.
# Without a GPU: scripts/gpu_check.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
if [[ $# -gt 0 && "$1" != -* ]]; then
  args+=(--camvid-root "$1")
  shift
fi
# Hugging Face / timm must not try the network (encoders start from random weights here).
export HF_HUB_OFFLINE=1
exec timeout --signal=INT 560 python -m cotrain.bench_gpu "${args[@]}" "$@"
