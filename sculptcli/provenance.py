"""The library versions recorded with every output (checkpoints, scores, reports)."""

from __future__ import annotations

import importlib.metadata
import platform

from sculptcli import __version__

_LIBS = ("torch", "numpy", "lightgbm", "scikit-learn", "scipy", "safetensors", "pydantic")


def versions() -> dict[str, str]:
    """sculpt, Python and the installed versions of the libraries whose behaviour shapes the numbers."""
    out = {"sculpt": __version__, "python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = "absent"
    return out
