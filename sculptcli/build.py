"""The build station (its first part): turning a config's prior into a sampler the engine uses.

Training, scoring, traversal, latent copying and the Python API all build priors here. An `empirical` prior that
reads a checkpoint gets that checkpoint's codes first (`resolve_prior_codes`), so priors import nothing of models,
data or checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
            from sculptcli.run import checkpoint_codes  # (torch) only when a prior reads a checkpoint

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
