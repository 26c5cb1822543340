"""Scores of a model trained on intervention contexts (arXiv 2507.04754): how well it generates each concept and
each held-out composition — sliced Wasserstein distances (POT) between generated and held-out images — and
reconstruction in bits per dimension."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sculptcli.metrics import METRICS, ScoreInput
from sculptcli.models.context import intervention_mask

SWD_PROJECTIONS = 50  # POT's default, as the release calls it


def sliced_wasserstein(x: Tensor, y: Tensor, seed: int, projections: int = SWD_PROJECTIONS) -> float:
    """POT's sliced Wasserstein distance (p = 2) between two sets of flattened images, seeded projections."""
    import ot

    a = x.flatten(1).double().cpu().numpy()
    b = y.flatten(1).double().cpu().numpy()
    return float(ot.sliced_wasserstein_distance(a, b, n_projections=projections, seed=seed))


def ivn_for(model, context: str, n: int, device) -> Tensor | None:
    """The intervention mask of `context` for a model with a context module; None for a model without one
    (a base model generates and reconstructs the same whatever the context, as the release's vanilla VAE)."""
    if not getattr(model, "concepts", None):
        return None
    return intervention_mask(model.concepts, context, n, device)


@torch.no_grad()
def generate(model, prior, context: str, n: int, seed: int, batch_size: int = 512) -> Tensor:
    """n images decoded from prior draws through the module under `context` (float (n, C, H, W) in [0, 1])."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z = prior.sample(n, g).to(device)
    out = []
    for i in range(0, n, batch_size):
        zi = z[i : i + batch_size]
        out.append(torch.sigmoid(model.decode(zi, ivn_for(model, context, len(zi), device)).float()))
    return torch.cat(out)


@torch.no_grad()
def bits(model, images: Tensor, context: str, batch_size: int = 512) -> tuple[float, float | None]:
    """(reconstruction nats per image: Σ BCE over pixels and channels, the same plus the KL to N(0, I) of a
    stochastic encoder or None) averaged over `images` reconstructed under `context`."""
    device = next(model.parameters()).device
    bce = kl = 0.0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device).float()
        enc = model.encode(x, sample=False)
        logits = model.decode(enc.mean, ivn_for(model, context, len(x), device)).float()
        bce += float(F.binary_cross_entropy_with_logits(logits, x, reduction="sum"))
        if enc.logvar is not None:
            m, lv = enc.mean.float(), enc.logvar.float()
            kl += float(0.5 * (m.pow(2) + lv.exp() - 1.0 - lv).sum())
    n = len(images)
    stochastic = getattr(model, "stochastic", False) and getattr(model, "_modules", {}).get("quantizer") is None
    return bce / n, (bce + kl) / n if stochastic else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@METRICS.register(
    "context",
    keys=("swd", "swd_concept", "swd_composition", "bpd", "bpd_ood", "recon_bpd", "recon_bpd_ood", "bpd_pixel"),
    whole_code=True,
)
def _context(inp: ScoreInput):
    """Per training context and per held-out composition: the SWD between `n` generated images (prior draws
    through the module under that context) and `n` held-out images of it; BPD of the held-out images
    reconstructed under their own context. Null for data without contexts."""
    data, model = inp.data, inp.model
    if model is None or data is None or not getattr(data, "contexts", None) or not hasattr(data, "heldout_context"):
        return None
    n = int(inp.options.get("swd_n") or len(inp.latents))
    swd: dict[str, float] = {}
    nats: dict[str, tuple[float, float | None]] = {}
    concept_ctx = list(data.contexts)
    compositions = list(getattr(data, "compositions", ()))
    skipped = []
    for k, context in enumerate(concept_ctx + compositions):
        real = data.heldout_context(context, n)
        if len(real) < 2:  # a label of a user's file with (almost) no held-out images
            skipped.append(context)
            continue
        fake = generate(model, inp.prior, context, len(real), inp.seed + 1 + k)
        swd[context] = sliced_wasserstein(fake, real, seed=inp.seed)
        nats[context] = bits(model, real, context)
    concept_ctx = [x for x in concept_ctx if x not in skipped]
    compositions = [x for x in compositions if x not in skipped]
    if not concept_ctx:
        raise ValueError("no context has two held-out images")
    c, h, w = data.shape
    per_dim = 1.0 / (c * h * w * math.log(2))

    def avg(names: list[str], elbo: bool) -> float | None:
        vals = [nats[x][1] if elbo else nats[x][0] for x in names]
        return None if any(v is None for v in vals) else _mean(vals)  # type: ignore[arg-type]

    bpd, bpd_ood = avg(concept_ctx, True), avg(compositions, True)
    return {
        "swd": swd,
        "swd_concept": _mean([swd[x] for x in concept_ctx]),
        "swd_composition": _mean([swd[x] for x in compositions]),
        "bpd": None if bpd is None else bpd * per_dim,
        "bpd_ood": None if bpd_ood is None else bpd_ood * per_dim,
        "recon_bpd": avg(concept_ctx, False) * per_dim,
        "recon_bpd_ood": None if not compositions else avg(compositions, False) * per_dim,
        "bpd_pixel": None if bpd is None else bpd / (h * w * math.log(2)),
        "_settings": {
            "context": {
                "swd": f"POT sliced_wasserstein_distance, {SWD_PROJECTIONS} projections (seed {inp.seed}), p=2, on "
                f"up to {n} flattened held-out images per context and as many generated (prior draws decoded "
                "through the module under that context; a model without one: the same decoder for all)",
                "bpd": "−ELBO (Σ BCE + KL to N(0, I)) / (C·H·W·ln 2) of held-out images under their own context; "
                "null for a deterministic encoder (no ELBO: recon_bpd is Σ BCE alone). bpd_pixel divides by H·W "
                "instead, the release's normaliser behind the published 0.519 (CM) and 0.444 (base)",
                "concepts": concept_ctx,
                "compositions": compositions,
                "skipped": skipped,
            }
        },
    }
