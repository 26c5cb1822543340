"""sculpt's autoencoder around a user's encoder and decoder (`model.type: custom`; the spec is in `custom`)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sculptcli.errors import UserError
from sculptcli.models.base import AutoEncoder, Quantizer

if TYPE_CHECKING:
    from sculptcli.models.custom import CustomAESpec, TargetSpec

CHECK_BATCH = 2  # blank images run through the model once when it is built: wrong shapes fail before training


class CustomAE(AutoEncoder):
    """sculpt's autoencoder around a user's encoder and decoder."""

    def __init__(self, spec: CustomAESpec, shape: tuple[int, int, int]):
        super().__init__()
        c = shape[0]
        self.init_input_norm(c)
        self.latent_dim, self.stochastic = spec.latent_dim, spec.stochastic
        out_dim = spec.latent_dim * (2 if spec.stochastic else 1)
        self.encoder = make_module(spec.encoder, "model.encoder", in_shape=shape, out_dim=out_dim)
        self.decoder = make_module(spec.decoder, "model.decoder", latent_dim=spec.latent_dim, out_shape=shape)
        if spec.quantize is not None:
            q = spec.quantize
            self.quantizer = Quantizer(spec.latent_dim, q.values, q.low, q.high)
        self.attach_context_module(spec.context_module)
        if torch.empty(0).device.type != "meta":  # built for real (not the preflight's parameter count)
            self.check_shapes(spec, shape, out_dim)

    @torch.no_grad()
    def check_shapes(self, spec: CustomAESpec, shape: tuple[int, int, int], out_dim: int) -> None:
        """Run one batch of blank images through the encoder and decoder; a wrong output shape is a UserError
        naming the key."""
        was = self.training
        self.eval()
        try:
            x = torch.zeros(CHECK_BATCH, *shape)
            h = _call(self.encoder, x, spec.encoder.target, "model.encoder")
            rule = "out_dim (latent_dim, or 2·latent_dim when stochastic)"
            _check(h, (CHECK_BATCH, out_dim), spec.encoder.target, "model.encoder", f"{CHECK_BATCH} images", rule)
            z = torch.zeros(CHECK_BATCH, spec.latent_dim)
            y = _call(self.decoder, z, spec.decoder.target, "model.decoder")
            rule = "out_shape (the images' C, H, W)"
            _check(y, (CHECK_BATCH, *shape), spec.decoder.target, "model.decoder", f"{CHECK_BATCH} codes", rule)
        finally:
            self.train(was)


def _call(module: nn.Module, x: torch.Tensor, target: str, key: str) -> Any:
    try:
        return module(x)
    except Exception as e:  # noqa: BLE001 - the user's forward failed on a well-formed batch
        raise UserError(
            f"{target} failed on a batch of shape {list(x.shape)}: {type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''}",
            where=f"{key}.target",
            fix="its forward must take that batch",
        ) from None


def _check(out: Any, want: tuple[int, ...], target: str, key: str, given: str, rule: str) -> None:
    got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        raise UserError(
            f"{target} returns {got} for {given}; sculpt needs a tensor {list(want)}",
            where=f"{key}.target",
            fix=f"make its output [batch, …] match {rule}",
        )


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
