"""GPU throughput of `sculpt train` on CIFAR-shaped data: images/s and the fraction of the device's dense bf16 peak.

    python -m benchmarks.bench_gpu                    # cifar-mmd-gaussian, full budget's model and batch, 200 steps
    python -m benchmarks.bench_gpu --compile          # also time torch.compile
    python -m benchmarks.bench_gpu --full-run         # then the whole 250-epoch protocol, wall time and NMSE
    python -m benchmarks.bench_gpu --device cpu --steps 6 --batch 32   # a CPU smoke of this script

The data are generated CIFAR-shaped images (smooth random blobs, 50,000 + 10,000, labels 0–9) written in the
official binary layout (cifar-10-batches-bin) into a temporary directory and read by the real `cifar10` loader,
so the timed path is the one a user gets. Model FLOPs per step are counted once with
`torch.utils.flop_counter.FlopCounterMode` over a forward + backward of the model and objective on one batch;
achieved = FLOPs per step × steps/s; fraction = achieved ÷ the device's dense bf16 peak (--peak-tflops to set it).
Steps are timed between logged steps after a warm-up (set-up, evaluation and checkpoints excluded); variants
(fp32 vs bf16, eager vs compiled) are interleaved A B A B in one run and reported as ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import environment
from sculptcli.config import load_config
from sculptcli.objectives import Objective
from sculptcli.training.report import Reporter
from sculptcli.training.trainer import resolve_device, step_generator, train

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4,
                    "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}  # fmt: skip


def peak_tflops(name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return PEAK_BF16_TFLOPS[key]
    return None


def write_fake_cifar(root: Path, n_train: int = 50_000, n_test: int = 10_000, seed: int = 0) -> None:
    """CIFAR-10 binary files (label byte + 3072 pixel bytes per record) of smooth random colour blobs."""
    rng = np.random.default_rng(seed)
    out = root / "cifar-10-batches-bin"
    out.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)

    def images(n: int) -> np.ndarray:
        cx, cy = rng.uniform(4, 28, (2, n, 1, 1)).astype(np.float32)
        r = rng.uniform(3, 10, (n, 1, 1)).astype(np.float32)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
        colour = rng.uniform(0, 1, (n, 3, 1, 1)).astype(np.float32)
        bg = rng.uniform(0, 0.5, (n, 3, 1, 1)).astype(np.float32)
        return np.clip(255 * (bg + (colour - bg) * blob[:, None]), 0, 255).astype(np.uint8)

    def write(name: str, n: int) -> None:
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        rec = np.concatenate([labels[:, None], images(n).reshape(n, -1)], axis=1)
        (out / name).write_bytes(rec.tobytes())

    per = n_train // 5
    for i in range(1, 6):
        write(f"data_batch_{i}.bin", per)
    write("test_batch.bin", n_test)


class StepClock(Reporter):
    def __init__(self):
        self.stamps: list[tuple[int, float]] = []

    def update(self, record):
        self.stamps.append((record["step"], time.perf_counter()))


def flops_per_step(cfg, device: torch.device) -> float:
    """Model + objective FLOPs of one training step (forward and backward) on one batch."""
    from torch.utils.flop_counter import FlopCounterMode

    data = cfg.data.build(cfg.seed, device)
    model = cfg.model.build(data.shape).to(device)
    objective = Objective(cfg.objective, cfg.prior.build(cfg.model.latent_dim, device), n_data=data.n_train)
    batch = data.train_batch(0, cfg.train.batch_size)
    x = batch.images
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        enc, logits = model(x)
        objective(batch, enc, logits, step_generator(0, 0, device))["loss"].backward()
    return float(counter.get_total_flops())


def time_steps(cfg, device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per step between the first logged step after `warmup` and the last."""
    clock = StepClock()
    run = cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"steps": warmup + steps, "epochs": None, "log_every": 1, "eval_every": 10**9, "save_every": 10**9}
    )})  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        train(run, Path(d), device, clock)
    stamps = [(s, t) for s, t in clock.stamps if s >= warmup]
    (s0, t0), (s1, t1) = stamps[0], stamps[-1]
    return (t1 - t0) / (s1 - s0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cifar-mmd-gaussian")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's full-budget batch (512)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--full-run", action="store_true", help="then train the whole full budget and report it")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--n-train", type=int, default=50_000)
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as root:
        write_fake_cifar(Path(root), n_train=args.n_train, n_test=min(10_000, max(args.n_train // 5, 500)))
        overrides = [f"data.root={root}"] + ([f"train.batch_size={args.batch}"] if args.batch else [])
        base = load_config(preset=args.preset, overrides=overrides, budget="full")

        def with_train(cfg, **update):
            return cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})

        main_precision = "bf16" if device.type == "cuda" else "fp32"
        variants = {main_precision: with_train(base, precision=main_precision)}
        if device.type == "cuda":
            variants["fp32"] = with_train(base, precision="fp32")
        if args.compile:
            variants[f"{main_precision}+compile"] = with_train(base, precision=main_precision, compile=True)
        secs: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):
            for name, cfg in variants.items():
                secs[name].append(time_steps(cfg, device, args.steps, args.warmup))
        per_step = {k: float(np.median(v)) for k, v in secs.items()}
        flops = flops_per_step(base, device)
        name = environment()["device"]
        peak = args.peak_tflops or (peak_tflops(name) if device.type == "cuda" else None)
        bs = base.train.batch_size
        result: dict = {
            "environment": environment(),
            "preset": args.preset,
            "batch": bs,
            "model_gflops_per_step": flops / 1e9,
            "peak_bf16_tflops": peak,
            "variants": {
                k: {
                    "ms_per_step": 1e3 * s,
                    "images_per_s": bs / s,
                    "achieved_tflops": flops / s / 1e12,
                    "fraction_of_peak": (flops / s / 1e12 / peak) if peak else None,
                }
                for k, s in per_step.items()
            },
        }
        if "fp32" in per_step and "bf16" in per_step:
            result["bf16_speedup_over_fp32"] = per_step["fp32"] / per_step["bf16"]
        steps_full = base.train.total_steps(50_000)
        fastest = min(per_step.values())
        result["full_protocol_steps"] = steps_full
        result["full_protocol_minutes_projected"] = steps_full * fastest / 60
        if args.full_run:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as d:
                last = train(base, Path(d), device, Reporter())
            result["full_run"] = {"minutes": (time.perf_counter() - t0) / 60, "steps": last.step,
                                  "last_eval": last.last_eval}  # fmt: skip
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
