"""dSprites batch generation as a fraction of a training step (target <= 5%).

python benchmarks/bench_data.py [--batch 512] [--device auto]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.common import environment, interleaved, timed
from sculptcli.config import load_config
from sculptcli.data import Batch
from sculptcli.objectives import Objective
from sculptcli.training.trainer import resolve_device, step_generator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    device = resolve_device(args.device)
    cfg = load_config(preset="dsprites-mmd-gaussian", budget="full", overrides=[f"train.batch_size={args.batch}"])
    data = cfg.data.build(cfg.seed, device)
    model = cfg.model.build(data.shape).to(device)
    objective = Objective(cfg.objective, cfg.prior.build(cfg.model.latent_dim, device))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    x_fixed = data.train_batch(0, args.batch).images
    bf16 = device.type == "cuda"
    counter = iter(range(10**9))

    def generate():
        for _ in range(args.steps):
            data.train_batch(next(counter), args.batch)

    def step():
        for s in range(args.steps):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                enc, logits = model(x_fixed)
                loss = objective(Batch(x_fixed), enc, logits, step_generator(0, s, device))["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    step()  # warm-up
    generate()
    med = interleaved({"generate": lambda: timed(generate, device), "step": lambda: timed(step, device)}, args.repeats)
    frac = med["generate"] / med["step"]
    print(
        f"dSprites batch {args.batch} on {device}: generation {1e3 * med['generate'] / args.steps:.2f} ms, "
        f"training step {1e3 * med['step'] / args.steps:.1f} ms -> {100 * frac:.2f}% of a step (target <= 5%)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "dsprites_generation",
                    "batch": args.batch,
                    "generate_ms": 1e3 * med["generate"] / args.steps,
                    "step_ms": 1e3 * med["step"] / args.steps,
                    "fraction": frac,
                    "target": "<= 0.05",
                    **environment(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
