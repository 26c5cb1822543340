"""The periodic held-out evaluation during training: objective, NMSE, linear LPS and MMD² to the prior."""

from __future__ import annotations

import torch

from sculptcli.metrics.distribution import mmd2_to_prior
from sculptcli.metrics.lps import lps
from sculptcli.metrics.recon import nmse


@torch.no_grad()
def evaluate(model, objective, images, prior, seed: int, step: int) -> dict[str, float]:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = []
    for i in range(0, len(images), 512):
        x = images[i : i + 512].to(device)
        enc = model.encode(x, sample=False)
        g = torch.Generator(device=device).manual_seed(seed + i)
        losses.append(float(objective(x, enc, model.decode(enc.z), g)["loss"]) * len(x))
    z = model.embed(images).cpu()
    lin, db = nmse(model, images)
    out = {
        "heldout_loss": sum(losses) / len(images),
        "nmse_db": db,
        "lps_linear": lps(z, "linear", seed=seed).mean if z.shape[1] >= 2 else float("nan"),
        "mmd2_prior": mmd2_to_prior(z, prior, n=min(len(z), 2000), seed=seed),
    }
    model.train(was_training)
    return out
