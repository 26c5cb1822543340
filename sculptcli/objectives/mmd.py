"""Maximum Mean Discrepancy between two samples: kernels, bandwidth and estimators."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def pairwise_sq_dists(a: Tensor) -> Tensor:
    """Squared Euclidean distances between all rows of `a` (n, d) -> (n, n), exact zeros on the diagonal."""
    sq = (a * a).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)).clamp_min_(0.0)
    return d2.fill_diagonal_(0.0)


def median_bandwidth(d2: Tensor) -> Tensor:
    """Median of the off-diagonal pairwise distances (not squared), detached from the graph."""
    with torch.no_grad():
        n = d2.shape[0]
        iu = torch.triu_indices(n, n, offset=1, device=d2.device)
        return d2[iu[0], iu[1]].median().sqrt().clamp_min(1e-6)


def kernel_matrix(d2: Tensor, sigma: Tensor | float, kernel: str, scales: Sequence[float]) -> Tensor:
    """Sum over scales s of k_{s*sigma}(d2). rbf: exp(-d²/(2h²)); imq: h²/(h²+d²)."""
    k = torch.zeros_like(d2)
    for s in scales:
        h2 = (s * sigma) ** 2
        if kernel == "rbf":
            k = k + torch.exp(-d2 / (2.0 * h2))
        elif kernel == "imq":
            k = k + h2 / (h2 + d2)
        else:
            raise ValueError(f"unknown kernel {kernel!r} (rbf or imq)")
    return k


def mmd2(
    x: Tensor,
    y: Tensor,
    *,
    kernel: str = "rbf",
    scales: Sequence[float] = (0.5, 1.0, 2.0),
    bandwidth: str | float = "median",
    estimator: str = "biased",
) -> Tensor:
    """MMD² between samples x (n, d) and y (m, d), computed in float32.

    Default: the paper's kernel — a sum of Gaussian RBFs at 0.5, 1 and 2 times the median pairwise
    distance of the pooled sample (detached) — and the biased V-statistic
    mean(Kxx) + mean(Kyy) - 2 mean(Kxy). `estimator="unbiased"` drops the diagonals (U-statistic).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd2 needs two (n, d) samples of equal d, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = x.shape[0], y.shape[0]
    pooled = torch.cat([x.float(), y.float()], 0)
    d2 = pairwise_sq_dists(pooled)
    sigma = median_bandwidth(d2) if bandwidth == "median" else float(bandwidth)
    k = kernel_matrix(d2, sigma, kernel, scales)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    if estimator == "biased":
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    if estimator == "unbiased":
        if n < 2 or m < 2:
            raise ValueError("the unbiased estimator needs at least 2 samples on each side")
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        return sxx + syy - 2.0 * kxy.mean()
    raise ValueError(f"unknown estimator {estimator!r} (biased or unbiased)")


def mmd_permutation_test(x: Tensor, y: Tensor, *, permutations: int = 200, seed: int = 0, **kw) -> tuple[float, float]:
    """(MMD², p-value) of a permutation two-sample test with the bandwidth fixed from the pooled sample."""
    n = x.shape[0]
    pooled = torch.cat([x.float(), y.float()], 0)
    d2 = pairwise_sq_dists(pooled)
    sigma = median_bandwidth(d2) if kw.get("bandwidth", "median") == "median" else float(kw["bandwidth"])
    k = kernel_matrix(d2, sigma, kw.get("kernel", "rbf"), kw.get("scales", (0.5, 1.0, 2.0)))
    total = n + y.shape[0]
    g = torch.Generator(device="cpu").manual_seed(seed)
    perms = torch.stack([torch.arange(total)] + [torch.randperm(total, generator=g) for _ in range(permutations)])
    perms = perms.to(k.device)
    # the first n positions of each permuted order form the x side: weight +1/n, the rest -1/m;
    # scatter those weights back to the original indices (row 0 is the observed split)
    pos_w = torch.where(torch.arange(total, device=k.device) < n, 1.0 / n, -1.0 / (total - n))
    side = torch.empty(perms.shape, device=k.device).scatter_(1, perms, pos_w.expand(perms.shape).contiguous())
    stats = torch.einsum("pi,ij,pj->p", side, k, side)
    observed = stats[0]
    p = (1 + (stats[1:] >= observed).sum().item()) / (permutations + 1)
    return float(observed), float(p)
