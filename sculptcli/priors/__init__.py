"""Priors by name: a YAML mapping with a `type` validates into a spec that samples on any device."""

from sculptcli.registry import Registry

PRIORS = Registry("prior")

# Registration order: `builtin` closes the union of every registered prior at its end (the type of product
# blocks), so the modules registering more priors come first; `transform.base` is resolved against that union.
from sculptcli.priors import codependent  # noqa: E402  (registers empirical, ring, torus, transform)

# isort: split
from sculptcli.priors import builtin  # noqa: E402  (registers the built-in priors; builds PriorUnion)

codependent.Transform.model_rebuild(_types_namespace={"PriorUnion": builtin.PriorUnion})

from sculptcli.priors.base import PriorSpec, Sampler  # noqa: E402


def prior_union():
    """The pydantic type of a prior spec: any registered prior, chosen by `type`."""
    return PRIORS.union()


__all__ = ["PRIORS", "PriorSpec", "Sampler", "prior_union"]
