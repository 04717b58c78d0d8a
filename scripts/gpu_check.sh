#!/usr/bin/env bash
# Every GPU check in one command, within 8 minutes on one H100/H200 with no network:
#   scripts/gpu_check.sh [CAMVID_ROOT] [more flags of python -m cotrain.bench_gpu]
# One worker process starts Python, torch and CUDA once (and Ray once) for every case; each case's row
# is printed as it finishes. Writes gpu_check.csv (override with --out), prints the table and the goals,
# and caches the step times and packing throughput for the sweeps' --dry-run.
# Without a GPU: scripts/gpu_check.sh --dry-run   (the cases, their expected times and limits)
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
if [[ $# -gt 0 && "$1" != -* ]]; then
  args+=(--camvid-root "$1")
  shift
fi
# Hugging Face / timm must not try the network (encoders start from random weights here).
export HF_HUB_OFFLINE=1
# 480 s = 8 minutes for everything; the check itself plans its cases within 450 s (--budget-s).
exec timeout --signal=INT --kill-after=15 480 python -m cotrain.bench_gpu "${args[@]}" "$@"
