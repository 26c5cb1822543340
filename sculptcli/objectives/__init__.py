"""Objectives: a reconstruction loss plus a registered divergence that pulls latents toward the prior."""

from sculptcli.registry import Registry

DIVERGENCES = Registry("divergence")

from sculptcli.objectives import divergences  # noqa: E402,F401  (registers)
from sculptcli.objectives.objective import Objective, ObjectiveSpec  # noqa: E402

__all__ = ["DIVERGENCES", "Objective", "ObjectiveSpec"]
