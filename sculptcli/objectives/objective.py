"""The training objective: reconstruction (BCE or MSE, per-element mean or per-image sum) + weight·divergence."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sculptcli.models.base import Encoded
from sculptcli.objectives import DIVERGENCES
from sculptcli.priors.base import Sampler
from sculptcli.registry import Spec


class ObjectiveSpec(Spec):
    recon: Literal["bce", "mse"] = "mse"
    reduction: Literal["mean", "sum"] = "mean"  # mean over elements (the paper's MSE) or sum per image (ELBO)
    divergence: DIVERGENCES.union() = DIVERGENCES.get("mmd")()  # type: ignore[valid-type]


class Objective:
    """loss = recon(x, x̂) + weight · divergence(q(z), p(z)); returns the parts for logging."""

    def __init__(self, spec: ObjectiveSpec, prior: Sampler):
        self.spec, self.prior = spec, prior
        self.div = spec.divergence

    def recon(self, logits: Tensor, x: Tensor) -> Tensor:
        logits = logits.float()
        if self.spec.recon == "bce":
            per = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            per = (torch.sigmoid(logits) - x) ** 2
        per_image = per.flatten(1).sum(1) if self.spec.reduction == "sum" else per.flatten(1).mean(1)
        return per_image.mean()

    def __call__(self, x: Tensor, enc: Encoded, logits: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        recon = self.recon(logits, x)
        div = self.div(enc, self.prior, generator)
        return {"loss": recon + self.div.weight * div, "recon": recon, "div": div}
