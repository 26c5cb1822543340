"""Models by name: each is one spec class (config + `build(shape)`) registered in MODELS."""

from sculptcli.registry import Registry

MODELS = Registry("model")

from sculptcli.models import auxcnn, conv, custom  # noqa: E402,F401  (registers)
from sculptcli.models.base import AutoEncoder, Encoded  # noqa: E402

__all__ = ["MODELS", "AutoEncoder", "Encoded"]
