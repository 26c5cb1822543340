"""Two `sculpt train` runs started together on a small machine: each run's wall time against one run alone.

    python -m benchmarks.bench_concurrent [--steps 60] [--preset dsprites-mmd-gaussian]

Every variant runs the same command (the preset's quick budget, --max-steps, no scoring) as a subprocess, alone and
then two at once, in one session; it prints seconds per run and the slowdown ratio (concurrent / alone; 2.0 is what
two runs sharing the cores fairly cost, far more is thread oversubscription). Variants: sculpt's default (the
live runs divide the CPUs of the affinity mask among themselves, rechecked about once a second), every run pinned to
every CPU (the behaviour before; with the OpenMP runtime's own wait policy, spin-waiting OMP_WAIT_POLICY=ACTIVE or
sleeping OMP_WAIT_POLICY=PASSIVE), and one thread per run (train.threads=1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from sculptcli.training.cpushare import available_cpus

CPUS = available_cpus()
VARIANTS = {
    "default": ({}, []),  # live runs divide the CPUs among themselves (sculptcli/training/cpushare.py)
    "pinned": ({}, [f"train.threads={CPUS}"]),  # every run on every CPU: the behaviour before the share
    "pinned, spin-wait": ({"OMP_WAIT_POLICY": "ACTIVE"}, [f"train.threads={CPUS}"]),
    "pinned, sleep-wait": ({"OMP_WAIT_POLICY": "PASSIVE"}, [f"train.threads={CPUS}"]),
    "threads=1": ({}, ["train.threads=1"]),
}


def launch(preset: str, steps: int, out: Path, env: dict, extra: list[str]) -> subprocess.Popen:
    cmd = ["sculpt", "train", "--preset", preset, "--out", str(out), "--max-steps", str(steps), "--no-score", "-q",
           "train.eval_every=100000", "train.save_every=100000", *extra]  # fmt: skip
    return subprocess.Popen(cmd, env={**os.environ, **env})


def timed(procs: list[subprocess.Popen]) -> float:
    t0 = time.perf_counter()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a run failed ({p.args})")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="dsprites-mmd-gaussian")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    args = ap.parse_args()
    chosen = [v.strip() for v in args.variants.split(",")]
    if unknown := [v for v in chosen if v not in VARIANTS]:
        raise SystemExit(f"unknown variants: {unknown}")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i, name in enumerate(chosen):
            env, extra = VARIANTS[name]
            alone = timed([launch(args.preset, args.steps, Path(d) / f"a{i}", env, extra)])
            both = timed([launch(args.preset, args.steps, Path(d) / f"p{i}{k}", env, extra) for k in range(2)])
            rows.append({"variant": name, "alone_s": alone, "two_at_once_s": both, "slowdown": both / alone})
            print(f"{name:16s} alone {alone:6.1f} s   two at once {both:6.1f} s   slowdown {both / alone:.2f}×",
                  flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
