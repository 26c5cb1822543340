#!/usr/bin/env bash
# sculpt on several nodes under SLURM: one torchrun launcher per node, meeting at a c10d rendezvous on the first
# node; `--resume auto` lets the same script continue a requeued (preempted) job from its last checkpoint.
#
#   sbatch examples/slurm-train.sh                     # 2 nodes × 4 GPUs, the preset below
#   sbatch --nodes 4 examples/slurm-train.sh           # more nodes: nothing else changes
#
# The run directory (OUT) must be on a filesystem every node sees: rank 0 writes it, the others read nothing.
#SBATCH --job-name=sculpt
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=sculpt-%j.log
set -euo pipefail

OUT=${OUT:-runs/sculpt-${SLURM_JOB_ID}}   # a requeued job keeps its job id, so it finds its run again
GPUS=${SLURM_GPUS_ON_NODE:-4}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=${PORT:-29500}

# At preemption SLURM sends SIGTERM, which torchrun passes on to its processes: sculpt saves last.safetensors at the
# current step and exits; the requeued job's `--resume auto` continues from there (and starts the run when no
# checkpoint exists yet). Without that signal it continues from the last periodic save (train.save_every).
# Not run on a SLURM cluster here; the rendezvous itself is tested on one machine (tests/test_multinode.py).
srun --kill-on-bad-exit=1 torchrun \
  --nnodes "$SLURM_NNODES" --nproc-per-node "$GPUS" \
  --rdzv-backend c10d --rdzv-endpoint "$HEAD:$PORT" --rdzv-id "$SLURM_JOB_ID" \
  -m sculptcli train --preset dsprites-mmd-gaussian --budget full --out "$OUT" --resume auto "$@"
