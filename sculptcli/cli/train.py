"""`sculpt train`: preset or YAML + overrides -> a run directory with config, metrics, checkpoints and scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

from sculptcli.cli.common import console, is_tty, overrides_from, user_errors
from sculptcli.trackers import TRACKERS

LOGGER_HELP = (
    f"an experiment tracker beside metrics.jsonl, repeatable: {', '.join(TRACKERS)} (offline, inside the run "
    "directory, unless MLFLOW_TRACKING_URI or WANDB_MODE say otherwise)"
)


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
    data: Path = typer.Option(
        None,
        "--data",
        help="your data for the recipe: a .safetensors/.npz tensor file (data.type=tensor) or a folder of images "
        "(data.type=folder); the preset's own data keys are left out",
    ),
    logger: list[str] = typer.Option(
        None,
        "--logger",
        help=LOGGER_HELP,
    ),
):
    """Train an autoencoder whose latent distribution is sculpted toward the declared prior.

    Extra arguments are key=value overrides of the config, e.g. `train.lr=1e-3 model.latent_dim=8`.
    """
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        _launch_torchrun(nproc)
    from sculptcli.config import load_config
    from sculptcli.device import resolve_device
    from sculptcli.errors import UserError
    from sculptcli.training.distributed import from_env
    from sculptcli.training.launch import launch
    from sculptcli.training.report import make_reporter

    words = list(ctx.args)
    auto = resume and "auto" in words  # `--resume auto`: the word arrives among the extra arguments
    if auto:
        words.remove("auto")
        ctx.args = words
    mode = "auto" if auto else "resume" if resume else "new"
    overrides = _data_flag(data) + overrides_from(ctx, "train") + _logger_flag(logger)
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

    cfg = None
    if mode != "resume":
        extra = ([f"seed={seed}"] if seed is not None else []) + (
            [f"train.steps={max_steps}", "train.epochs=null"] if max_steps is not None else []
        )
        notes: list[str] = []
        cfg = load_config(preset, config, overrides + extra, budget, device_is_cuda=dev.type == "cuda", notes=notes)
        if data_overrides:
            _check_data_flags(cfg, data_dir, download)
            notes = []
            cfg = load_config(
                preset, config, overrides + extra + data_overrides, budget, dev.type == "cuda", notes=notes
            )
        if not quiet:
            for note in notes:
                console.print(f"note: {note}", markup=False, highlight=False)
        if seeds > 1:
            _train_seeds(cfg, out, seeds, dev, quiet, no_score)
            return
    try:
        say = (lambda text: None) if quiet else console.print
        run = launch(cfg, out, mode, dev, make_reporter(quiet), dist, max_steps, say=say)
    finally:
        dist.close()
    if run.result.interrupted:
        raise typer.Exit(130)
    _finish(run.cfg, run.run_dir, dev, quiet, no_score)


def _finish(cfg, run_dir: Path, dev, quiet: bool, no_score: bool) -> None:
    """Score the finished run on held-out data (scores.json) and say where it is."""
    if not no_score:
        from sculptcli.run import open_run

        run = open_run(run_dir, "last", dev, trust_code=True)  # the code this command trained
        report = run.score(save=True, progress=not quiet)
        from sculptcli.training.tracking import log_final_scores

        log_final_scores(cfg.train.loggers, run_dir, run.checkpoint.step, report)
        if not quiet:
            from sculptcli.cli.score import render_report

            render_report(report, title=f"held-out scores · {run_dir}")
    if not quiet:
        console.print(f"run directory: [bold]{run_dir}[/]" if is_tty() else f"run directory: {run_dir}")


def _data_flag(data: Path | None) -> list[str]:
    """`--data FILE_OR_DIR` as overrides: a tensor file -> data.type=tensor, a folder -> data.type=folder."""
    if data is None:
        return []
    from sculptcli.errors import UserError

    path = data.expanduser()
    if path.is_dir():
        kind = "folder"
    elif path.is_file() and path.suffix in (".safetensors", ".npz"):
        kind = "tensor"
    elif path.is_file():
        raise UserError(
            f"--data {data}: a '{path.suffix}' file is not a tensor file sculpt reads",
            fix="give a .safetensors or .npz file holding 'images', or a folder of images",
        )
    else:
        raise UserError(f"--data {data}: no such file or folder", fix="check the path")
    return [f"data.type={kind}", f"data.path={json.dumps(str(path.resolve()))}"]


def _logger_flag(names: list[str] | None) -> list[str]:
    """`--logger a --logger b` -> the override train.loggers=[a, b] (after the user's own: the flags win)."""
    return [f"train.loggers={json.dumps(list(dict.fromkeys(names)))}"] if names else []


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
    from sculptcli.rundir import new_run_dir
    from sculptcli.training.launch import launch
    from sculptcli.training.report import make_reporter

    parent = new_run_dir(cfg.name or "run", out)
    for s in range(cfg.seed, cfg.seed + seeds):
        one = validate_config({**cfg.model_dump(mode="json"), "seed": s}, "--seeds")
        one._given = cfg._given  # sizes given on the command line stay strict in every seed's run
        if not quiet:
            console.print(f"seed {s} ({s - cfg.seed + 1}/{seeds}) → {Path(parent) / f'seed-{s}'}")
        run = launch(one, Path(parent) / f"seed-{s}", "new", dev, make_reporter(quiet))
        if run.result.interrupted:
            raise typer.Exit(130)
        _finish(one, run.run_dir, dev, quiet, no_score)
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
