"""Maximum Mean Discrepancy between two samples: kernels, bandwidth and estimators."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")


# exp(-80) ≈ 1.8e-35 is still a normal float32 and adds nothing next to the O(1) terms of a kernel sum. Below it
# exp lands on denormals, for which the CPU's vectorised exp takes a slow path: without the clamp the fine kernel
# scales (0.1 × the median) made the kernel matrix 5–10× slower on x86. The gradient there is ~1e-35 either way.
MIN_EXPONENT = -80.0


def _sq_dists(sq_a: Tensor, sq_b: Tensor, ab: Tensor) -> Tensor:
    """‖a‖² + ‖b‖² − 2 a·b from the rows' squared norms and their inner products, clamped at 0 (rounding)."""
    return (sq_a[:, None] + sq_b[None, :] - 2.0 * ab).clamp_min(0.0)


def cross_sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances between the rows of `a` (n, d) and of `b` (m, d) -> (n, m)."""
    return _sq_dists((a * a).sum(1), (b * b).sum(1), a @ b.T)


def pairwise_sq_dists(a: Tensor) -> Tensor:
    """Squared Euclidean distances between all rows of `a` (n, d) -> (n, n), exact zeros on the diagonal (one norm
    and one a·aᵀ for both sides, so values and gradients are those of the single-sample formula)."""
    sq = (a * a).sum(1)
    return _sq_dists(sq, sq, a @ a.T).fill_diagonal_(0.0)


def _upper_offsets(n: int, device: torch.device) -> Tensor:
    """Flat indices of the strictly upper triangle of an (n, n) matrix."""
    iu = torch.triu_indices(n, n, offset=1, device=device)
    return iu[0] * n + iu[1]


# training asks for the same few sizes every step (the batch, the prior sample): up to 2,048 rows (16 MB of indices)
_cached_upper_offsets = functools.lru_cache(maxsize=8)(_upper_offsets)


def _upper(d2: Tensor) -> Tensor:
    """The strictly upper triangle of a square matrix, flattened."""
    n = d2.shape[0]
    offsets = (_cached_upper_offsets if n <= 2048 else _upper_offsets)(n, d2.device)
    return d2.reshape(-1).take(offsets)


def median_bandwidth(d2: Tensor) -> Tensor:
    """Median of the off-diagonal pairwise distances (not squared), detached from the graph."""
    with torch.no_grad():
        return _upper(d2).median().sqrt().clamp_min(1e-6)


def pooled_median_bandwidth(dxx: Tensor, dxy: Tensor, dyy: Tensor) -> Tensor:
    """`median_bandwidth` of the pooled sample [x; y] from its three blocks of squared distances, detached: the
    lower median over the pairs within x, within y and across, each once."""
    with torch.no_grad():
        return torch.cat([_upper(dxx), dxy.reshape(-1), _upper(dyy)]).median().sqrt().clamp_min(1e-6)


def kernel_matrix(d2: Tensor, sigma: Tensor | float, kernel: str, scales: Sequence[float]) -> Tensor:
    """Sum over scales s of k_{s*sigma}(d2). rbf: exp(-d²/(2h²)); imq: h²/(h²+d²)."""
    k: Tensor | None = None
    for s in scales:
        h2 = (s * sigma) ** 2
        if kernel == "rbf":
            term = torch.exp((d2 / (-2.0 * h2)).clamp_min(MIN_EXPONENT))
        elif kernel == "imq":
            term = h2 / (h2 + d2)
        else:
            raise ValueError(f"unknown kernel {kernel!r} (rbf or imq)")
        k = term if k is None else k + term
    if k is None:
        raise ValueError("kernel_matrix needs at least one scale")
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

    The three blocks are computed apart, and y's own block outside autograd when y needs no gradient (the
    prior's sample, in training): with a prior sample much larger than the batch (`prior_n`) it dominates the cost.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd2 needs two (n, d) samples of equal d, got {tuple(x.shape)} and {tuple(y.shape)}")
    if estimator not in ("biased", "unbiased"):
        raise ValueError(f"unknown estimator {estimator!r} (biased or unbiased)")
    n, m = x.shape[0], y.shape[0]
    unbiased = estimator == "unbiased"
    if unbiased and (n < 2 or m < 2):
        raise ValueError("the unbiased estimator needs at least 2 samples on each side")
    x, y = x.float(), y.float()
    grad_y = y.requires_grad and torch.is_grad_enabled()
    dxx, dxy = pairwise_sq_dists(x), cross_sq_dists(x, y)
    with torch.set_grad_enabled(grad_y):
        dyy = pairwise_sq_dists(y)
    sigma = pooled_median_bandwidth(dxx, dxy, dyy) if bandwidth == "median" else float(bandwidth)

    def mean_k(d2: Tensor, drop_diag: bool) -> Tensor:
        """Mean of a kernel block, or (the U-statistic) of its off-diagonal entries: k(a, a) = 1 at every scale."""
        total = kernel_matrix(d2, sigma, kernel, scales).sum()
        if not drop_diag:
            return total / d2.numel()
        k = d2.shape[0]
        return (total - k * len(scales)) / (k * (k - 1))

    with torch.set_grad_enabled(grad_y):
        kyy = mean_k(dyy, unbiased)
    return mean_k(dxx, unbiased) + kyy - 2.0 * mean_k(dxy, False)


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
