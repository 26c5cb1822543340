"""Checks before anything is allocated or written: the run's sizes against its data and the machine's memory."""

from __future__ import annotations

import os

import torch

from sculptcli.config import MAX_STEPS, RunConfig
from sculptcli.data.heldout import heldout_size
from sculptcli.errors import UserError
from sculptcli.trackers import require as require_trackers

BYTES_PER_PARAM = 16  # float32 weights, gradients and Adam's two moments


def n_heldout(data) -> int:
    return int(data.heldout_index.numel())


def available_memory(device: torch.device) -> int:
    """Bytes the run may use: free GPU memory on CUDA, else the host's available memory (Linux /proc/meminfo)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def model_parameters(cfg: RunConfig, shape: tuple[int, int, int]) -> int:
    """The parameter count of the config's model, built on the meta device (nothing allocated)."""
    try:
        with torch.device("meta"):
            model = cfg.model.build(shape)
    except ValueError as e:
        raise UserError(f"model: {e}", fix="change model.layers (or the data's pad_to)") from None
    return sum(p.numel() for p in model.parameters())


SIZES = (("train", "eval_n"), ("score", "n"))  # held-out sizes a preset sets for its own (large) data


def fit_sizes(cfg: RunConfig, held: int) -> tuple[list[str], list[UserError]]:
    """Held-out sizes against a split of `held` images: one a preset (or config file) sets shrinks to the split,
    with a note (the run's config.yaml records the new value); one given on the command line stays strict and is
    a problem. Returns (notes, problems)."""
    notes, problems = [], []
    given = getattr(cfg, "_given", set())
    for section, key in SIZES:
        spec = getattr(cfg, section)
        n = getattr(spec, key)
        if n <= held:
            continue
        if f"{section}.{key}" in given:
            try:
                heldout_size(spec, key, held)
            except UserError as e:
                problems.append(e)
            continue
        setattr(spec, key, held)
        notes.append(f"{section}.{key} {n} → {held}: the held-out split has {held} images")
    return notes, problems


def check_run(cfg: RunConfig, data, device: torch.device) -> list[str]:
    """Every reason the run cannot work on this data or machine, in one UserError (exit 2) naming the keys and the
    fixes; else the notes on what was fitted to the data (held-out sizes a preset set, shrunk to a small split)."""
    notes, problems = fit_sizes(cfg, n_heldout(data))
    bs = cfg.train.batch_size
    if bs > data.n_train:
        problems.append(
            UserError(
                f"train.batch_size {bs} is larger than the {data.n_train} training images",
                fix=f"set train.batch_size={max(1, data.n_train // 4)} or smaller, or add data",
            )
        )
    params = None
    try:
        params = model_parameters(cfg, data.shape)
    except UserError as e:
        problems.append(e)
    if params is not None:
        need, have = params * BYTES_PER_PARAM, available_memory(device)
        if need > have:
            problems.append(
                UserError(
                    f"model: {params:,} parameters: training needs about {need / 2**30:.1f} GiB, "
                    f"{have / 2**30:.1f} GiB are available on {device}",
                    fix="make the model smaller (model.fc_hidden, model.width, model.max_width, model.latent_dim)",
                )
            )
    try:
        require_trackers(cfg.train.loggers)
    except UserError as e:
        problems.append(e)
    total = cfg.train.total_steps(data.n_train)
    if total > MAX_STEPS:
        problems.append(
            UserError(
                f"{'train.epochs' if cfg.train.epochs is not None else 'train.steps'} gives {total:,} optimizer "
                f"steps, beyond the {MAX_STEPS:,} sculpt accepts",
                fix="give a budget in steps or epochs you can wait for",
            )
        )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise UserError(
            f"{len(problems)} problems with this run:\n" + "\n".join(f"  - {_line(p)}" for p in problems),
            fix="correct each key above, then run again",
        )
    return notes


def _line(e: UserError) -> str:
    head = f"{e.where}: {e.what}" if e.where else e.what
    return head + (f" (fix: {e.fix})" if e.fix else "")


def check_world(batch_size: int, world: int) -> None:
    """UserError when the global batch does not split evenly over the processes of a distributed run."""
    if batch_size % world:
        raise UserError(
            f"train.batch_size {batch_size} is not divisible by the {world} processes",
            fix="choose a batch size that is a multiple of --nproc",
        )
