"""Degenerate codes: which latent dimensions have collapsed to (nearly) a constant.

A dimension is *collapsed* when its held-out standard deviation is below COLLAPSE_RATIO of the prior's
marginal standard deviation in that dimension (1 when no prior is known), or when it is exactly constant.
Scores of collapsed dimensions are meaningless (a constant is perfectly "unpredictable" by R² conventions), so
every metric is computed on the live dimensions only and reported as null when fewer than two remain.
"""

from __future__ import annotations

import torch
from torch import Tensor

COLLAPSE_RATIO = 1e-3
_PRIOR_N = 20_000  # prior samples drawn to estimate its marginal standard deviations


def prior_std(prior) -> Tensor:
    """Per-dimension standard deviation of the prior (a seeded sample), float64 (dim,)."""
    g = torch.Generator().manual_seed(12345)
    s = prior.to("cpu").sample(_PRIOR_N, g).double()
    return s.std(0)


def collapsed_dims(z: Tensor, prior=None, ratio: float = COLLAPSE_RATIO) -> list[int]:
    """Indices of the dimensions of codes `z` (N, d) that have collapsed (see the module docstring)."""
    z = z.detach().double().cpu()
    if len(z) < 2:
        return []
    std = z.std(0)
    ref = prior_std(prior) if prior is not None else torch.ones(z.shape[1], dtype=torch.float64)
    constant = z.amax(0) == z.amin(0)
    dead = constant | (std < ratio * ref) | ~torch.isfinite(std)
    return [int(i) for i in torch.nonzero(dead).flatten()]
