"""The autoencoder interface every model implements: encode to (mean, logvar, z), decode to logits."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class Encoded(NamedTuple):
    mean: Tensor  # posterior mean (the representation that is scored)
    logvar: Tensor | None  # None for a deterministic encoder
    z: Tensor  # the code fed to the decoder: mean, or a reparameterised sample


class AutoEncoder(nn.Module):
    """Subclasses provide `encoder` (x -> features of size 2d or d) and `decoder` (z -> logits)."""

    latent_dim: int
    stochastic: bool

    def encode(self, x: Tensor, sample: bool | None = None) -> Encoded:
        h = self.encoder(x)
        if not self.stochastic:
            return Encoded(h, None, h)
        mean, logvar = h.chunk(2, dim=1)
        logvar = logvar.clamp(-20.0, 10.0)
        if sample is None:
            sample = self.training
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        return Encoded(mean, logvar, z)

    def decode(self, z: Tensor) -> Tensor:
        """Logits of the reconstruction; `torch.sigmoid` gives pixels in [0, 1]."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Encoded, Tensor]:
        enc = self.encode(x)
        return enc, self.decode(enc.z)

    @torch.no_grad()
    def embed(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Posterior means of a whole set, in batches, as float32."""
        return torch.cat(
            [self.encode(x[i : i + batch_size], sample=False).mean.float() for i in range(0, len(x), batch_size)]
        )
