"""Extra objective terms beside reconstruction and divergence, by name (TERMS): the supervised and structural
penalties of Aux-VAE (corr_intra, corr_inter), XFactors (infonce, corr_cross) and QLAE (quantize), and sculpt's
MMD total-correlation penalty (mmd_tc).

Each term is weight · value(enc, batch, prior), added to the loss and logged under its name. A term that reads the
batch's factors says so (`needs_factors`); which latent dimensions it acts on follows the run's layout: Aux-VAE's
auxiliary block is the first k dims of a conditional prior, XFactors' factor subspaces are the first
len(factors) × dims_per_factor dims."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from sculptcli.data.base import Batch
from sculptcli.lazy import lazy
from sculptcli.models.encoded import Encoded
from sculptcli.priors.base import PriorSpec, Sampler
from sculptcli.registry import Registry, Spec

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")

TERMS = Registry("term", field="terms")
EPS = 1e-8


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlations between the columns of a (B, p) and b (B, q) over the batch: (p, q), float32."""
    a = a.float() - a.float().mean(0)
    b = b.float() - b.float().mean(0)
    a = a / (a.norm(dim=0) + EPS)
    b = b / (b.norm(dim=0) + EPS)
    return a.T @ b


class TermSpec(Spec):
    weight: NonNegativeFloat = 1.0
    needs_factors: ClassVar[bool] = False

    def check(self, prior: PriorSpec, model) -> None:
        """Raise ValueError when this term cannot be used with that prior or model spec."""

    def __call__(self, enc: Encoded, batch: Batch, prior: Sampler) -> Tensor:
        raise NotImplementedError


class _AuxTerm(TermSpec):
    """A term on Aux-VAE's split: the conditional prior's k auxiliary dims and its scaled factors ũ."""

    needs_factors: ClassVar[bool] = True

    def check(self, prior, model):
        if prior.type != "conditional":
            raise ValueError(f"term {self.type} needs a conditional prior (its auxiliary dims and factors)")

    def parts(self, enc: Encoded, batch: Batch, prior) -> tuple[Tensor, Tensor, int]:
        return enc, prior.select(batch.factors), prior.spec.n_aux


@TERMS.register
class CorrIntra(_AuxTerm):
    """Aux-VAE's alignment term: with ρ = corr(z_aux, ũ) (k × k), Σ_k (1 − ρ_kk) + Σ_{k≠l} |ρ_kl| — each auxiliary
    latent tracks its own factor and no other."""

    type: Literal["corr_intra"] = "corr_intra"
    source: Literal["z", "mean"] = Field("z", description="z: the sampled codes (Aux-VAE's CNN), mean: the means")

    def __call__(self, enc, batch, prior):
        enc, u, k = self.parts(enc, batch, prior)
        codes = enc.z if self.source == "z" else enc.mean
        rho = pearson(codes[:, :k], u)
        off = rho.abs().sum() - rho.diagonal().abs().sum()
        return (1.0 - rho.diagonal()).sum() + off


@TERMS.register
class CorrInter(_AuxTerm):
    """Aux-VAE's polynomial-independence term: with m the residual means (D_r = d − k dims),
    Σ_{a,b ∈ powers} (1/D_r) Σ_j Σ_k |corr(m_j^a, ũ_k^b)| + (1/D_r) Σ_j Σ_{k<l} |corr(m_j, ũ_k ũ_l)| — the residual
    block carries nothing (linear or polynomial) of the factors."""

    type: Literal["corr_inter"] = "corr_inter"
    powers: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 3], min_length=1)

    def check(self, prior, model):
        super().check(prior, model)
        if model.latent_dim <= prior.n_aux:
            raise ValueError("term corr_inter needs residual dims: latent_dim must exceed the auxiliary factors")

    def __call__(self, enc, batch, prior):
        enc, u, k = self.parts(enc, batch, prior)
        m = enc.mean[:, k:].float()
        d_r = m.shape[1]
        total = m.new_zeros(())
        for a in self.powers:
            for b in self.powers:
                total = total + pearson(m**a, u**b).abs().sum() / d_r
        if u.shape[1] > 1:
            i, j = torch.triu_indices(u.shape[1], u.shape[1], offset=1, device=u.device)
            total = total + pearson(m, u[:, i] * u[:, j]).abs().sum() / d_r
        return total


@TERMS.register
class InfoNCE(TermSpec):
    """XFactors' supervised contrastive term: for each factor i, its subspace T_i (dims_per_factor latents, laid out
    first, in `factors` order) L2-normalised, similarities z zᵀ/τ with self-pairs masked; the positives of an
    anchor are the other items with the same value of factor i; per anchor −[logsumexp(positives) −
    logsumexp(every other item)], averaged over anchors with a positive, then over factors."""

    type: Literal["infonce"] = "infonce"
    weight: NonNegativeFloat = 0.1
    factors: list[int] = Field(min_length=1, description="the factor columns that get a subspace, in order")
    dims_per_factor: PositiveInt = 2
    temperature: PositiveFloat = 0.07
    source: Literal["z", "mean"] = "mean"
    needs_factors: ClassVar[bool] = True

    def check(self, prior, model):
        need = len(self.factors) * self.dims_per_factor
        if model.latent_dim < need:
            raise ValueError(f"term infonce needs {need} latent dims for its factor subspaces, got {model.latent_dim}")

    def subspace(self, i: int) -> slice:
        return slice(i * self.dims_per_factor, (i + 1) * self.dims_per_factor)

    def __call__(self, enc, batch, prior):
        codes = (enc.z if self.source == "z" else enc.mean).float()
        eye = torch.eye(len(codes), dtype=torch.bool, device=codes.device)
        losses = []
        for i, col in enumerate(self.factors):
            t = torch.nn.functional.normalize(codes[:, self.subspace(i)], dim=1)
            sim = (t @ t.T / self.temperature).masked_fill(eye, float("-inf"))
            y = batch.factors[:, col]
            pos = (y[:, None] == y[None, :]) & ~eye
            has = pos.any(1)
            if not has.any():
                continue
            lse_pos = torch.logsumexp(sim.masked_fill(~pos, float("-inf")), 1)
            lse_all = torch.logsumexp(sim, 1)  # over every other item, positives included (SupCon)
            losses.append(-(lse_pos - lse_all)[has].mean())
        return torch.stack(losses).mean() if losses else codes.new_zeros(())


@TERMS.register
class CorrCross(TermSpec):
    """XFactors' optional decorrelation: ‖corr(μ_S, μ_T)‖_F between the residual subspace S (the dims after the
    first `factor_dims`) and the factor subspaces T (the first `factor_dims`)."""

    type: Literal["corr_cross"] = "corr_cross"
    factor_dims: PositiveInt

    def check(self, prior, model):
        if model.latent_dim <= self.factor_dims:
            raise ValueError("term corr_cross needs residual dims after its factor_dims")

    def __call__(self, enc, batch, prior):
        mu = enc.mean
        return pearson(mu[:, self.factor_dims :], mu[:, : self.factor_dims]).norm()


@TERMS.register
class Quantize(TermSpec):
    """QLAE's codebook and commitment terms on a quantised model (`model.quantize`): with z_c the continuous code and
    ẑ its nearest codebook values, codebook · mean((sg(z_c) − ẑ)²) + commitment · mean((z_c − sg(ẑ))²)."""

    type: Literal["quantize"] = "quantize"
    codebook: NonNegativeFloat = 0.01
    commitment: NonNegativeFloat = 0.01

    def check(self, prior, model):
        if getattr(model, "quantize", None) is None:
            raise ValueError("term quantize needs a quantised model (model.quantize)")

    def __call__(self, enc, batch, prior):
        zc, q = enc.pre.float(), enc.quantized.float()
        return self.codebook * ((zc.detach() - q) ** 2).mean() + self.commitment * ((zc - q.detach()) ** 2).mean()


@TERMS.register
class MMDTC(TermSpec):
    """A total-correlation penalty in the MMD's own terms: MMD²(z, z′), z′ the batch's codes with every column
    shuffled across the batch (a sample of the product of the aggregate's own marginals; FactorVAE's permutation
    without its discriminator). Zero exactly when the code's dimensions are independent; beside the divergence's
    match to the prior, it pushes on dependence alone. Kernel as the MMD divergence's default (0.1–2 × median)."""

    type: Literal["mmd_tc"] = "mmd_tc"
    scales: list[PositiveFloat] = Field(
        default_factory=lambda: [0.1, 0.2, 0.5, 1.0, 2.0], min_length=1, description="RBF scales × the median"
    )

    def __call__(self, enc, batch, prior):
        from sculptcli.stats.mmd import mmd2

        z = enc.z.float()
        shuffled = torch.gather(z, 0, torch.rand(z.shape, device=z.device).argsort(0))
        return mmd2(z, shuffled, scales=self.scales)
