"""The conditional prior: some latent dimensions follow a distribution centred on the batch's known factors.

Aux-VAE's prior (arXiv 2507.00298, its released code): the first k = len(factors) latent dimensions are
auxiliary, z_j | u ~ N(ũ_j, std²) with ũ the chosen factor values min–max scaled to [0, 1] over the training
split (`scale: minmax`; `none` keeps raw values); the remaining dimensions follow `rest` (any prior). The factors
are the batch's (`Batch.factors`), so such a prior needs a dataset that knows them.

Without factors (the aggregate view the metrics take: MMD² to the prior, KS, traversal ranges) the prior is the
mixture ∫ p(z | u) p(u) du, sampled with u drawn from the training split's factors.

With `kl` the divergence is Aux-VAE's closed form (a Gaussian `rest`); with `mmd` sculpt matches joints: each
item's prior draw is taken given its own u, and the MMD compares (z, ũ) of the batch against (z′, ũ) — see
`sculptcli/objectives/divergences.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, PositiveFloat

from sculptcli.lazy import lazy
from sculptcli.priors import PRIORS
from sculptcli.priors.base import PriorSpec, Sampler

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")


@PRIORS.register
class Conditional(PriorSpec):
    """Auxiliary dims N(ũ, std²) given the batch's factors ũ (min–max scaled), the rest another prior."""

    type: Literal["conditional"] = "conditional"
    factors: list[int | str] = Field(
        min_length=1, description="the dataset's factors (names or column indices) the first dims follow, in order"
    )
    std: PositiveFloat = Field(1.0, description="std of each auxiliary dim around its factor (Aux-VAE: 1)")
    scale: Literal["minmax", "none"] = Field("minmax", description="factor scaling: to [0, 1] over the training split")
    rest: PriorUnion = Field(  # type: ignore[valid-type]  # noqa: F821
        default_factory=lambda: PRIORS.get("gaussian")(), description="the prior of the remaining dimensions"
    )

    needs_factors: ClassVar[bool] = True

    @property
    def n_aux(self) -> int:
        return len(self.factors)

    def check_dim(self, dim: int) -> None:
        super().check_dim(dim)
        if dim < self.n_aux:
            raise ValueError(f"{self.n_aux} auxiliary factors need at least {self.n_aux} latent dims, got {dim}")
        if dim > self.n_aux:
            self.rest.check_dim(dim - self.n_aux)

    def columns(self, names: tuple[str, ...] | None, k: int) -> list[int]:
        """The factor columns of a dataset with factor `names` (k columns) this prior follows."""
        out = []
        for f in self.factors:
            if isinstance(f, int):
                if not 0 <= f < k:
                    raise ValueError(f"factor column {f} is out of range: the dataset has {k} factors")
                out.append(f)
            elif names is None or f not in names:
                known = ", ".join(names or ()) or "unnamed"
                raise ValueError(f"unknown factor '{f}': the dataset's factors are {known}")
            else:
                out.append(names.index(f))
        return out

    def build(self, dim: int, device: torch.device | str = "cpu", data=None) -> Sampler:
        """Bound to a dataset (`data`: its factor names and its training split's factors)."""
        self.check_dim(dim)
        if data is None or getattr(data, "factor_names", None) is None:
            raise ValueError("a conditional prior needs a dataset with known factors")
        train = data.train_factors()
        if train is None:
            raise ValueError("a conditional prior needs the training split's factors")
        cols = self.columns(tuple(data.factor_names), train.shape[1])
        return ConditionalSampler(self, dim, torch.device(device), cols, train[:, cols].float())

    def sample(self, n, dim, generator, device):
        raise ValueError("a conditional prior samples through its bound sampler (build it with a dataset)")

    def describe(self) -> str:
        rest = self.rest.describe()
        return f"conditional(N(ũ[{', '.join(map(str, self.factors))}], {self.std:g}²), rest={rest})"


class ConditionalSampler(Sampler):
    """A conditional prior bound to a dataset: the factor columns and the training split's factor table."""

    def __init__(self, spec: Conditional, dim: int, device: torch.device, columns: list[int], train: Tensor):
        super().__init__(spec, dim, device)
        self.columns = columns
        if spec.scale == "minmax":
            self.lo, span = train.amin(0), train.amax(0) - train.amin(0)
            self.span = torch.where(span > 0, span, torch.ones_like(span))
        else:
            self.lo, self.span = torch.zeros(train.shape[1]), torch.ones(train.shape[1])
        self.lo, self.span = self.lo.to(device), self.span.to(device)
        self.table = self.scale(train.to(device))  # ũ of every training item: the aggregate prior's mixture

    def to(self, device: torch.device | str) -> ConditionalSampler:
        other = super().to(device)
        other.lo, other.span, other.table = self.lo.to(device), self.span.to(device), self.table.to(device)
        return other  # type: ignore[return-value]

    def scale(self, factors: Tensor) -> Tensor:
        """ũ of the chosen columns of factor values (B, k_selected), as this prior scales them."""
        return (factors.float() - self.lo) / self.span

    def select(self, factors: Tensor) -> Tensor:
        """ũ of a batch's full factor rows (B, k): its chosen columns, scaled."""
        return self.scale(factors[:, self.columns].to(self.device))

    def sample(self, n: int, generator: torch.Generator | None = None, factors: Tensor | None = None) -> Tensor:
        """Draws given a batch's factor rows (B, k) (n = B), or with u drawn from the training split."""
        if factors is not None:
            u = self.select(factors)
        else:
            u = self.table[torch.randint(len(self.table), (n,), generator=generator, device=self.device)]
        spec: Conditional = self.spec  # type: ignore[assignment]
        aux = u + spec.std * torch.randn(u.shape, generator=generator, device=self.device)
        k = self.dim - spec.n_aux
        if k == 0:
            return aux
        return torch.cat([aux, spec.rest.sample(len(u), k, generator, self.device)], 1)
