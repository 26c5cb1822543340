"""The spec of the context module (arXiv 2507.04754), torch-free; the network is in `context`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from sculptcli.registry import Spec

if TYPE_CHECKING:
    from sculptcli.models.context import ContextModule


class ContextModuleSpec(Spec):
    """The context module between latent and decoder (arXiv 2507.04754); latent_dim = len(concepts) · width."""

    concepts: list[str] | None = Field(
        None, description="concept names, one latent block each (default: the dataset's intervened concepts)"
    )
    width: int = Field(32, ge=1, le=1024, description="latent dims per concept (the release: 32)")
    out_width: int = Field(8, ge=1, le=1024, description="width of each concept after the expressive layers (8)")
    depth: int = Field(2, ge=2, le=16, description="widths of the expressive layers, width → out_width (2: one layer)")
    pooled: bool = Field(False, description="ignore the context labels (observational weights always): CM pooled")

    @model_validator(mode="after")
    def _distinct(self):
        if self.concepts is not None and (not self.concepts or len(set(self.concepts)) != len(self.concepts)):
            raise ValueError("context_module.concepts: give each concept once, at least one")
        return self

    def latent_dim(self) -> int | None:
        return None if self.concepts is None else len(self.concepts) * self.width

    def build(self, latent_dim: int) -> ContextModule:
        from sculptcli.models.context import ContextModule

        assert self.concepts is not None, "concepts are filled from the dataset when the config is validated"
        return ContextModule(len(self.concepts), self.width, self.out_width, self.depth, latent_dim, self.pooled)
