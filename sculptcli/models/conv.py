"""The convolutional autoencoder, sized from the data shape: L stride-2 conv layers down, mirrored up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from sculptcli.models import MODELS
from sculptcli.models.context_spec import ContextModuleSpec
from sculptcli.registry import Spec

if TYPE_CHECKING:
    from sculptcli.models.conv_net import ConvAE


class QuantizeSpec(Spec):
    """One learnable scalar codebook of `values` entries per latent, initialised linspace(low, high) (QLAE)."""

    values: int = Field(10, ge=2, le=1024)
    low: float = -0.5
    high: float = 0.5

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        return self


class WrappedSpec(Spec):
    """What sculpt's autoencoder adds around any encoder and decoder (packaged or the user's own): input
    standardisation, QLAE quantisation and the context module. A subclass defines `stochastic`."""

    input_norm: Literal["data", "none"] = Field(
        "data", description="encoder input standardised by the training images' per-channel mean and std, or not"
    )
    quantize: QuantizeSpec | None = Field(None, description="QLAE latent quantisation (deterministic encoder)")
    context_module: ContextModuleSpec | None = Field(
        None, description="a context module between latent and decoder (arXiv 2507.04754; data with contexts)"
    )

    @model_validator(mode="after")
    def _quantize_deterministic(self):
        if self.quantize is not None and self.stochastic:
            raise ValueError("quantize needs a deterministic encoder (stochastic: false)")
        return self


@MODELS.register
class ConvAESpec(WrappedSpec):
    """Symmetric conv encoder/decoder (k4 s2 p1), channels doubling every two layers, linear latent head."""

    type: Literal["conv"] = "conv"
    latent_dim: int = Field(10, ge=1, le=4096)
    layers: int = Field(4, ge=1, le=8, description="conv layers in the encoder (and the decoder)")
    width: int = Field(32, ge=1, le=1024, description="channels of the first conv layer")
    max_width: int = Field(256, ge=1)
    fc_hidden: int = Field(0, ge=0, description="hidden fully connected layer before the latent (0: none)")
    stochastic: bool = Field(False, description="Gaussian encoder (VAE family) instead of deterministic")
    norm: Literal["none", "batch", "group"] = Field(
        "none", description="normalisation after each hidden conv layer (group: GroupNorm, batch-independent)"
    )

    def describe(self) -> str:
        kind = " stochastic" if self.stochastic else f" quantized×{self.quantize.values}" if self.quantize else ""
        cm = " +context module" + (" (pooled)" if self.context_module.pooled else "") if self.context_module else ""
        return f"conv L={self.layers} w={self.width} d={self.latent_dim}{kind}{cm}"

    def channels(self) -> list[int]:
        return [min(self.width * 2 ** (i // 2), self.max_width) for i in range(self.layers)]

    def check_shape(self, shape: tuple[int, int, int]) -> None:
        _, h, w = shape
        f = 2**self.layers
        if h % f or w % f:
            raise ValueError(
                f"{self.layers} stride-2 layers need image sides divisible by {f}, got {h}x{w}; "
                f"use fewer layers (model.layers)"
            )

    def build(self, shape: tuple[int, int, int]) -> ConvAE:
        from sculptcli.models.conv_net import ConvAE

        self.check_shape(shape)
        return ConvAE(self, shape)
