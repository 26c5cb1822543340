"""Divergences between the encoded batch and the prior: mmd, kl, batch_kl (AE-KLD control) and none."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field, NonNegativeFloat, field_validator
from torch import Tensor

from sculptcli.models.base import Encoded
from sculptcli.objectives import DIVERGENCES
from sculptcli.objectives.mmd import mmd2
from sculptcli.priors.base import PriorSpec, Sampler
from sculptcli.registry import Spec


class DivergenceSpec(Spec):
    weight: NonNegativeFloat = 1.0
    needs_stochastic_encoder: ClassVar[bool] = False

    def check(self, prior: PriorSpec, stochastic: bool) -> None:
        """Raise ValueError when this divergence cannot be used with that prior or encoder."""
        if self.needs_stochastic_encoder and not stochastic:
            raise ValueError(f"divergence '{self.type}' needs a stochastic encoder (set model.stochastic=true)")

    def __call__(self, enc: Encoded, prior: Sampler, generator: torch.Generator) -> Tensor:
        raise NotImplementedError


@DIVERGENCES.register
class MMD(DivergenceSpec):
    """λ·MMD²(encoded batch, equal-size prior batch) — the paper's objective (λ = 0.3)."""

    type: Literal["mmd"] = "mmd"
    weight: NonNegativeFloat = 0.3
    kernel: Literal["rbf", "imq"] = "rbf"
    scales: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0], min_length=1)
    bandwidth: Literal["median"] | float = "median"
    estimator: Literal["biased", "unbiased"] = "biased"

    @field_validator("scales")
    @classmethod
    def _positive(cls, v):
        if any(s <= 0 for s in v):
            raise ValueError("scales must be positive")
        return v

    def __call__(self, enc, prior, generator):
        z = enc.z.float()
        target = prior.sample(z.shape[0], generator)
        return mmd2(
            z, target, kernel=self.kernel, scales=self.scales, bandwidth=self.bandwidth, estimator=self.estimator
        )


@DIVERGENCES.register
class KL(DivergenceSpec):
    """β·KL(q(z|x) ‖ p(z)) in closed form for a Gaussian encoder and a Gaussian prior (VAE, β-VAE)."""

    type: Literal["kl"] = "kl"
    needs_stochastic_encoder: ClassVar[bool] = True

    def check(self, prior, stochastic):
        super().check(prior, stochastic)
        if prior.type != "gaussian":
            raise ValueError(f"kl needs a gaussian prior, not '{prior.type}' (use divergence type mmd instead)")

    def __call__(self, enc, prior, generator):
        spec = prior.spec
        mu, logvar = enc.mean.float(), enc.logvar.float()
        var_p = spec.std**2
        kl = 0.5 * (logvar.exp() / var_p + (mu - spec.mean) ** 2 / var_p - 1.0 - logvar + math.log(var_p))
        return kl.sum(1).mean()


@DIVERGENCES.register
class BatchKL(DivergenceSpec):
    """KL(N(µ_B, Σ_B) ‖ N(0, I)) of the batch's moment fit — the paper's AE-KLD control (Fig. 1d)."""

    type: Literal["batch_kl"] = "batch_kl"

    def __call__(self, enc, prior, generator):
        z = enc.z.float()
        mu = z.mean(0)
        cov = torch.cov(z.T) + 1e-5 * torch.eye(z.shape[1], device=z.device)
        return 0.5 * (cov.trace() + mu @ mu - z.shape[1] - torch.logdet(cov))


@DIVERGENCES.register
class NoDivergence(DivergenceSpec):
    """No latent regulariser: a plain autoencoder."""

    type: Literal["none"] = "none"
    weight: NonNegativeFloat = 0.0

    def __call__(self, enc, prior, generator):
        return enc.z.new_zeros((), dtype=torch.float32)
