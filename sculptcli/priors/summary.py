"""Helpers behind `sculpt prior`: pick a prior's dimension, draw a seeded sample, summarise it per dimension,
and lay out where each block of a product sits in the latent vector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sculptcli.errors import UserError
from sculptcli.lazy import lazy
from sculptcli.priors.base import PriorSpec

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import Tensor
else:
    np = lazy("numpy")
    torch = lazy("torch")

QUANTILES = (0.02, 0.25, 0.5, 0.75, 0.98)


def own_dim(prior: PriorSpec) -> int | None:
    """The dimension count the spec fixes by itself (an mvn's, a product's, or `dims`), else None (a 1-D prior)."""
    return prior.event_dim() or prior.dims


def resolve_dim(prior: PriorSpec, dim: int | None, default: int | None = None) -> int:
    """The latent size to sample: `dim` if given (checked against the spec), else the spec's own, else `default`.

    UserError when the spec cannot cover `dim`, or when nothing fixes the size."""
    own = own_dim(prior)
    if dim is None:
        if own is not None:
            return own
        if default is None:
            raise UserError(
                f"this {prior.type} prior is 1-D (i.i.d. over any number of dimensions), so the dimension is open",
                fix="give --dim D",
            )
        return default
    if dim < 1:
        raise UserError(f"--dim must be at least 1, got {dim}")
    try:
        prior.check_dim(dim)
    except ValueError as e:
        raise UserError(str(e), fix=f"drop --dim (this prior covers {own} dims) or give --dim {own}") from None
    return dim


def draw(prior: PriorSpec, n: int, dim: int, seed: int = 0, generator: torch.Generator | None = None) -> Tensor:
    """(n, dim) float32 samples on the CPU, reproducible from `seed` (or drawn from `generator`)."""
    if n < 1:
        raise UserError(f"the sample size must be at least 1, got {n}")
    gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(seed)
    return prior.build(dim, "cpu").sample(n, gen).float()


@dataclass
class DimStats:
    dim: int
    mean: float
    std: float
    quantiles: dict[float, float]


def dim_stats(samples: Tensor | np.ndarray, quantiles: tuple[float, ...] = QUANTILES) -> list[DimStats]:
    """Per-dimension mean, std (ddof 1 when n > 1) and quantiles of an (n, d) sample."""
    if isinstance(samples, torch.Tensor):
        x = samples.detach().cpu().double().numpy()
    else:
        x = np.asarray(samples, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    mean = x.mean(0)
    std = x.std(0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1])
    qs = np.quantile(x, quantiles, axis=0)
    return [
        DimStats(j, float(mean[j]), float(std[j]), {q: float(qs[i, j]) for i, q in enumerate(quantiles)})
        for j in range(x.shape[1])
    ]


@dataclass
class Block:
    """One node of a spec's layout: the spec, the half-open range [start, stop) of latent dims it covers,
    its own parameters, and (for a product) its blocks."""

    spec: PriorSpec
    start: int
    stop: int
    params: dict[str, Any] = field(default_factory=dict)
    children: list[Block] = field(default_factory=list)

    def span(self) -> str:
        return f"dim {self.start}" if self.stop - self.start == 1 else f"dims {self.start}-{self.stop - 1}"


def layout(prior: PriorSpec, dim: int, start: int = 0) -> Block:
    """Where each (nested) block of `prior` sits when it covers `dim` dims starting at `start`."""
    params = prior.model_dump(exclude={"type", "dims", "blocks"}, exclude_none=True)
    node = Block(prior, start, start + dim, params)
    blocks = getattr(prior, "blocks", None)
    if blocks is not None and hasattr(prior, "block_dims"):
        at = start
        for b, k in zip(blocks, prior.block_dims(), strict=True):
            node.children.append(layout(b, k, at))
            at += k
    return node
