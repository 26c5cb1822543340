"""`sculpt train`: preset or YAML + overrides -> a run directory with config, metrics, checkpoints and scores."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sculptcli.cli.common import console, is_tty, overrides_from, user_errors


@user_errors
def train(
    ctx: typer.Context,
    preset: str = typer.Option(None, "--preset", "-p", help="a packaged preset (see `sculpt presets list`)"),
    config: Path = typer.Option(None, "--config", "-c", help="a YAML config file"),
    out: Path = typer.Option(None, "--out", "-o", help="run directory (default runs/<name>/<timestamp>)"),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="total optimizer steps (overrides the budget)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    seed: int = typer.Option(None, "--seed", min=0, help="the one seed behind everything"),
    budget: str = typer.Option(
        None, "--budget", help="a budget of the preset: quick or full (default: full on CUDA, quick on CPU)"
    ),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out (default: runs/latest)"),
    no_score: bool = typer.Option(False, "--no-score", help="skip the final held-out scoring"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no dashboard or log lines"),
):
    """Train an autoencoder whose latent distribution is sculpted toward the declared prior.

    Extra arguments are key=value overrides of the config, e.g. `train.lr=1e-3 model.latent_dim=8`.
    """
    from sculptcli.checkpoint import load_checkpoint
    from sculptcli.config import load_config, validate_config
    from sculptcli.errors import UserError
    from sculptcli.rundir import new_run_dir, point_latest
    from sculptcli.training.report import make_reporter
    from sculptcli.training.trainer import resolve_device
    from sculptcli.training.trainer import train as run_training

    overrides = overrides_from(ctx, "train")
    dev = resolve_device(device)
    if resume:
        if preset or config or overrides or seed is not None or budget:
            raise UserError(
                "--resume continues a run with its own config",
                fix="give only --out (and optionally --max-steps); start a new run to change the config",
            )
        run_dir = new_run_dir("", out, resume=True)
        cfg = load_checkpoint(run_dir / "last.safetensors").config
        if max_steps is not None:
            cfg = validate_config(
                {
                    **cfg.model_dump(mode="json"),
                    "train": {**cfg.train.model_dump(mode="json"), "steps": max_steps, "epochs": None},
                },
                str(run_dir),
            )
    else:
        extra = ([f"seed={seed}"] if seed is not None else []) + (
            [f"train.steps={max_steps}", "train.epochs=null"] if max_steps is not None else []
        )
        cfg = load_config(preset, config, overrides + extra, budget, device_is_cuda=dev.type == "cuda")
        run_dir = new_run_dir(cfg.name or "run", out, resume=False)
    if resume and max_steps is not None:
        from sculptcli.io import atomic_write_text

        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    if out is None or not resume:
        point_latest(run_dir)

    result = run_training(cfg, run_dir, dev, make_reporter(quiet), resume=resume)
    if result.interrupted:
        raise typer.Exit(130)

    if not no_score:
        from sculptcli.checkpoint import load_checkpoint as load
        from sculptcli.io import atomic_write_text
        from sculptcli.scoring import DEFAULT_METRICS, checkpoint_input, run_metrics

        ckpt = load(run_dir / "last.safetensors")
        inp = checkpoint_input(
            ckpt, cfg.score.n, dev, cfg.seed, {"probes": cfg.score.probes, "test_frac": cfg.score.test_frac}
        )
        report = run_metrics(inp, DEFAULT_METRICS)
        report["settings"]["checkpoint"] = str(ckpt.path)
        report["settings"]["step"] = ckpt.step
        atomic_write_text(run_dir / "scores.json", json.dumps(report, indent=2))
        if not quiet:
            from sculptcli.cli.score import render_report

            render_report(report, title=f"held-out scores · {run_dir}")
    if not quiet:
        console.print(f"run directory: [bold]{run_dir}[/]" if is_tty() else f"run directory: {run_dir}")
