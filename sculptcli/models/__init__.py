"""Models by name: each is one spec class (config + `build(shape)`) registered in MODELS.

The spec modules import no torch (validating a config stays cheap); the networks live in `*_net` modules and
`base`, imported when a spec builds one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sculptcli.registry import Registry

MODELS = Registry("model")

from sculptcli.models import auxcnn, conv, custom  # noqa: E402,F401  (registers)
from sculptcli.models.encoded import Encoded  # noqa: E402

if TYPE_CHECKING:
    from sculptcli.models.base import AutoEncoder

__all__ = ["MODELS", "AutoEncoder", "Encoded"]


def __getattr__(name: str) -> Any:
    if name == "AutoEncoder":
        from sculptcli.models.base import AutoEncoder

        return AutoEncoder
    raise AttributeError(f"module 'sculptcli.models' has no attribute '{name}'")
