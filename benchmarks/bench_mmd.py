"""The training step's MMD² (forward + backward) against the plain pooled formulation, interleaved in one run.

    python -m benchmarks.bench_mmd [--repeats 15 --threads 2 --device cpu]

Plain: one pooled (n+m)² distance matrix through autograd, the median of its upper triangle, and exp at every
scale unclamped — what `mmd2` did before it split the blocks, kept the prior's block out of autograd and clamped
the exponent at −80. Cases: the quick budget's MMD (batch 128 against 128 prior draws, d = 5, scales 0.1–2 ×
the median) and with 1,024 prior draws (`prior_n`). Both sides compute the same value (checked) and gradient.
Target: ≥ 1 (never slower); the speed-up is the point of the change.
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmarks.common import environment, interleaved, timed
from sculptcli.stats.mmd import mmd2

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0)


def plain_mmd2(x: torch.Tensor, y: torch.Tensor, scales=SCALES) -> torch.Tensor:
    pooled = torch.cat([x, y], 0)
    sq = (pooled * pooled).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T).clamp_min(0.0)
    d2 = d2 - torch.diag_embed(d2.diagonal())  # exact zeros on the diagonal
    n = len(pooled)
    iu = torch.triu_indices(n, n, 1, device=pooled.device)
    sigma = d2.detach()[iu[0], iu[1]].median().sqrt()
    k = sum(torch.exp(-d2 / (2.0 * (s * sigma) ** 2)) for s in scales)
    a = len(x)
    return k[:a, :a].mean() + k[a:, a:].mean() - 2.0 * k[:a, a:].mean()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator(device=device).manual_seed(0)
    out = {"environment": environment(), "cases": {}}
    for n, m in [(128, 128), (128, 1024)]:
        x = (torch.randn(n, 5, generator=g, device=device) * 1.3).requires_grad_(True)
        y = torch.randn(m, 5, generator=g, device=device)
        ours, ref = mmd2(x, y, scales=SCALES), plain_mmd2(x, y)
        assert abs(ours.item() - ref.item()) <= 1e-5 * max(1.0, abs(ref.item())), (ours.item(), ref.item())

        def step(fn, x=x, y=y):
            return lambda: timed(lambda: torch.autograd.grad(fn(x, y), x), device)

        for _ in range(3):  # warm-up
            step(lambda a, b: mmd2(a, b, scales=SCALES))()
            step(plain_mmd2)()
        med = interleaved({"sculpt": step(lambda a, b: mmd2(a, b, scales=SCALES)), "plain": step(plain_mmd2)},
                          args.repeats)  # fmt: skip
        ratio = med["plain"] / med["sculpt"]
        out["cases"][f"{n}x{m}"] = {"sculpt_ms": 1e3 * med["sculpt"], "plain_ms": 1e3 * med["plain"], "speedup": ratio}
        print(f"batch {n} vs {m} prior draws: sculpt {1e3 * med['sculpt']:.2f} ms, plain {1e3 * med['plain']:.2f} ms "
              f"-> {ratio:.2f}x", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
