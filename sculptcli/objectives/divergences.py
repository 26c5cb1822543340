"""Divergences between the encoded batch and the prior: mmd, kl, batch_kl, tcvae, factor_tc and none."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from sculptcli.data.base import Batch
from sculptcli.lazy import lazy
from sculptcli.models.encoded import Encoded
from sculptcli.objectives import DIVERGENCES
from sculptcli.priors.base import PriorSpec, Sampler
from sculptcli.registry import Spec
from sculptcli.stats.mmd import mmd2

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn
else:
    torch = lazy("torch")
    F = lazy("torch.nn.functional")
    nn = lazy("torch.nn")


@dataclass
class DivergenceContext:
    """What a divergence may need beyond the batch: the training-set size and its auxiliary network."""

    n_data: int | None = None  # training examples (the β-TCVAE minibatch-weighted estimator needs it)
    aux: nn.Module | None = None  # the divergence's own trained network (FactorVAE's discriminator)
    batch: Batch | None = None  # the batch the codes encode (its factors and contexts; the global batch under DDP)


class DivergenceSpec(Spec):
    weight: NonNegativeFloat = 1.0
    needs_stochastic_encoder: ClassVar[bool] = False
    needs_gaussian_prior: ClassVar[bool] = False
    accepts_conditional: ClassVar[bool] = False  # works with a conditional prior (reads the batch's factors)

    def check(self, prior: PriorSpec, stochastic: bool) -> None:
        """Raise ValueError when this divergence cannot be used with that prior or encoder."""
        if self.needs_stochastic_encoder and not stochastic:
            raise ValueError(f"divergence '{self.type}' needs a stochastic encoder (set model.stochastic=true)")
        if (
            self.needs_gaussian_prior
            and prior.type != "gaussian"
            and not (self.accepts_conditional and prior.type == "conditional" and prior.rest.type == "gaussian")
        ):
            what = (
                "a gaussian prior (or a conditional one with a gaussian rest)"
                if self.accepts_conditional
                else "a gaussian prior"
            )
            raise ValueError(f"{self.type} needs {what}, not '{prior.type}' (use divergence type mmd instead)")

    def __call__(
        self, enc: Encoded, prior: Sampler, generator: torch.Generator, ctx: DivergenceContext | None = None
    ) -> Tensor:
        raise NotImplementedError

    # ---- an auxiliary network trained alongside the autoencoder (none by default)
    def make_aux(self, latent_dim: int) -> nn.Module | None:
        return None

    def make_aux_optimizer(self, aux: nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError

    def aux_loss(self, aux: nn.Module, z: Tensor, generator: torch.Generator) -> Tensor:
        """The auxiliary network's own loss on detached codes `z`."""
        raise NotImplementedError


def gaussian_log_density(x: Tensor, mean: Tensor | float, logvar: Tensor | float) -> Tensor:
    """Elementwise log N(x; mean, exp(logvar))."""
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * torch.exp(-logvar))


def permute_dims(z: Tensor, generator: torch.Generator) -> Tensor:
    """Each column shuffled independently across the batch: a sample of the product of the marginals."""
    b, d = z.shape
    idx = torch.argsort(torch.rand(b, d, generator=generator, device=z.device), dim=0)
    return torch.gather(z, 0, idx)


# sculpt's MMD recipe (benchmarks/RESULTS.md §f): kernel scales down to 0.1 × the median distance and 1,024 prior
# draws per step. The paper's kernel (0.5/1/2 × median, as many draws as the batch) cannot see the small-scale
# dependence between codes that LightGBM exploits: on dSprites at one budget, LPS-lgbm 0.38 with these scales
# against 0.61 with the paper's. PAPER_SCALES is one override away: objective.divergence.scales=[0.5,1,2].
DEFAULT_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0)
PAPER_SCALES = (0.5, 1.0, 2.0)
DEFAULT_PRIOR_N = 1024


@DIVERGENCES.register
class MMD(DivergenceSpec):
    """λ·MMD²(encoded batch, prior_n prior draws) — the paper's objective (λ = 0.3), with sculpt's kernel scales."""

    type: Literal["mmd"] = "mmd"
    weight: NonNegativeFloat = 0.3
    kernel: Literal["rbf", "imq"] = "rbf"
    scales: list[float] = Field(
        default_factory=lambda: list(DEFAULT_SCALES),
        min_length=1,
        description="kernel scales × the bandwidth (sculpt: 0.1/0.2/0.5/1/2; the paper: [0.5, 1, 2])",
    )
    bandwidth: Literal["median"] | float = "median"
    estimator: Literal["biased", "unbiased"] = "biased"
    prior_n: PositiveInt | None = Field(
        DEFAULT_PRIOR_N, description="prior samples drawn per step (null: as many as the batch's codes, the paper's)"
    )

    @field_validator("scales")
    @classmethod
    def _positive(cls, v):
        if any(s <= 0 for s in v):
            raise ValueError("scales must be positive")
        return v

    accepts_conditional: ClassVar[bool] = True

    def __call__(self, enc, prior, generator, ctx=None):
        z = enc.z.float()
        kw = {"kernel": self.kernel, "scales": self.scales, "bandwidth": self.bandwidth, "estimator": self.estimator}
        if prior.spec.needs_factors:
            # conditional prior: one draw per item given its own factors, and the joints (z, ũ) vs (z′, ũ) compared,
            # so that q(z | u) is matched to p(z | u), not only the marginals (prior_n does not apply: B draws)
            factors = ctx.batch.factors
            u = prior.select(factors)
            target = prior.sample(len(u), generator, factors)
            return mmd2(torch.cat([z, u], 1), torch.cat([target, u], 1), **kw)
        target = prior.sample(self.prior_n or z.shape[0], generator)
        return mmd2(z, target, **kw)


@DIVERGENCES.register
class KL(DivergenceSpec):
    """β·KL(q(z|x) ‖ p(z)) in closed form for a Gaussian encoder and a Gaussian prior (VAE, β-VAE)."""

    type: Literal["kl"] = "kl"
    dim_weights: list[NonNegativeFloat] | None = Field(
        None, description="a multiplier per latent dim (XFactors' β_T on factor subspaces, β_S on the rest)"
    )
    needs_stochastic_encoder: ClassVar[bool] = True
    needs_gaussian_prior: ClassVar[bool] = True
    accepts_conditional: ClassVar[bool] = True

    def __call__(self, enc, prior, generator, ctx=None):
        w = self.dim_weights
        if prior.spec.needs_factors:  # Aux-VAE: N(ũ, std²) on the auxiliary dims, the gaussian rest on the others
            spec, k = prior.spec, prior.spec.n_aux
            rest = enc.mean.new_full((len(enc.mean), prior.dim - k), spec.rest.mean, dtype=torch.float32)
            mean = torch.cat([prior.select(ctx.batch.factors), rest], 1)
            std = torch.tensor([spec.std] * k + [spec.rest.std] * (prior.dim - k), device=enc.mean.device)
            return gaussian_kl(enc, mean, std, w)
        return gaussian_kl(enc, prior.spec.mean, prior.spec.std, w)


def gaussian_kl(
    enc: Encoded, mean: Tensor | float, std: Tensor | float, dim_weights: list[float] | None = None
) -> Tensor:
    """KL(N(µ, σ²) ‖ N(mean, std²)) summed over latents (each times its `dim_weights` entry), averaged over the
    batch (mean, std: scalars, per-dim (d,) or per-item (B, d))."""
    mu, logvar = enc.mean.float(), enc.logvar.float()
    var_p = torch.as_tensor(std, dtype=torch.float32, device=mu.device) ** 2
    kl = 0.5 * (logvar.exp() / var_p + (mu - mean) ** 2 / var_p - 1.0 - logvar + torch.log(var_p))
    if dim_weights is not None:
        if len(dim_weights) != kl.shape[1]:
            raise ValueError(f"dim_weights has {len(dim_weights)} entries for {kl.shape[1]} latent dims")
        kl = kl * torch.tensor(dim_weights, dtype=kl.dtype, device=kl.device)
    return kl.sum(1).mean()


def batch_cov(z: Tensor) -> Tensor:
    """The covariance (d, d) of the rows of `z` (n, d), n − 1 normalised: `torch.cov(z.T)`'s operations in its order
    (values and gradients bit for bit), without its host-side check of n − 1 > 0 (a CUDA sync every step)."""
    x = z.T
    xc = x - x.mean(1, keepdim=True)
    return torch.mm(xc, xc.t()) / (x.shape[1] - 1)


@DIVERGENCES.register
class BatchKL(DivergenceSpec):
    """KL(N(µ_B, Σ_B) ‖ N(0, I)) of the batch's moment fit — the paper's AE-KLD control (Fig. 1d)."""

    type: Literal["batch_kl"] = "batch_kl"

    def __call__(self, enc, prior, generator, ctx=None):
        z = enc.z.float()
        mu = z.mean(0)
        cov = batch_cov(z) + 1e-5 * torch.eye(z.shape[1], device=z.device)
        return 0.5 * (cov.trace() + mu @ mu - z.shape[1] - torch.logdet(cov))


@DIVERGENCES.register
class NoDivergence(DivergenceSpec):
    """No latent regulariser: a plain autoencoder."""

    type: Literal["none"] = "none"
    weight: NonNegativeFloat = 0.0

    def __call__(self, enc, prior, generator, ctx=None):
        return enc.z.new_zeros((), dtype=torch.float32)


@DIVERGENCES.register
class TCVAE(DivergenceSpec):
    """β-TCVAE: α·MI + β·TC + γ·dimension-wise KL, by minibatch-weighted sampling (Chen et al. 2018).

    With B codes z_i ~ q(z|x_i) and N training images, log q(z_i) ≈ logsumexp_m log q(z_i|x_m) − log(B·N) and
    log Π_j q(z_ij) ≈ Σ_j [logsumexp_m log q(z_ij|x_m) − log(B·N)]. The paper's baseline is β = 4, α = γ = 1.
    """

    type: Literal["tcvae"] = "tcvae"
    alpha: NonNegativeFloat = 1.0
    beta: NonNegativeFloat = 4.0
    gamma: NonNegativeFloat = 1.0
    needs_stochastic_encoder: ClassVar[bool] = True
    needs_gaussian_prior: ClassVar[bool] = True

    def parts(self, enc: Encoded, spec, n_data: int) -> dict[str, Tensor]:
        z, mu, logvar = enc.z.float(), enc.mean.float(), enc.logvar.float()
        b = z.shape[0]
        log_q_zx = gaussian_log_density(z, mu, logvar).sum(1)  # log q(z_i | x_i)
        log_p_z = gaussian_log_density(z, spec.mean, 2 * math.log(spec.std)).sum(1)
        mat = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # (i, m, j)
        log_norm = math.log(b * n_data)
        log_q_z = torch.logsumexp(mat.sum(2), dim=1) - log_norm
        log_prod_q_z = (torch.logsumexp(mat, dim=1) - log_norm).sum(1)
        return {
            "mi": (log_q_zx - log_q_z).mean(),
            "tc": (log_q_z - log_prod_q_z).mean(),
            "dim_kl": (log_prod_q_z - log_p_z).mean(),
        }

    def __call__(self, enc, prior, generator, ctx=None):
        n_data = ctx.n_data if ctx is not None and ctx.n_data else enc.z.shape[0]
        p = self.parts(enc, prior.spec, n_data)
        return self.alpha * p["mi"] + self.beta * p["tc"] + self.gamma * p["dim_kl"]


@DIVERGENCES.register
class FactorTC(DivergenceSpec):
    """FactorVAE: KL(q(z|x) ‖ p(z)) + γ·TC, TC estimated by a discriminator's log-odds (Kim & Mnih 2018).

    The discriminator (Adam, lr 1e-4, betas 0.5/0.9, an MLP of 6 layers × 1000 as in the paper) is trained after
    every autoencoder step to tell the batch's codes from a copy with every column permuted across the batch;
    the same batch serves both (the original draws a second batch for the permuted codes). The paper's γ = 10.
    """

    type: Literal["factor_tc"] = "factor_tc"
    gamma: NonNegativeFloat = 10.0
    disc_hidden: PositiveInt = 1000
    disc_layers: int = Field(6, ge=2, le=12)
    disc_lr: PositiveFloat = 1e-4
    disc_betas: tuple[float, float] = (0.5, 0.9)
    needs_stochastic_encoder: ClassVar[bool] = True
    needs_gaussian_prior: ClassVar[bool] = True

    def make_aux(self, latent_dim):
        from sculptcli.objectives.discriminator import Discriminator

        return Discriminator(latent_dim, self.disc_hidden, self.disc_layers)

    def make_aux_optimizer(self, aux):
        return torch.optim.Adam(aux.parameters(), lr=self.disc_lr, betas=self.disc_betas)

    def __call__(self, enc, prior, generator, ctx=None):
        kl = gaussian_kl(enc, prior.spec.mean, prior.spec.std)
        if ctx is None or ctx.aux is None:
            return kl
        tc = ctx.aux(enc.z.float()).mean()  # log D/(1−D) estimates log q(z)/Π q(z_j)
        return kl + self.gamma * tc

    def aux_loss(self, aux, z, generator):
        z = z.float()
        real, fake = aux(z), aux(permute_dims(z, generator))
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        )
