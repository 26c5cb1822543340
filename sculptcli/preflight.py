"""Checks before anything is allocated or written: the run's sizes against its data and the machine's memory."""

from __future__ import annotations

import os

import torch

from sculptcli.config import MAX_STEPS, RunConfig
from sculptcli.data.heldout import heldout_size
from sculptcli.errors import UserError

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


def check_run(cfg: RunConfig, data, device: torch.device) -> None:
    """UserError (exit 2) when the run cannot work on this data or machine, naming the key and the fix."""
    held = n_heldout(data)
    heldout_size(cfg.train, "eval_n", held)
    heldout_size(cfg.score, "n", held)
    params = model_parameters(cfg, data.shape)
    need, have = params * BYTES_PER_PARAM, available_memory(device)
    if need > have:
        raise UserError(
            f"model: {params:,} parameters: training needs about {need / 2**30:.1f} GiB, "
            f"{have / 2**30:.1f} GiB are available on {device}",
            fix="make the model smaller (model.fc_hidden, model.width, model.max_width, model.latent_dim)",
        )
    total = cfg.train.total_steps(data.n_train)
    if total > MAX_STEPS:
        raise UserError(
            f"{'train.epochs' if cfg.train.epochs is not None else 'train.steps'} gives {total:,} optimizer steps, "
            f"beyond the {MAX_STEPS:,} sculpt accepts",
            fix="give a budget in steps or epochs you can wait for",
        )


def check_batch(batch_size: int, n_train: int, world: int) -> None:
    """UserError when the global batch does not fit the training split or does not split over the processes."""
    if batch_size > n_train:
        raise UserError(
            f"train.batch_size {batch_size} is larger than the {n_train} training images",
            fix=f"set train.batch_size={max(1, n_train // 4)} or smaller, or add data",
        )
    if batch_size % world:
        raise UserError(
            f"train.batch_size {batch_size} is not divisible by the {world} processes",
            fix="choose a batch size that is a multiple of --nproc",
        )
