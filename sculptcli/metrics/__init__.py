"""Metrics by name: each is one function of a ScoreInput registered in METRICS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from sculptcli.errors import UserError, did_you_mean
from sculptcli.metric_catalog import METRIC_NAMES
from sculptcli.metric_catalog import SETS as SETS  # re-exported: the sets live in the catalog
from sculptcli.metric_catalog import resolve as resolve_names


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
    data: Any = None  # the built dataset, when it can render images from factors (ground_truth)
    cache: dict[str, Any] = field(default_factory=dict)  # shared between metrics of one scoring
    dims: list[int] | None = None  # the original latent dimension of each column (None: all, in order)
    d_full: int | None = None  # the latent size before collapsed dimensions were left out (None: no column left out)
    asked: bool = False  # the metric was named on its own (-m NAME), not only reached through a set: run it whole
    progress: Callable[[str, int, int], None] | None = None  # (what, done, total): targets of a long metric

    def report(self, what: str, done: int, total: int) -> None:
        """Tell the progress line (if any) that `done` of `total` targets of the running metric are finished."""
        if self.progress is not None:
            self.progress(what, done, total)


MetricFn = Callable[[ScoreInput], dict[str, Any] | None]


class MetricRegistry:
    """Metrics by name. Each declares the report keys it writes (null when it cannot be computed) and whether it
    judges the whole code against the prior or the data (`whole_code`: NMSE, distances to the prior — computed on
    every dimension, collapsed ones included) or the structure of the code (everything else — computed on the
    live, non-collapsed dimensions only)."""

    def __init__(self) -> None:
        self._fns: dict[str, MetricFn] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        self._whole: set[str] = set()

    def register(
        self, name: str, keys: tuple[str, ...] | None = None, whole_code: bool = False
    ) -> Callable[[MetricFn], MetricFn]:
        def deco(fn: MetricFn) -> MetricFn:
            if name in self._fns:
                raise TypeError(f"metric '{name}' registered twice")
            self._fns[name] = fn
            self._keys[name] = keys or (name,)
            if whole_code:
                self._whole.add(name)
            return fn

        return deco

    def keys(self, name: str) -> tuple[str, ...]:
        """The report keys metric `name` writes."""
        return self._keys[name]

    def whole_code(self, name: str) -> bool:
        return name in self._whole

    def names(self) -> list[str]:
        return list(self._fns)

    def get(self, name: str) -> MetricFn:
        if name not in self._fns:
            raise UserError(
                f"unknown metric '{name}'.{did_you_mean(name, self._fns)}", fix=f"choose from: {', '.join(self._fns)}"
            )
        return self._fns[name]

    def resolve(self, names: list[str]) -> list[str]:
        """Metric names from names and set names (SETS), in order, each once; unknown names are a UserError."""
        return resolve_names(names)


METRICS = MetricRegistry()

from sculptcli.metrics import builtin, context, factors  # noqa: E402,F401  (registers)

if tuple(METRICS.names()) != METRIC_NAMES:  # the catalog config validation reads without importing metrics
    raise TypeError(f"sculptcli.metric_catalog.METRIC_NAMES {METRIC_NAMES} != the registered {METRICS.names()}")
