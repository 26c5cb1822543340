"""Priors by name: a YAML mapping with a `type` validates into a spec that samples on any device."""

from sculptcli.registry import Registry

PRIORS = Registry("prior")

from sculptcli.priors import builtin  # noqa: E402,F401  (registers the built-in priors)
from sculptcli.priors.base import PriorSpec, Sampler  # noqa: E402


def prior_union():
    """The pydantic type of a prior spec: any registered prior, chosen by `type`."""
    return PRIORS.union()


__all__ = ["PRIORS", "PriorSpec", "Sampler", "prior_union"]
