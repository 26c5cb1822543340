"""Training a run into its directory, written once for `sculpt train` (one run or `--seeds`) and `sculpt.train`:
claim the directory (its lock), decide fresh or resume (a resumed run keeps its own config), point runs/latest,
train, and leave no empty directory behind when a run fails before it trains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sculptcli.checkpoint import load_checkpoint
from sculptcli.config import RunConfig, validate_config
from sculptcli.errors import UserError
from sculptcli.io import atomic_write_text
from sculptcli.rundir import abandon, claim_run_dir, point_latest, previous_latest
from sculptcli.training.distributed import Dist
from sculptcli.training.report import Reporter
from sculptcli.training.trainer import TrainResult, train
from sculptcli.yamlfile import read_yaml


@dataclass
class Launched:
    cfg: RunConfig  # the config the run trained with (a resumed run's own)
    run_dir: Path
    result: TrainResult


def launch(
    cfg: RunConfig | None,
    out: Path | None,
    mode: str,
    device,
    reporter: Reporter,
    dist: Dist | None = None,
    max_steps: int | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> Launched:
    """Train `cfg` into `out` (default runs/<name>/<timestamp>). `mode`: new (a fresh directory), resume (continue
    `out`, or runs/latest, with its own config; `cfg` None) or auto (resume when `out` has a checkpoint, else
    start; `cfg` must then equal the saved config up to its length). `max_steps` lengthens a resumed run."""
    dist = dist or Dist()
    claim = claim_run_dir(cfg.name or "run" if cfg else "", out, mode) if dist.main else None
    try:
        run_dir = dist.broadcast(claim.path if claim else None)
        resuming = dist.broadcast(claim.resume if claim else None)
        cfg = _run_config(cfg, run_dir, resuming, out, max_steps)
        if claim:
            for note in claim.notes:
                say(f"note: {note}")
        if resuming and dist.main:  # the config it goes on with (a longer budget, a requeued job's loggers)
            atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        before = previous_latest()
        if (out is None or not resuming) and dist.main:
            point_latest(run_dir)
        try:
            result = train(cfg, run_dir, device, reporter, resume=resuming, dist=dist)
        except UserError:
            if not resuming and dist.main:  # e.g. missing data: leave no empty run behind
                claim.release()
                abandon(run_dir, before)
            raise
        return Launched(cfg, run_dir, result)
    finally:
        if claim:
            claim.release()


def _run_config(cfg: RunConfig | None, run_dir: Path, resuming: bool, out: Path | None, max_steps: int | None):
    """The config a claimed directory trains with: a resumed run's own (lengthened by `max_steps`), checked
    against `cfg` when one was given (`--resume auto`); a directory with a config and no checkpoint restarts
    from that config."""
    if resuming:
        saved = load_checkpoint(run_dir / "last.safetensors").config
        if cfg is not None and comparable(cfg) != comparable(saved):
            raise UserError(
                f"the run in {run_dir} was started with another config",
                fix="give the command line that started it, or another --out for a new run",
            )
        if cfg is not None and cfg.train.loggers != saved.train.loggers:  # a requeued job's --logger flags count
            saved.train.loggers = list(cfg.train.loggers)
        return with_steps(saved, max_steps, out)
    if cfg is None:  # --resume of a run that never saved a checkpoint: start it again from its config
        return with_steps(validate_config(read_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml")),
                          max_steps, out)  # fmt: skip
    return cfg


def comparable(cfg: RunConfig) -> dict:
    """What must agree for `--resume auto` to continue a run: the config without its length (steps may grow) and
    its trackers (a requeued job may add or drop one: the command line's count from then on)."""
    d = cfg.model_dump(mode="json", exclude={"budgets"})
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("steps", "epochs", "loggers")}
    return d


def with_steps(cfg: RunConfig, max_steps: int | None, out: Path | None) -> RunConfig:
    if max_steps is None:
        return cfg
    train_part = {**cfg.train.model_dump(mode="json"), "steps": max_steps, "epochs": None}
    return validate_config({**cfg.model_dump(mode="json"), "train": train_part}, str(out or "the run"))
