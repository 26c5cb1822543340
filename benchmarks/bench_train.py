"""`sculpt train` steps/s against a bare PyTorch loop of the same model, batch, loss and data.

    python benchmarks/bench_train.py [--preset dsprites-mmd-gaussian] [--batch 64] [--steps 60] [--device auto]

Both run the same number of steps; each is timed from its first logged step to its last (set-up, the
final evaluation and checkpoint excluded), alternating A B A B to spread machine noise. Target: ratio >= 0.95.
Then the periodic held-out evaluation (loss, NMSE, MMD², live LPS with the linear, LightGBM and MLP probes) at the
preset's eval_every and eval_n, as a share of the training time it interrupts. Target: <= 10%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import environment, interleaved, sync
from sculptcli.config import load_config
from sculptcli.objectives import Objective
from sculptcli.stats.mmd import mmd2
from sculptcli.training.evaluate import evaluate
from sculptcli.training.report import Reporter
from sculptcli.training.trainer import bf16_autocast, resolve_device, train


class StepClock(Reporter):
    """Records the wall time of each logged step."""

    def __init__(self):
        self.stamps: list[tuple[int, float]] = []

    def update(self, record):
        self.stamps.append((record["step"], time.perf_counter()))


def sculpt_seconds_per_step(cfg, device) -> float:
    clock = StepClock()
    with tempfile.TemporaryDirectory() as d:
        train(cfg, Path(d), device, clock)
    (s0, t0), (s1, t1) = clock.stamps[0], clock.stamps[-1]
    return (t1 - t0) / (s1 - s0)


def bare_seconds_per_step(cfg, device, warmup: int, steps: int) -> float:
    """The same computation written as a plain loop, with no sculpt machinery around it."""
    torch.manual_seed(cfg.seed)
    data = cfg.data.build(cfg.seed, device)
    model = cfg.model.build(data.shape).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    bf16 = bf16_autocast(cfg.train.precision, device)  # the trainer's own choice (auto: CUDA and bf16-capable CPUs)
    div = cfg.objective.divergence  # the preset's MMD: its weight, kernel scales and prior sample size
    prior_n = div.prior_n or cfg.train.batch_size
    kw = {"kernel": div.kernel, "scales": div.scales, "bandwidth": div.bandwidth, "estimator": div.estimator}
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator(device=device).manual_seed(0)
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            t0 = time.perf_counter()
        x = data.train_batch(step, cfg.train.batch_size).images
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            z = model.encoder(x)
            logits = model.decoder(z)
            recon = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), x)
            prior = torch.randn(prior_n, z.shape[1], generator=g, device=device)
            loss = recon + div.weight * mmd2(z.float(), prior, **kw)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def evaluation_seconds(cfg, device, repeats: int) -> tuple[float, float]:
    """Median seconds of one periodic held-out evaluation (`evaluate`: loss, NMSE, MMD², LPS linear + lgbm + mlp)
    at the config's eval_n, and of its LPS part alone, on an untrained model of the config."""
    torch.manual_seed(cfg.seed)
    data = cfg.data.build(cfg.seed, device)
    model = cfg.model.build(data.shape).to(device)
    model.fit_input_norm(data.train_batch(0, cfg.train.batch_size).images)
    prior = cfg.prior.build(cfg.model.latent_dim, device)
    objective = Objective(cfg.objective, prior, n_data=data.n_train, latent_dim=cfg.model.latent_dim)
    images, _ = data.heldout(cfg.train.eval_n)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rec = evaluate(model, objective, images, prior, cfg.seed, 0)
        runs.append((time.perf_counter() - t0, rec["lps_seconds"]))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def curves_seconds(cfg, repeats: int) -> float:
    """Median seconds of one `curves.png` redraw (what the trainer adds to each held-out evaluation) at the end of
    a run of the config's length: a metrics.jsonl with a record every log_every steps and an evaluation every
    eval_every, the largest file the run redraws from. The first draw (matplotlib's import) is left out."""
    from sculptcli.viz.curves import write_curves

    tr = cfg.train
    steps = tr.steps or 10 * tr.eval_every
    lines = []
    for s in range(tr.log_every, steps + 1, tr.log_every):
        lines.append({"step": s, "loss": 1 / s, "recon": 0.9 / s, "div": 0.1 / s, "img_per_s": 1e3, "time": s})
        if s % tr.eval_every == 0:
            lps = {f"lps_{p}": 0.3 for p in ("linear", "lgbm", "mlp")}
            lines.append({"step": s, "split": "heldout", "nmse_db": -10.0, "mmd2_prior": 1e-3, **lps, "warnings": []})
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        write_curves(Path(d))
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            write_curves(Path(d))
            runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="dsprites-mmd-gaussian")
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's budget for the device")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    log = 10
    overrides = [
        f"train.steps={args.steps + log}",
        "train.epochs=null",
        f"train.log_every={log}",
        f"train.eval_every={10**9}",
        f"train.save_every={10**9}",
        "train.eval_n=200",
    ]
    if args.batch:
        overrides.append(f"train.batch_size={args.batch}")
    cfg = load_config(preset=args.preset, overrides=overrides, device_is_cuda=device.type == "cuda")
    med = interleaved(
        {
            "bare": lambda: bare_seconds_per_step(cfg, device, log, args.steps),
            "sculpt": lambda: sculpt_seconds_per_step(cfg, device),
        },
        args.repeats,
    )
    ratio = med["bare"] / med["sculpt"]
    # the live evaluation at the preset's own eval_every / eval_n, as a share of the training time around it
    eval_cfg = load_config(
        preset=args.preset,
        overrides=[f"train.batch_size={args.batch}"] if args.batch else [],
        device_is_cuda=device.type == "cuda",
    )
    eval_s, lps_s = evaluation_seconds(eval_cfg, device, args.repeats)
    train_s = eval_cfg.train.eval_every * med["sculpt"]
    share = eval_s / (eval_s + train_s)
    curves_s = curves_seconds(eval_cfg, args.repeats)
    curves_share = curves_s / (eval_s + train_s)
    result = {
        "benchmark": "train_step",
        "preset": args.preset,
        "batch": cfg.train.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "bare_steps_per_s": 1 / med["bare"],
        "sculpt_steps_per_s": 1 / med["sculpt"],
        "ratio_sculpt_over_bare": ratio,
        "target": ">= 0.95",
        "eval_every": eval_cfg.train.eval_every,
        "eval_n": eval_cfg.train.eval_n,
        "eval_seconds": eval_s,
        "eval_lps_seconds": lps_s,
        "eval_share_of_training": share,
        "eval_target": "<= 0.10",
        "curves_seconds": curves_s,
        "curves_share_of_training": curves_share,
        **environment(),
    }
    print(
        f"train step ({args.preset}, batch {cfg.train.batch_size}, {device}): bare {1 / med['bare']:.2f} steps/s, "
        f"sculpt {1 / med['sculpt']:.2f} steps/s -> ratio {ratio:.3f} (target >= 0.95)"
    )
    print(
        f"live evaluation (eval_every {eval_cfg.train.eval_every}, {eval_cfg.train.eval_n} held-out images, LPS "
        f"linear+lgbm+mlp): {eval_s:.2f} s each ({lps_s:.2f} s LPS) vs {train_s:.1f} s of training -> "
        f"{100 * share:.1f}% of training time (target <= 10%)"
    )
    print(
        f"curves.png redrawn at each evaluation: {curves_s:.2f} s each -> {100 * curves_share:.2f}% of training time"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
