"""How the aggregate posterior compares with the prior and with independence: MMD², covariance ratio."""

from __future__ import annotations

import torch
from torch import Tensor

from sculptcli.stats.mmd import mmd2


def cov_ratio(z: Tensor) -> float:
    """Σ diag(Cov z) / Σ |offdiag(Cov z)| — the paper's covariance ratio (higher = more diagonal)."""
    c = torch.cov(z.double().T)
    if c.ndim == 0:
        return float("inf")
    off = c.abs().sum() - c.diagonal().abs().sum()
    return float(c.diagonal().sum() / off) if off > 0 else float("inf")


def subsample(z: Tensor, n: int, seed: int) -> Tensor:
    if len(z) <= n:
        return z
    g = torch.Generator().manual_seed(seed)
    return z[torch.randperm(len(z), generator=g)[:n]]


def mmd2_to_prior(z: Tensor, prior, n: int = 5000, seed: int = 0) -> float:
    """Biased MMD² (the paper's kernel) between up to n codes and as many prior samples."""
    zs = subsample(z.float().cpu(), n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    p = prior.to("cpu").sample(len(zs), g)
    return float(mmd2(zs, p))
