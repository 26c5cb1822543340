#!/usr/bin/env bash
# Issue 10's GPU checks in one go, for a machine with CUDA (each step's log under OUT_DIR):
#   1. python -m benchmarks.bench_gpu --compile --full-run   (throughput, bf16/fp32 and compiled/eager ratios, the
#      250-epoch CIFAR protocol projected and measured)
#   2. pytest -m gpu                                           (the CUDA path: bf16 autocast, channels_last, placement)
#   3. sculpt train --preset dsprites-mmd-gaussian --budget full   (the paper's 50 epochs at batch 512)
#   bash benchmarks/gpu_checks.sh [OUT_DIR]       (default runs/gpu-checks; each step has its own time limit)
# Where sculpt is not installed (a bare GPU machine with PyTorch), run it from the checkout with PYTHONPATH=.
# and the missing packages' wheels on PYTHONPATH too (lightgbm, pot and pydantic are not in every CUDA image).
set -uo pipefail
out="${1:-runs/gpu-checks}"
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
  | tee "$out/device.txt" || exit 2
run() { # name seconds command…
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - t0 )) s" | tee -a "$out/summary.txt"
}
run bench_gpu 300 python -m benchmarks.bench_gpu --compile --full-run
run pytest_gpu 120 python -m pytest -m gpu -q
run full_budget 420 python -m sculptcli train --preset dsprites-mmd-gaussian --budget full --seed 0 \
  --out "$out/dsprites-mmd-gaussian-full" --quiet
[ -f "$out/dsprites-mmd-gaussian-full/scores.json" ] && cp "$out/dsprites-mmd-gaussian-full/scores.json" "$out/full_scores.json"
cat "$out/summary.txt"
