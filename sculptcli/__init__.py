"""sculpt: sculpt autoencoder latent spaces to declared priors with MMD, and measure them.

The Python API (`import sculptcli as sculpt`)::

    prior = sculpt.prior("dsprites-hybrid")          # packaged name, YAML path, or a mapping (+ dim=)
    zp = prior.sample(1024)                           # (1024, d)
    mmd = sculpt.MMDLoss(prior)                       # nn.Module: the paper's kernel and estimator
    r = sculpt.lps(z)                                 # r.score, r.per_dim
    s = sculpt.score(z, factors=f)                    # the keys of `sculpt score --latents --json`
    run = sculpt.train("dsprites-mmd-gaussian", overrides={"train.steps": 200}, out="runs/x")
    run = sculpt.open_run("runs/x")                   # run.encode, run.decode, run.config, run.scores

Importing the package is cheap: torch is imported when a name that needs it is first used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sculptcli.errors import UserError

__version__ = "0.1.0"

_LAZY = {
    "prior": "sculptcli.api",
    "Prior": "sculptcli.api",
    "MMDLoss": "sculptcli.api",
    "lps": "sculptcli.api",
    "LPSScore": "sculptcli.api",
    "score": "sculptcli.api",
    "train": "sculptcli.api",
    "open_run": "sculptcli.run",
    "Run": "sculptcli.run",
}

__all__ = [
    "LPSScore",
    "MMDLoss",
    "Prior",
    "Run",
    "UserError",
    "__version__",
    "lps",
    "open_run",
    "prior",
    "score",
    "train",
]

if TYPE_CHECKING:
    from sculptcli.api import LPSScore, MMDLoss, Prior, lps, prior, score, train
    from sculptcli.run import Run, open_run


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (PEP 562), so `import sculptcli` stays free of torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sculptcli' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
