"""A module imported on first attribute use, so the spec modules (what `sculpt --help`, `presets show`
and `prior validate` need) define their pydantic classes without importing torch.

    if TYPE_CHECKING:
        import torch
    else:
        torch = lazy("torch")

Inside functions `torch.zeros(...)` then imports torch once and forwards; type checkers see the real module."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module `name` until an attribute is read; then imports it and forwards every read."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module '{self._name}' ({state})>"


def lazy(name: str) -> Any:
    """`lazy("torch")`: a stand-in for `import torch` that imports on first use (typed Any for callers)."""
    return LazyModule(name)
