"""`sculpt train`: preset or YAML + overrides -> a run directory with config, metrics, checkpoints and scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    resume: bool = typer.Option(
        False,
        "--resume",
        help="continue the run in --out (default: runs/latest); `--resume auto` continues it when it has a "
        "checkpoint and starts it otherwise (one command line for a requeued job)",
    ),
    no_score: bool = typer.Option(False, "--no-score", help="skip the final held-out scoring"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no dashboard or log lines"),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="where the dataset's files are (mnist, cifar10, tinyimagenet; sets data.root)"
    ),
    download: bool = typer.Option(
        False, "--download", help="fetch the dataset into --data-dir if it is missing (the only network use)"
    ),
    seeds: int = typer.Option(
        1, "--seeds", min=1, help="train this many runs with seeds seed, seed+1, … (into <out>/seed-<s>)"
    ),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="processes (one per GPU) for DistributedDataParallel, launched with torchrun"
    ),
):
    """Train an autoencoder whose latent distribution is sculpted toward the declared prior.

    Extra arguments are key=value overrides of the config, e.g. `train.lr=1e-3 model.latent_dim=8`.
    """
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        _launch_torchrun(nproc)
    from sculptcli.checkpoint import load_checkpoint
    from sculptcli.config import load_config, read_yaml, validate_config
    from sculptcli.errors import UserError
    from sculptcli.rundir import abandon, claim_run_dir, point_latest, previous_latest
    from sculptcli.training.distributed import from_env
    from sculptcli.training.report import make_reporter
    from sculptcli.training.trainer import resolve_device
    from sculptcli.training.trainer import train as run_training

    words = list(ctx.args)
    auto = resume and "auto" in words  # `--resume auto`: the word arrives among the extra arguments
    if auto:
        words.remove("auto")
        ctx.args = words
    mode = "auto" if auto else "resume" if resume else "new"
    overrides = overrides_from(ctx, "train")
    requested = resolve_device(device)
    dist = from_env(requested)
    dev = dist.device(requested)
    if not dist.main:
        quiet, no_score = True, True
    data_overrides = ([f"data.root={data_dir}"] if data_dir is not None else []) + (
        ["data.download=true"] if download else []
    )
    if dist.enabled and seeds > 1:
        dist.close()
        raise UserError("--seeds and --nproc do not combine", fix="loop over --seed with one --nproc run per seed")
    if mode != "new" and seeds > 1:
        raise UserError("--resume continues one run", fix="resume each seed's run directory with its own --out")
    if mode == "resume" and (preset or config or overrides or data_overrides or seed is not None or budget):
        raise UserError(
            "--resume continues a run with its own config",
            fix="give only --out (and optionally --max-steps); start a new run to change the config, or use "
            "--resume auto with the run's full command line",
        )
    if mode == "auto" and out is None:
        raise UserError("--resume auto needs --out", fix="name the run directory the requeued job continues")

    def with_steps(c):
        if max_steps is None:
            return c
        train_part = {**c.train.model_dump(mode="json"), "steps": max_steps, "epochs": None}
        return validate_config({**c.model_dump(mode="json"), "train": train_part}, str(out or "the run"))

    cfg = None
    if mode != "resume":
        extra = ([f"seed={seed}"] if seed is not None else []) + (
            [f"train.steps={max_steps}", "train.epochs=null"] if max_steps is not None else []
        )
        cfg = load_config(preset, config, overrides + extra, budget, device_is_cuda=dev.type == "cuda")
        if data_overrides:
            _check_data_flags(cfg, data_dir, download)
            cfg = load_config(
                preset, config, overrides + extra + data_overrides, budget, device_is_cuda=dev.type == "cuda"
            )
        if seeds > 1:
            _train_seeds(cfg, out, seeds, dev, quiet, no_score)
            return
    claim = claim_run_dir(cfg.name or "run" if cfg else "", out, mode) if dist.main else None
    try:
        run_dir = dist.broadcast(claim.path if claim else None)
        resuming = dist.broadcast(claim.resume if claim else None)
        if resuming:
            saved = load_checkpoint(run_dir / "last.safetensors").config
            if cfg is not None and _comparable(cfg) != _comparable(saved):
                raise UserError(
                    f"the run in {run_dir} was started with another config",
                    fix="give the command line that started it, or another --out for a new run",
                )
            cfg = with_steps(saved)
        elif cfg is None:  # --resume of a run that never saved a checkpoint: start it again from its config
            cfg = with_steps(validate_config(read_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml")))
        if claim and not quiet:
            for note in claim.notes:
                console.print(f"note: {note}")
        if resuming and max_steps is not None and dist.main:
            from sculptcli.io import atomic_write_text

            atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        before = previous_latest()
        if (out is None or not resuming) and dist.main:
            point_latest(run_dir)
        try:
            result = run_training(cfg, run_dir, dev, make_reporter(quiet), resume=resuming, dist=dist)
        except UserError:
            if not resuming and dist.main:  # e.g. missing data: leave no empty run behind
                claim.release()
                abandon(run_dir, before)
            raise
        finally:
            dist.close()
        if result.interrupted:
            raise typer.Exit(130)
        _finish(cfg, run_dir, dev, quiet, no_score)
    finally:
        if claim:
            claim.release()


def _comparable(cfg) -> dict:
    """What must agree for `--resume auto` to continue a run: the config without its length (steps may grow)."""
    d = cfg.model_dump(mode="json", exclude={"budgets"})
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("steps", "epochs")}
    return d


def _finish(cfg, run_dir: Path, dev, quiet: bool, no_score: bool) -> None:
    """Score the finished run on held-out data (scores.json) and say where it is."""
    if not no_score:
        from sculptcli.checkpoint import load_checkpoint as load
        from sculptcli.io import atomic_write_text
        from sculptcli.scoring import checkpoint_input, checkpoint_source, run_metrics

        ckpt = load(run_dir / "last.safetensors")
        inp = checkpoint_input(
            ckpt, cfg.score.n, dev, cfg.seed, {"probes": cfg.score.probes, "test_frac": cfg.score.test_frac}
        )
        from sculptcli.scoring import ProgressLine

        report = run_metrics(inp, cfg.score.metrics, progress=None if quiet else ProgressLine())
        report["settings"].update(checkpoint_source(ckpt))
        atomic_write_text(run_dir / "scores.json", json.dumps(report, indent=2))
        if not quiet:
            from sculptcli.cli.score import render_report

            render_report(report, title=f"held-out scores · {run_dir}")
    if not quiet:
        console.print(f"run directory: [bold]{run_dir}[/]" if is_tty() else f"run directory: {run_dir}")


def _check_data_flags(cfg, data_dir: Path | None, download: bool) -> None:
    from sculptcli.errors import UserError

    fields = type(cfg.data).model_fields
    for flag, key, given in (("--data-dir", "root", data_dir is not None), ("--download", "download", download)):
        if given and key not in fields:
            raise UserError(
                f"{flag} does not apply to the '{cfg.data.type}' dataset (it reads no downloadable files)",
                fix="drop the flag; it is for mnist, cifar10 and tinyimagenet",
            )


def _train_seeds(cfg, out: Path | None, seeds: int, dev, quiet: bool, no_score: bool) -> None:
    """`--seeds N`: N independent runs of one config, seeds cfg.seed … cfg.seed+N−1, under one parent directory."""
    from sculptcli.config import validate_config
    from sculptcli.errors import UserError
    from sculptcli.rundir import abandon, claim_run_dir, new_run_dir, point_latest, previous_latest
    from sculptcli.training.report import make_reporter
    from sculptcli.training.trainer import train as run_training

    parent = new_run_dir(cfg.name or "run", out)
    for s in range(cfg.seed, cfg.seed + seeds):
        one = validate_config({**cfg.model_dump(mode="json"), "seed": s}, "--seeds")
        claim = claim_run_dir("", Path(parent) / f"seed-{s}", "new")
        run_dir = claim.path
        before = previous_latest()
        point_latest(run_dir)
        if not quiet:
            console.print(f"seed {s} ({s - cfg.seed + 1}/{seeds}) → {run_dir}")
        try:
            result = run_training(one, run_dir, dev, make_reporter(quiet))
            if result.interrupted:
                raise typer.Exit(130)
            _finish(one, run_dir, dev, quiet, no_score)
        except UserError:
            claim.release()
            abandon(run_dir, before)
            raise
        finally:
            claim.release()
    if not quiet:
        console.print(f"{seeds} runs in {parent}; compare them with `sculpt compare {parent}`")


def _launch_torchrun(nproc: int) -> None:
    """Re-run this command under torchrun with `nproc` processes (and without --nproc), then exit with its code."""
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        args.append(a)
    if "train" not in args:  # called from Python (not the `sculpt` command line): nothing to re-run
        from sculptcli.errors import UserError

        raise UserError("--nproc re-runs the `sculpt train` command line under torchrun", fix="run it from a shell")
    args = args[args.index("train") :]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += ["-m", "sculptcli", *args]
    raise typer.Exit(subprocess.call(cmd))
