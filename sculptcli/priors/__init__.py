"""Priors by name: a YAML mapping with a `type` validates into a spec that samples on any device."""

from sculptcli.registry import Registry

PRIORS = Registry("prior")

from sculptcli.priors import builtin, codependent, conditional  # noqa: E402,F401  (register the priors)
from sculptcli.priors.base import PriorSpec, Sampler  # noqa: E402

# Priors that nest priors (product blocks, transform.base) refer to `PriorUnion`: the union of everything
# registered above, closed here once all modules have registered.
PriorUnion = PRIORS.union()
for _name, _cls in PRIORS.items():
    _cls.model_rebuild(_types_namespace={"PriorUnion": PriorUnion})


def prior_union():
    """The pydantic type of a prior spec: any registered prior, chosen by `type`."""
    return PriorUnion


__all__ = ["PRIORS", "PriorSpec", "PriorUnion", "Sampler", "prior_union"]
