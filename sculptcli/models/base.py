"""The autoencoder interface every model implements: encode to (mean, logvar, z), decode to logits."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sculptcli.models.encoded import Encoded  # noqa: F401  (defined torch-free; imported from here too)


class Quantizer(nn.Module):
    """QLAE's latent quantisation (arXiv 2305.18378): one learnable scalar codebook per latent dimension, each
    code replaced by the nearest value of its dimension's codebook, with a straight-through gradient."""

    def __init__(self, dim: int, values: int, low: float, high: float):
        super().__init__()
        self.codebook = nn.Parameter(torch.linspace(low, high, values).repeat(dim, 1))  # (dim, values)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(straight-through codes: the values of `quantized` with z's gradient, `quantized`: the nearest codebook
        values with the codebook's gradient)."""
        book = self.codebook.to(z.dtype)
        idx = (z.unsqueeze(-1) - book).abs().argmin(-1)  # (B, dim)
        quantized = torch.gather(book.expand(len(z), -1, -1), 2, idx.unsqueeze(-1)).squeeze(-1)
        return quantized.detach() + (z - z.detach()), quantized  # exactly the codebook values, z's gradient


class AutoEncoder(nn.Module):
    """Subclasses provide `encoder` (x -> features of size 2d or d) and `decoder` (z -> logits), and call
    `init_input_norm(channels)` in their constructor.

    The encoder sees its input standardised per channel, (x − in_shift) / in_scale, with statistics of the
    training images set once before training (`fit_input_norm`) and saved with the weights; the decoder still
    reconstructs pixels in [0, 1]. Without it the codes of faint images (astronomy stamps whose pixels are mostly
    below 0.01) barely vary at initialisation, and the prior-matching term then keeps them collapsed."""

    latent_dim: int
    stochastic: bool

    def init_input_norm(self, channels: int) -> None:
        self.register_buffer("in_shift", torch.zeros(channels))
        self.register_buffer("in_scale", torch.ones(channels))

    @torch.no_grad()
    def fit_input_norm(self, x: Tensor) -> None:
        """Set the input standardisation from a sample of training images `x` (B, C, H, W)."""
        x = x.float()
        self.in_shift.copy_(x.mean(dim=(0, 2, 3)))
        self.in_scale.copy_(x.std(dim=(0, 2, 3)).clamp_min(1e-6))

    def encode(self, x: Tensor, sample: bool | None = None) -> Encoded:
        x = (x - self.in_shift.view(1, -1, 1, 1).to(x.dtype)) / self.in_scale.view(1, -1, 1, 1).to(x.dtype)
        h = self.encoder(x)
        quantizer = self._modules.get("quantizer")  # a QLAE model's (a submodule, not a class attribute)
        if quantizer is not None:  # deterministic; the scored codes are the codebook values
            st, quantized = quantizer(h)
            return Encoded(st, None, st, h, quantized)
        if not self.stochastic:
            return Encoded(h, None, h)
        mean, logvar = h.chunk(2, dim=1)
        logvar = logvar.clamp(-20.0, 10.0)
        if sample is None:
            sample = self.training
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        return Encoded(mean, logvar, z)

    def attach_context_module(self, spec) -> None:
        """Put a context module (arXiv 2507.04754) between the latent and the decoder, when `spec` gives one."""
        self.concepts: list[str] | None = None  # the concept of each latent block, in order
        if spec is not None:
            self.context_module = spec.build(self.latent_dim)
            self.concepts = list(spec.concepts)

    def decode(self, z: Tensor, ivn: Tensor | None = None) -> Tensor:
        """Logits of the reconstruction; `torch.sigmoid` gives pixels in [0, 1]. With a context module, `ivn`
        (bool (B, n_concepts)) says which concepts each row's context intervenes on (None: observational)."""
        module = self._modules.get("context_module")
        if module is not None:
            z = module(z, ivn)
        return self.decoder(z)

    def forward(self, x: Tensor, ivn: Tensor | None = None) -> tuple[Encoded, Tensor]:
        enc = self.encode(x)
        return enc, self.decode(enc.z, ivn)

    def after_step(self) -> None:
        """Called after every optimiser step (the context module clamps its causal weights to [0, 1])."""
        module = self._modules.get("context_module")
        if module is not None:
            module.after_step()

    @torch.no_grad()
    def embed(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Posterior means of a whole set, in batches, as float32."""
        return torch.cat(
            [self.encode(x[i : i + batch_size], sample=False).mean.float() for i in range(0, len(x), batch_size)]
        )
