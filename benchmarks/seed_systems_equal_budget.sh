#!/usr/bin/env bash
# Issue 11's comparison: Aux-VAE, its MMD form, XFactors, QLAE, β-VAE and AE-MMD at one equal CPU budget
# (1,500 steps at batch 64, lr 1e-3, 4-layer conv on dSprites), then `sculpt compare` over them.
#   bash benchmarks/seed_systems_equal_budget.sh [OUT_DIR]     (default runs/seed-systems; ~8 runs)
set -euo pipefail
out="${1:-runs/seed-systems}"
eq=(train.steps=1500 train.batch_size=64 train.epochs=null train.lr=1e-3 train.eval_every=500 train.save_every=500)
run() { # name preset [overrides…]
  local name=$1 preset=$2; shift 2
  local t0; t0=$(date +%s)
  sculpt train --preset "$preset" --budget quick --seed 0 --out "$out/$name" --quiet "$@"
  echo "$name $(( $(date +%s) - t0 )) s" >> "$out/minutes.txt"
}
mkdir -p "$out"
run galaxy-auxvae galaxy-auxvae
run galaxy-auxvae-mmd galaxy-auxvae-mmd
run galaxy-mmd-gaussian galaxy-mmd-gaussian
run dsprites-auxvae dsprites-auxvae "${eq[@]}" train.eval_n=2000 score.n=5000
run dsprites-xfactors dsprites-xfactors "${eq[@]}" train.eval_n=2000 score.n=5000
run dsprites-qlae dsprites-qlae "${eq[@]}" train.eval_n=2000 score.n=5000
run dsprites-betavae-kl dsprites-betavae-kl "${eq[@]}" train.eval_n=2000 score.n=5000
run dsprites-mmd-gaussian dsprites-mmd-gaussian "${eq[@]}" train.eval_n=2000 score.n=5000
for d in "$out"/*/; do sculpt score "${d%/}" --metrics all --save --json > /dev/null; done
sculpt compare "$out" --metrics lds,mig,dci.d,infomec.m,ssim,nmse_db,lps.lgbm --md "$out/compare.md"
