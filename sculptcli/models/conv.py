"""The convolutional autoencoder, sized from the data shape: L stride-2 conv layers down, mirrored up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from torch import nn

from sculptcli.models import MODELS
from sculptcli.models.base import AutoEncoder, Quantizer
from sculptcli.models.context import ContextModuleSpec
from sculptcli.registry import Spec


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


@MODELS.register
class ConvAESpec(Spec):
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
        self.check_shape(shape)
        return ConvAE(self, shape)


class ConvAE(AutoEncoder):
    def __init__(self, spec: ConvAESpec, shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = shape
        self.init_input_norm(c)
        chans = spec.channels()
        self.latent_dim, self.stochastic = spec.latent_dim, spec.stochastic
        sh, sw = h // 2**spec.layers, w // 2**spec.layers
        flat = chans[-1] * sh * sw
        out = spec.latent_dim * (2 if spec.stochastic else 1)

        def norm(ch: int) -> list[nn.Module]:
            if spec.norm == "batch":
                return [nn.BatchNorm2d(ch)]
            if spec.norm == "group":
                return [nn.GroupNorm(min(8, ch), ch)]
            return []

        down: list[nn.Module] = []
        for cin, cout in zip([c, *chans[:-1]], chans, strict=True):
            down += [nn.Conv2d(cin, cout, 4, 2, 1), *norm(cout), nn.ReLU(inplace=True)]
        head = (
            [nn.Linear(flat, spec.fc_hidden), nn.ReLU(inplace=True), nn.Linear(spec.fc_hidden, out)]
            if spec.fc_hidden
            else [nn.Linear(flat, out)]
        )
        self.encoder = nn.Sequential(*down, nn.Flatten(), *head)

        tail = (
            [nn.Linear(spec.latent_dim, spec.fc_hidden), nn.ReLU(inplace=True), nn.Linear(spec.fc_hidden, flat)]
            if spec.fc_hidden
            else [nn.Linear(spec.latent_dim, flat)]
        )
        up: list[nn.Module] = [*tail, nn.ReLU(inplace=True), nn.Unflatten(1, (chans[-1], sh, sw))]
        rev = chans[::-1]
        for i, (cin, cout) in enumerate(zip(rev, [*rev[1:], c], strict=True)):
            up.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i < len(rev) - 1:
                up += [*norm(cout), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*up)
        if spec.quantize is not None:
            q = spec.quantize
            self.quantizer = Quantizer(spec.latent_dim, q.values, q.low, q.high)
        self.attach_context_module(spec.context_module)
