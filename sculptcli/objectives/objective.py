"""The training objective: reconstruction (BCE or MSE, per-element mean or per-image sum) + weight·divergence."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import Field, NonNegativeInt

from sculptcli.data.base import Batch
from sculptcli.lazy import lazy
from sculptcli.models.encoded import Encoded
from sculptcli.objectives import DIVERGENCES
from sculptcli.objectives.divergences import DivergenceContext
from sculptcli.objectives.terms import TERMS
from sculptcli.priors.base import Sampler
from sculptcli.registry import Spec

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
    from torch import Tensor
else:
    torch = lazy("torch")
    F = lazy("torch.nn.functional")

LOG_EPS = 1e-10  # log_mse's offset (Aux-VAE's)


class ObjectiveSpec(Spec):
    recon: Literal["bce", "mse", "log_mse"] = Field(
        "mse", description="bce, mse, or log_mse: (log10(x̂+1e-10) − log10(x+1e-10))², Aux-VAE's, for faint images"
    )
    reduction: Literal["mean", "sum"] = "mean"  # mean over elements (the paper's MSE) or sum per image (ELBO)
    divergence: DIVERGENCES.union() = DIVERGENCES.get("mmd")()  # type: ignore[valid-type]
    warmup_steps: NonNegativeInt = Field(
        0, description="ramp the divergence weight linearly from 0 to its value over these training steps"
    )
    terms: list[TERMS.union()] = Field(  # type: ignore[valid-type]
        default_factory=list, description="extra weighted terms: " + ", ".join(TERMS.names())
    )

    @property
    def needs_factors(self) -> bool:
        return any(t.needs_factors for t in self.terms)

    def div_scale(self, step: int | None) -> float:
        """The fraction of the divergence weight applied at training step `step` (1 outside training)."""
        if step is None or not self.warmup_steps:
            return 1.0
        return min(1.0, (step + 1) / self.warmup_steps)


class Objective:
    """loss = recon(x, x̂) + weight · divergence(q(z), p(z)); returns the parts for logging.

    `gather` (multi-process training) maps this process's codes to the codes of the global batch, so the
    divergence — the MMD above all — is taken over the whole batch, not each process's share. A divergence with
    an auxiliary network (FactorVAE's discriminator) gets it built here; `aux_step` trains it.
    """

    def __init__(
        self,
        spec: ObjectiveSpec,
        prior: Sampler,
        n_data: int | None = None,
        latent_dim: int | None = None,
        gather: Callable[[Tensor], Tensor] | None = None,
    ):
        self.spec, self.prior, self.gather = spec, prior, gather
        self.div = spec.divergence
        dim = latent_dim if latent_dim is not None else prior.dim
        self.aux = self.div.make_aux(dim)
        if self.aux is not None:
            self.aux = self.aux.to(prior.device)
            self.aux_optimizer = self.div.make_aux_optimizer(self.aux)
        self.ctx = DivergenceContext(n_data=n_data, aux=self.aux)

    def _global(self, enc: Encoded, batch: Batch) -> tuple[Encoded, Batch]:
        """The codes and the batch of every process (multi-process training), or these."""
        if self.gather is None:
            return enc, batch
        g = self.gather
        enc = Encoded(*(None if t is None else g(t) for t in enc))
        return enc, Batch(
            batch.images,  # the reconstruction stays per process; only codes, factors and contexts are gathered
            None if batch.factors is None else g(batch.factors.float()),
            None if batch.context is None else g(batch.context),
        )

    def local(self) -> Objective:
        """This objective on this process's codes alone (held-out evaluation on one process)."""
        other = copy.copy(self)
        other.gather = None
        return other

    def aux_step(self, z: Tensor, generator: torch.Generator) -> Tensor | None:
        """One optimiser step of the auxiliary network on codes `z` (the `z` part of this objective's output:
        already the global batch); its loss, or None."""
        if self.aux is None:
            return None
        loss = self.div.aux_loss(self.aux, z.detach(), generator)
        self.aux_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.aux_optimizer.step()
        return loss.detach()

    def recon(self, logits: Tensor, x: Tensor) -> Tensor:
        logits = logits.float()
        if self.spec.recon == "bce":
            per = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        elif self.spec.recon == "log_mse":
            per = (torch.log10(torch.sigmoid(logits) + LOG_EPS) - torch.log10(x.float() + LOG_EPS)) ** 2
        else:
            per = (torch.sigmoid(logits) - x) ** 2
        per_image = per.flatten(1).sum(1) if self.spec.reduction == "sum" else per.flatten(1).mean(1)
        return per_image.mean()

    def __call__(
        self, batch: Batch, enc: Encoded, logits: Tensor, generator: torch.Generator, step: int | None = None
    ) -> dict[str, Tensor]:
        """loss, recon and div (scalars) and z, the codes the divergence saw (the global batch). `step` is the
        training step (for the divergence warm-up); None (evaluation) applies the full weight."""
        recon = self.recon(logits, batch.images)
        enc, whole = self._global(enc, batch)
        div = self.div(enc, self.prior, generator, dataclasses.replace(self.ctx, batch=whole))
        weight = self.div.weight * self.spec.div_scale(step)
        loss = recon + weight * div
        parts = {"recon": recon, "div": div, "z": enc.z}
        for term in self.spec.terms:
            value = term(enc, whole, self.prior)
            parts[term.type] = value
            loss = loss + term.weight * value
        parts["loss"] = loss
        return parts

    def term_names(self) -> list[str]:
        """The logged names of the extra terms, in order."""
        return [t.type for t in self.spec.terms]
