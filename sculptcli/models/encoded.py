"""What an encoder returns: (mean, logvar, z, …), defined without torch so the objective specs import it freely."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from torch import Tensor


class Encoded(NamedTuple):
    mean: Tensor  # posterior mean (the representation that is scored)
    logvar: Tensor | None  # None for a deterministic encoder
    z: Tensor  # the code fed to the decoder: mean, or a reparameterised sample
    pre: Tensor | None = None  # a quantised model's continuous code before quantisation
    quantized: Tensor | None = None  # its nearest codebook values, with the gradient to the codebook
