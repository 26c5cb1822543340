"""Seconds per factor metric on N codes (default the issue's N = 10,000, d = 10, K = 5 grid factors).

    python -m benchmarks.bench_metrics [--n 10000] [--d 10] [--dci-model gbt]

Codes: 5 factors (dSprites-like grid sizes 3, 6, 40, 32, 32) mixed into 10 latents by a fixed random linear map
plus noise, so no metric sits at a trivial extreme. Each metric runs through `run_metrics` exactly as
`sculpt score` runs it (default protocol sizes: 10,000 + 5,000 FactorVAE/β-VAE votes drawn from the codes).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks.common import environment
from sculptcli.metrics import SETS, ScoreInput
from sculptcli.scoring import run_metrics


def codes(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    sizes = (3, 6, 40, 32, 32)
    f = np.stack([rng.integers(0, s, n) for s in sizes], 1).astype(np.float32)
    u = (f + 0.5) / np.array(sizes, dtype=np.float32)
    mix = np.eye(5, d) + 0.3 * rng.normal(size=(5, d))
    z = u @ mix + 0.05 * rng.normal(size=(n, d))
    return torch.from_numpy(z.astype(np.float32)), torch.from_numpy(f)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--dci-model", default="gbt")
    args = ap.parse_args(argv)
    z, f = codes(args.n, args.d)
    names = SETS["supervised"] + ["tc_gauss", "tc_mmd"]
    t0 = time.perf_counter()
    report = run_metrics(ScoreInput(latents=z, factors=f, seed=0, options={"dci_model": args.dci_model}), names)
    total = time.perf_counter() - t0
    seconds = report["settings"]["seconds"]
    out = {
        "environment": environment(),
        "n": args.n,
        "d": args.d,
        "seconds": seconds,
        "total_seconds": total,
        "non_tree_seconds": sum(v for k, v in seconds.items() if k != "dci"),
        "values": {k: report[k] for k in names if k in report},
    }
    print(json.dumps(out, indent=2, default=float))
    return out


if __name__ == "__main__":
    main()
