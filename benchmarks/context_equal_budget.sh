#!/usr/bin/env bash
# Issue 12's comparison: the context-module variants on quad at one equal CPU budget (each preset's quick budget:
# 2,000 steps at batch 64), then `sculpt compare` over concept and composition SWD and BPD.
#   bash benchmarks/context_equal_budget.sh [OUT_DIR] [SEED]     (default runs/context, seed 0; 6 runs)
set -euo pipefail
out="${1:-runs/context}"
seed="${2:-0}"
mkdir -p "$out"
run() { # preset [overrides…]
  local preset=$1; shift
  local t0; t0=$(date +%s)
  sculpt train --preset "$preset" --budget quick --seed "$seed" --out "$out/$preset" --quiet "$@"
  echo "$preset $(( $(date +%s) - t0 )) s" >> "$out/minutes.txt"
}
run quad-base
run quad-cm
run quad-cm-pooled
run quad-base-pooled
run quad-cm-frozen train.init_from="$out/quad-base-pooled"
run quad-cm-finetune train.init_from="$out/quad-base-pooled"
sculpt compare "$out" --metrics swd_concept,swd_composition,bpd,bpd_ood,bpd_pixel,recon_bpd,nmse_db \
  --md "$out/compare.md"
