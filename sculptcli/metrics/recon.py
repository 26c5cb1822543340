"""Reconstruction error of a model over a set of images: NMSE = Σ‖x−x̂‖² / Σ‖x‖², linear and in dB."""

from __future__ import annotations

import math

import torch
from torch import Tensor


@torch.no_grad()
def nmse(model, images: Tensor, batch_size: int = 512) -> tuple[float, float]:
    """(NMSE linear, NMSE dB) over the whole set (global sums, not a mean of per-image ratios)."""
    device = next(model.parameters()).device
    err = energy = 0.0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device).float()
        xhat = torch.sigmoid(model.decode(model.encode(x, sample=False).mean).float())
        err += float(((x - xhat) ** 2).sum(dtype=torch.float64))
        energy += float((x**2).sum(dtype=torch.float64))
    lin = err / max(energy, 1e-12)
    return lin, 10.0 * math.log10(max(lin, 1e-12))
