"""The prior spec base: how many latent dimensions a prior covers and how it samples them."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar

from pydantic import ConfigDict, Field

from sculptcli.lazy import lazy
from sculptcli.registry import Spec

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")


class Sampler:
    """A prior bound to a latent size and a device: `sample(n, generator)` -> (n, dim) float32."""

    def __init__(self, spec: PriorSpec, dim: int, device: torch.device):
        self.spec, self.dim, self.device = spec, dim, torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None = None, factors: Tensor | None = None) -> Tensor:
        """n draws; `factors` (a batch's factor rows) matter only to a conditional prior."""
        return self.spec.sample(n, self.dim, generator, self.device)

    def to(self, device: torch.device | str) -> Sampler:
        """This sampler on another device (metrics draw on the CPU, whatever the training device)."""
        other = copy.copy(self)
        other.device = torch.device(device)
        return other


class PriorSpec(Spec):
    """Base of every prior. A 1-D prior given for d dimensions means d i.i.d. copies."""

    model_config = ConfigDict(allow_inf_nan=False)  # a NaN or an infinity in a prior is always a mistake

    dims: int | None = Field(
        None, ge=1, description="latent dimensions this prior covers (default: all, or 1 inside a product)"
    )
    needs_factors: ClassVar[bool] = False  # samples given the batch's factors (a conditional prior)

    def event_dim(self) -> int | None:
        """The number of dimensions the prior intrinsically has (None: a 1-D prior, any count)."""
        return None

    def covered_dims(self, default: int) -> int:
        return self.dims or self.event_dim() or default

    def check_dim(self, dim: int) -> None:
        """Raise ValueError when this prior cannot cover exactly `dim` latent dimensions."""
        own = self.event_dim()
        if own is not None and own != dim:
            raise ValueError(f"this {self.type} prior has {own} dimensions but the latent size is {dim}")
        if self.dims is not None and self.dims != dim:
            raise ValueError(f"dims is {self.dims} but the latent size is {dim}")

    def build(self, dim: int, device: torch.device | str = "cpu", data=None) -> Sampler:
        """Bound to `dim` dimensions on `device`; `data` (the built dataset) matters only to a conditional prior."""
        self.check_dim(dim)
        return Sampler(self, dim, torch.device(device))

    def sample(self, n: int, dim: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """(n, dim) float32 samples; a 1-D prior draws n*dim i.i.d. values."""
        return self.sample_1d((n, dim), generator, device)

    def sample_1d(self, shape: tuple[int, ...], generator, device) -> Tensor:
        raise NotImplementedError(f"prior {self.type} must override sample or sample_1d")

    def walk(self):
        """This prior and every prior nested in it (a product's blocks, a transform's base), depth first."""
        yield self
        for name in type(self).model_fields:
            value = getattr(self, name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, PriorSpec):
                    yield from item.walk()

    def describe(self) -> str:
        fields = self.model_dump(exclude={"type", "dims"}, exclude_none=True)
        return f"{self.type}({', '.join(f'{k}={v}' for k, v in fields.items())})"
