"""Metrics by name: each is one function of a ScoreInput registered in METRICS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from sculptcli.errors import UserError, did_you_mean


@dataclass
class ScoreInput:
    """What a metric may look at: codes (posterior means), and when known the factors, images, model, prior."""

    latents: Tensor  # (N, d) float32, CPU
    factors: Tensor | None = None  # (N, k) factor values
    images: Tensor | None = None  # (N, C, H, W) the images the latents encode
    model: Any = None  # AutoEncoder, for reconstruction metrics
    prior: Any = None  # Sampler, for distances to the prior
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)


MetricFn = Callable[[ScoreInput], dict[str, Any] | None]


class MetricRegistry:
    def __init__(self) -> None:
        self._fns: dict[str, MetricFn] = {}

    def register(self, name: str) -> Callable[[MetricFn], MetricFn]:
        def deco(fn: MetricFn) -> MetricFn:
            if name in self._fns:
                raise TypeError(f"metric '{name}' registered twice")
            self._fns[name] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        return list(self._fns)

    def get(self, name: str) -> MetricFn:
        if name not in self._fns:
            raise UserError(
                f"unknown metric '{name}'.{did_you_mean(name, self._fns)}", fix=f"choose from: {', '.join(self._fns)}"
            )
        return self._fns[name]


METRICS = MetricRegistry()

from sculptcli.metrics import builtin  # noqa: E402,F401  (registers)
