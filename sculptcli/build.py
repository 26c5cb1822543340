"""The build station: a run config turned into what the engine uses — data, model, prior, objective, optimizer
(`build_run`, after every preflight check) — and priors on their own (`build_prior`).

Training, scoring, traversal, latent copying and the Python API all build priors here. An `empirical` prior that
reads a checkpoint gets that checkpoint's codes first (`resolve_prior_codes`), so priors import nothing of models,
data or checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sculptcli.errors import UserError

if TYPE_CHECKING:  # validating a prior file (`sculpt prior validate`) imports no torch
    import torch
    from torch import Tensor

_CHECKPOINT_CODES: dict[tuple, Tensor] = {}  # (checkpoint, mtime, n) -> its codes (CPU), once per process


def resolve_prior_codes(spec, device: torch.device | str = "cpu"):
    """Encode, once per process, the codes of every `empirical` prior in `spec` that reads a checkpoint, and hand
    them to it: the step that lets priors import nothing of models, data or checkpoints. Returns `spec`."""
    from sculptcli.priors.codependent import DEFAULT_CHECKPOINT_N

    for prior in spec.walk():
        if getattr(prior, "needs_codes", lambda: False)():
            from sculptcli.codes import checkpoint_codes  # (torch) only when a prior reads a checkpoint

            n = prior.n or DEFAULT_CHECKPOINT_N
            key = (str(prior.checkpoint), Path(prior.checkpoint).stat().st_mtime_ns, n)
            if key not in _CHECKPOINT_CODES:
                _CHECKPOINT_CODES[key] = checkpoint_codes(prior.checkpoint, n, device).cpu()
            prior.use_codes(_CHECKPOINT_CODES[key])
    return spec


def build_prior(spec, dim: int, device: torch.device | str = "cpu", data=None):
    """`spec.build(dim, device, data)` after its checkpoint codes (if any) are resolved: how the engine builds
    priors. A conditional prior needs `data` (the built dataset, for its factors); a UserError says so."""
    resolve_prior_codes(spec, device)
    try:
        return spec.build(dim, device, data)
    except ValueError as e:
        if not spec.needs_factors:
            raise
        names = getattr(data, "factor_names", None)
        fix = (
            f"prior.factors takes factor names ({', '.join(names)}) or column indices"
            if names
            else "use a dataset with known factors (dsprites, xy, galaxy, a tensor file with 'factors')"
        )
        raise UserError(f"prior: {e}", fix=fix) from None


@dataclass
class Built:
    """Everything a training run is made of, built from its config in a fixed order (the seed drives it all)."""

    data: Any
    model: torch.nn.Module  # the autoencoder, on the device
    forward: Callable[..., Any]  # what a step calls: the model, under DDP and torch.compile when asked
    prior: Any  # the prior's sampler, on the device
    objective: Any  # sculptcli.objectives.Objective
    optimizer: torch.optim.Optimizer
    total: int  # optimizer steps of the whole run
    batch_size: int  # the global batch
    shard: slice  # this process's share of each global batch
    use_bf16: bool  # bf16 autocast (train.precision resolved on this device)
    notes: list[str]  # what the preflight fitted to the data (held-out sizes a preset set, shrunk), said at start


def build_run(cfg, device: torch.device, dist) -> Built:
    """Build data, model, prior, objective and optimizer from a run config on `device`, after every preflight
    check: sizes against the data and the memory, the batch against the data and the processes (UserError, exit 2).
    The global seed is set first, so the model's initial weights follow `cfg.seed`."""
    import torch

    from sculptcli.objectives import Objective
    from sculptcli.optim import make_optimizer
    from sculptcli.precision import bf16_autocast
    from sculptcli.preflight import check_run, check_world

    torch.manual_seed(cfg.seed)
    use_bf16 = bf16_autocast(cfg.train.precision, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    data = cfg.data.build(cfg.seed, device)
    notes = check_run(cfg, data, device)  # every size against the data and the memory, before allocating
    model = place_model(cfg.model.build(data.shape), device)
    prior = build_prior(cfg.prior, cfg.model.latent_dim, device, data)
    objective = Objective(
        cfg.objective, prior, n_data=data.n_train, latent_dim=cfg.model.latent_dim, gather=dist.gather
    )
    optimizer = make_optimizer(cfg.train, model)
    bs = cfg.train.batch_size
    check_world(bs, dist.world)
    net: torch.nn.Module = model
    if dist.enabled:
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    forward = torch.compile(net) if cfg.train.compile else net
    shard = slice(dist.rank * bs // dist.world, (dist.rank + 1) * bs // dist.world)
    total = cfg.train.total_steps(data.n_train)
    return Built(data, model, forward, prior, objective, optimizer, total, bs, shard, use_bf16, notes)


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` on the training device; on CUDA in channels_last too, in one conversion."""
    import torch

    if device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)
