"""Reference points for the quad SWD scores (issue 12): what real images score against real images, and what a
model that ignores the context or outputs the mean image would score, at the sample size `sculpt score` used.

    python -m benchmarks.swd_reference [--n 1000] [--variant independent]
"""

from __future__ import annotations

import argparse
import json

import torch

from sculptcli.data.quad import COMPOSITIONS, CONCEPTS, QuadSpec
from sculptcli.metrics.context import sliced_wasserstein


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="images per set (the quick budget's score.n)")
    ap.add_argument("--variant", default="independent", choices=["independent", "causal"])
    args = ap.parse_args()
    n = args.n
    data = QuadSpec(variant=args.variant, n=64, heldout=2 * n).build(0)
    obs = data.heldout_context("obs")
    a, b = obs[:n], obs[n:]

    def mean_over(names, fake):
        return sum(sliced_wasserstein(fake, data.heldout_context(c, n), seed=0) for c in names) / len(names)

    mean_image = a.mean(0, keepdim=True).expand(n, -1, -1, -1)
    out = {
        "n": n,
        "real obs vs real obs (the floor at this n)": sliced_wasserstein(a, b, seed=0),
        "obs images for every concept (a model that ignores the context)": mean_over(CONCEPTS, a),
        "obs images for every composition": mean_over(COMPOSITIONS, a),
        "the mean obs image for every composition": mean_over(COMPOSITIONS, mean_image),
        "uniform grey 0.5 for every composition": mean_over(COMPOSITIONS, torch.full_like(a, 0.5)),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
