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

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from sculptcli.errors import UserError
from sculptcli.lazy import lazy
from sculptcli.models import MODELS
from sculptcli.models.context_spec import ContextModuleSpec
from sculptcli.models.conv import QuantizeSpec
from sculptcli.registry import Spec

if TYPE_CHECKING:
    from torch import nn

    from sculptcli.models.custom_net import CustomAE
else:
    nn = lazy("torch.nn")

TARGET_PATTERN = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)
CHECK_BATCH = 2  # blank images run through the model once when it is built: wrong shapes fail before training


class TargetSpec(Spec):
    """A torch.nn.Module class (or a function returning one) by import path, and the keyword arguments it gets."""

    target: str = Field(..., pattern=TARGET_PATTERN, description="'module:Name' (module importable from the cwd)")
    args: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments of the constructor")


@MODELS.register
class CustomAESpec(Spec):
    """Your own encoder and decoder modules inside sculpt's autoencoder (input standardisation, quantiser and
    context module as for the packaged models)."""

    type: Literal["custom"] = "custom"
    latent_dim: int = Field(..., ge=1, le=4096)
    stochastic: bool = Field(False, description="the encoder returns 2·latent_dim features: mean, then logvar")
    encoder: TargetSpec = Field(..., description="called target(in_shape=(C,H,W), out_dim=d or 2d, **args)")
    decoder: TargetSpec = Field(..., description="called target(latent_dim=d, out_shape=(C,H,W), **args); logits")
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

    def code_targets(self) -> list[str]:
        """The import paths this model runs (what `--trust-code` is asked for)."""
        return [self.encoder.target, self.decoder.target]

    def describe(self) -> str:
        kind = " stochastic" if self.stochastic else f" quantized×{self.quantize.values}" if self.quantize else ""
        return f"custom {self.encoder.target} / {self.decoder.target} d={self.latent_dim}{kind}"

    def build(self, shape: tuple[int, int, int]) -> CustomAE:
        from sculptcli.models.custom_net import CustomAE

        return CustomAE(self, tuple(shape))


def import_target(target: str, key: str) -> Any:
    """The object `module:Name` names, imported with the working directory first on the path; a UserError naming
    `key` when it cannot be imported."""
    module_name, _, attr = target.partition(":")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any failure inside the user's module is an import failure
        raise UserError(
            f"cannot import '{module_name}' ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})",
            where=f"{key}.target",
            fix=f"put {module_name.replace('.', '/')}.py in the working directory or on PYTHONPATH, and check that "
            "it imports cleanly (python -c 'import " + module_name + "')",
        ) from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(
                f"module '{module_name}' has no '{attr}'", where=f"{key}.target", fix="check the name after ':'"
            )
        obj = getattr(obj, part)
    return obj


def make_module(spec: TargetSpec, key: str, **kwargs: Any) -> nn.Module:
    """`spec.target(**kwargs, **spec.args)`, checked to be a torch.nn.Module; a UserError naming `key` otherwise."""
    factory = import_target(spec.target, key)
    if not callable(factory):
        raise UserError(
            f"'{spec.target}' is a {type(factory).__name__}, not a torch.nn.Module class",
            where=f"{key}.target",
            fix="point the target at a torch.nn.Module subclass",
        )
    clash = sorted(set(kwargs) & set(spec.args))
    if clash:
        raise UserError(f"args may not set {', '.join(clash)} (sculpt passes it)", where=f"{key}.args")
    try:
        module = factory(**kwargs, **spec.args)
    except Exception as e:  # noqa: BLE001 - the user's constructor failed
        raise UserError(
            f"{spec.target}({', '.join(f'{k}=…' for k in [*kwargs, *spec.args])}) failed: {type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''}",
            where=f"{key}",
            fix=f"the constructor is called with {', '.join(kwargs)} and the keys of {key}.args",
        ) from None
    if not isinstance(module, nn.Module):
        raise UserError(
            f"'{spec.target}' gave a {type(module).__name__}, not a torch.nn.Module",
            where=f"{key}.target",
            fix="point the target at a torch.nn.Module subclass (or a function returning one)",
        )
    return module
