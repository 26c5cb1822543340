#!/usr/bin/env bash
# Issue 10's paper-style table at the CPU reproduction budget: every preset's `quick` budget exactly as README's
# first command runs it, SEEDS seeds each (seeds 0, 1, …), one run at a time, then `sculpt compare` over them.
#   bash benchmarks/reproduce_quick.sh [OUT_DIR] [SEEDS] [PRESET…]
#   (defaults: runs/reproduce-quick, 2 seeds, the six presets of the table; ≈ 2.5 hours on 2 cores)
# Each run's wall clock (training, live evaluations, checkpoints and the final scoring) goes to OUT/minutes.txt.
# A run directory that already has scores.json is kept, so an interrupted reproduction continues where it stopped.
set -euo pipefail
out="${1:-runs/reproduce-quick}"
seeds="${2:-2}"
shift $(( $# > 2 ? 2 : $# ))
presets=("$@")
if [ ${#presets[@]} -eq 0 ]; then
  presets=(dsprites-mmd-gaussian dsprites-ae dsprites-betavae-kl dsprites-factorvae dsprites-vae-kl
           xy-mmd-gaussian xy-mmd-uniform)
fi
mkdir -p "$out"
for preset in "${presets[@]}"; do
  for ((s = 0; s < seeds; s++)); do
    dir="$out/$preset/seed-$s"
    [ -f "$dir/scores.json" ] && continue
    rm -rf "$dir"
    t0=$(date +%s)
    sculpt train --preset "$preset" --budget quick --seed "$s" --out "$dir" --quiet
    echo "$preset seed-$s $(( $(date +%s) - t0 )) s" >> "$out/minutes.txt"
  done
done
sculpt compare "$out" --md "$out/compare.md" --csv "$out/compare.csv"
