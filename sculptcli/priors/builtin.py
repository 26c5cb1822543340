"""The built-in priors: gaussian, uniform, laplace, gmm (1-D mixture), mvn and product (per-dimension blocks)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveFloat, model_validator

from sculptcli.lazy import lazy
from sculptcli.priors import PRIORS
from sculptcli.priors.base import PriorSpec

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")


def _rand(shape, generator, device) -> Tensor:
    return torch.rand(shape, generator=generator, device=device)


def _randn(shape, generator, device) -> Tensor:
    return torch.randn(shape, generator=generator, device=device)


@PRIORS.register
class Gaussian(PriorSpec):
    """Normal distribution N(mean, std²) per dimension."""

    type: Literal["gaussian"] = "gaussian"
    mean: float = 0.0
    std: PositiveFloat = 1.0

    def sample_1d(self, shape, generator, device):
        return _randn(shape, generator, device) * self.std + self.mean


@PRIORS.register
class Uniform(PriorSpec):
    """Uniform distribution on [low, high) per dimension."""

    type: Literal["uniform"] = "uniform"
    low: float = -1.0
    high: float = 1.0

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        return self

    def sample_1d(self, shape, generator, device):
        return _rand(shape, generator, device) * (self.high - self.low) + self.low


@PRIORS.register
class Laplace(PriorSpec):
    """Laplace distribution with location `loc` and scale `scale` per dimension."""

    type: Literal["laplace"] = "laplace"
    loc: float = 0.0
    scale: PositiveFloat = 1.0

    def sample_1d(self, shape, generator, device):
        # inverse CDF on u in (-1/2, 1/2), kept away from the endpoints
        u = _rand(shape, generator, device).clamp(1e-7, 1 - 1e-7) - 0.5
        return self.loc - self.scale * u.sign() * torch.log1p(-2 * u.abs())


@PRIORS.register
class GMM(PriorSpec):
    """1-D Gaussian mixture per dimension: components at `means` with `stds`, mixed by `weights`."""

    type: Literal["gmm"] = "gmm"
    means: list[float] = Field(min_length=1)
    stds: list[PositiveFloat] | PositiveFloat = 1.0
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _consistent(self):
        k = len(self.means)
        if isinstance(self.stds, list) and len(self.stds) != k:
            raise ValueError(f"stds has {len(self.stds)} entries but means has {k}")
        if self.weights is not None:
            if len(self.weights) != k:
                raise ValueError(f"weights has {len(self.weights)} entries but means has {k}")
            if any(w < 0 for w in self.weights):
                raise ValueError("weights must be non-negative")
            if abs(sum(self.weights) - 1.0) > 1e-6:
                raise ValueError(f"weights must sum to 1 (they sum to {sum(self.weights):g})")
        return self

    def component_params(self) -> tuple[list[float], list[float], list[float]]:
        k = len(self.means)
        stds = self.stds if isinstance(self.stds, list) else [self.stds] * k
        weights = self.weights if self.weights is not None else [1.0 / k] * k
        return self.means, stds, weights

    def sample_1d(self, shape, generator, device):
        means, stds, weights = (torch.tensor(v, device=device) for v in self.component_params())
        n = math.prod(shape)
        comp = torch.multinomial(weights, n, replacement=True, generator=generator)
        return (means[comp] + stds[comp] * _randn(n, generator, device)).reshape(shape)


@PRIORS.register
class MVN(PriorSpec):
    """Multivariate normal over len(mean) dimensions with full covariance `cov` (co-dependent)."""

    type: Literal["mvn"] = "mvn"
    mean: list[float] = Field(min_length=1)
    cov: list[list[float]]

    @model_validator(mode="after")
    def _positive_definite(self):
        d = len(self.mean)
        if len(self.cov) != d or any(len(row) != d for row in self.cov):
            raise ValueError(f"cov must be a {d}x{d} matrix to match mean")
        if self.dims is not None and self.dims != d:
            raise ValueError(f"dims is {self.dims} but mean has {d} entries (an mvn covers exactly len(mean) dims)")
        c = torch.tensor(self.cov, dtype=torch.float64)
        if not torch.allclose(c, c.T, atol=1e-8):
            raise ValueError("cov must be symmetric")
        if torch.linalg.cholesky_ex(c).info.item() != 0:
            raise ValueError("cov must be positive definite")
        return self

    def event_dim(self) -> int:
        return len(self.mean)

    def sample(self, n, dim, generator, device):
        chol = torch.linalg.cholesky(torch.tensor(self.cov, dtype=torch.float64)).float().to(device)
        mean = torch.tensor(self.mean, device=device)
        return _randn((n, dim), generator, device) @ chol.T + mean


@PRIORS.register
class Product(PriorSpec):
    """The paper's per-dimension 'hybrid' prior: independent blocks, each a prior over some dimensions."""

    type: Literal["product"] = "product"
    blocks: list[PriorUnion] = Field(min_length=1)  # type: ignore[valid-type]  # noqa: F821

    @model_validator(mode="after")
    def _dims_match_blocks(self):
        if any(b.needs_factors for b in self.blocks):
            raise ValueError("a conditional prior cannot be a product block: use its `rest` for the other dims")
        if self.dims is not None and self.dims != self.event_dim():
            raise ValueError(f"dims is {self.dims} but the blocks cover {self.event_dim()} dims")
        return self

    def block_dims(self) -> list[int]:
        return [b.covered_dims(default=1) for b in self.blocks]

    def event_dim(self) -> int:
        return sum(self.block_dims())

    def sample(self, n, dim, generator, device):
        parts = [b.sample(n, k, generator, device) for b, k in zip(self.blocks, self.block_dims(), strict=True)]
        return torch.cat(parts, dim=1)

    def describe(self) -> str:
        inner = ", ".join(f"{k}×{b.describe()}" for b, k in zip(self.blocks, self.block_dims(), strict=True))
        return f"product[{inner}]"
