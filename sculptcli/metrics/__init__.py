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
    data: Any = None  # the built dataset, when it can render images from factors (ground_truth)
    cache: dict[str, Any] = field(default_factory=dict)  # shared between metrics of one scoring


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

    def resolve(self, names: list[str]) -> list[str]:
        """Metric names from names and set names (SETS), in order, each once; unknown names are a UserError."""
        out: list[str] = []
        for name in names:
            members = SETS.get(name, [name])
            for m in members:
                if m not in self._fns:
                    choices = [*SETS, *self._fns]
                    raise UserError(
                        f"unknown metric '{m}'.{did_you_mean(m, choices)}",
                        fix=f"choose sets ({', '.join(SETS)}) or metrics ({', '.join(self._fns)})",
                    )
                if m not in out:
                    out.append(m)
        return out


METRICS = MetricRegistry()

# Named sets. basic: distribution and LPS; fast: seconds on 10,000 codes (the end-of-training default);
# supervised: every factor metric; all: everything (the `sculpt score` default).
SETS: dict[str, list[str]] = {
    "basic": ["lps", "nmse", "mmd2_prior", "cov_ratio", "prior_test", "ks"],
    "fast": ["lps", "nmse", "mmd2_prior", "cov_ratio", "ks", "mig", "sap", "lds", "tc_gauss", "tc_mmd"],
    "supervised": ["mig", "sap", "dci", "factorvae", "betavae", "modularity", "infomec", "lds"],
}
SETS["all"] = SETS["basic"] + SETS["supervised"] + ["tc_gauss", "tc_mmd"]

from sculptcli.metrics import builtin, factors  # noqa: E402,F401  (registers)
