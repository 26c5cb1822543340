"""Your own encoder and decoder (`model.type: custom`), wrapped in sculpt's autoencoder.

```yaml
model:
  type: custom
  latent_dim: 8
  stochastic: false          # true: the encoder returns 2·latent_dim features (mean, logvar)
  encoder: {target: "mymodels:Encoder", args: {width: 32}}  # Encoder(in_shape=(C,H,W), out_dim=d or 2d, **args)
  decoder: {target: "mymodels:Decoder", args: {width: 32}}  # Decoder(latent_dim=d, out_shape=(C,H,W), **args)
```

The encoder maps images [B, C, H, W] to features [B, out_dim]; the decoder maps codes [B, d] to logits
[B, C, H, W] (sigmoid gives pixels in [0, 1]). Input standardisation, the QLAE quantiser and the context module
apply as for the packaged models. `module:Name` is imported like `python -m` would (the working directory first).

Security: the YAML a user writes is trusted, so training imports its targets. A checkpoint's embedded config names
code too; readers of a checkpoint (`score`, `traverse`, `copy-latent`, `open_run`) import it only when told to trust
it (`--trust-code`), see `Checkpoint.build_model`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sculptcli.lazy import lazy
from sculptcli.models import MODELS
from sculptcli.models.conv import WrappedSpec
from sculptcli.registry import Spec

if TYPE_CHECKING:
    from torch import nn

    from sculptcli.models.custom_net import CustomAE
else:
    nn = lazy("torch.nn")

TARGET_PATTERN = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)


class TargetSpec(Spec):
    """A torch.nn.Module class (or a function returning one) by import path, and the keyword arguments it gets."""

    target: str = Field(..., pattern=TARGET_PATTERN, description="'module:Name' (module importable from the cwd)")
    args: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments of the constructor")


@MODELS.register
class CustomAESpec(WrappedSpec):
    """Your own encoder and decoder modules inside sculpt's autoencoder (input standardisation, quantiser and
    context module as for the packaged models)."""

    type: Literal["custom"] = "custom"
    latent_dim: int = Field(..., ge=1, le=4096)
    stochastic: bool = Field(False, description="the encoder returns 2·latent_dim features: mean, then logvar")
    encoder: TargetSpec = Field(..., description="called target(in_shape=(C,H,W), out_dim=d or 2d, **args)")
    decoder: TargetSpec = Field(..., description="called target(latent_dim=d, out_shape=(C,H,W), **args); logits")

    def code_targets(self) -> list[str]:
        """The import paths this model runs (what `--trust-code` is asked for)."""
        return [self.encoder.target, self.decoder.target]

    def describe(self) -> str:
        kind = " stochastic" if self.stochastic else f" quantized×{self.quantize.values}" if self.quantize else ""
        return f"custom {self.encoder.target} / {self.decoder.target} d={self.latent_dim}{kind}"

    def build(self, shape: tuple[int, int, int]) -> CustomAE:
        from sculptcli.models.custom_net import CustomAE

        return CustomAE(self, tuple(shape))
