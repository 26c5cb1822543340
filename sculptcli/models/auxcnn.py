"""Aux-VAE's 33×33 galaxy CNN (its released `models_edited.py`): four stride-2 convs to 2×2, a transposed-conv
decoder ending in a k5 s4 layer back to 33×33."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from sculptcli.models import MODELS
from sculptcli.models.context_spec import ContextModuleSpec
from sculptcli.registry import Spec

if TYPE_CHECKING:
    from sculptcli.models.auxcnn_net import AuxCNN

SIDE = 33


@MODELS.register
class AuxCNNSpec(Spec):
    """Encoder Conv(k4 s2 p1) ×4, channels w, 2w, 4w, 8w (33→16→8→4→2), flatten → linear heads; decoder
    z → ConvT(k4 s2 p1) ×3 (1→2→4→8), channels 4w, 2w, w, → ConvT(k5 s4) to 33×33. ReLU between layers."""

    type: Literal["auxcnn"] = "auxcnn"
    latent_dim: int = Field(10, ge=1, le=4096)
    width: int = Field(32, ge=1, le=512, description="channels of the first conv layer (Aux-VAE: 32)")
    stochastic: bool = Field(True, description="Gaussian encoder (Aux-VAE's) instead of deterministic")
    input_norm: Literal["data", "none"] = Field(
        "data", description="encoder input standardised by the training images' per-channel mean and std, or not"
    )
    context_module: ContextModuleSpec | None = Field(
        None, description="a context module between latent and decoder (arXiv 2507.04754; data with contexts)"
    )

    def check_shape(self, shape: tuple[int, int, int]) -> None:
        if shape[1:] != (SIDE, SIDE):
            raise ValueError(
                f"the auxcnn model takes {SIDE}×{SIDE} images, got {shape[1]}×{shape[2]} "
                "(galaxy: set data.pad_to=null; other data: use model type conv)"
            )

    def describe(self) -> str:
        return f"auxcnn w={self.width} d={self.latent_dim}" + (" stochastic" if self.stochastic else "")

    def build(self, shape: tuple[int, int, int]) -> AuxCNN:
        from sculptcli.models.auxcnn_net import AuxCNN

        self.check_shape(shape)
        return AuxCNN(self, shape[0])
