"""Warnings about a run's health from its held-out evaluations: collapsed codes, a prior match that stalls."""

from __future__ import annotations

STALL_EVALS = 3  # evaluations without progress before the MMD² warning
STALL_FLOOR = 0.05  # MMD² below this is matched well enough that a plateau is no concern


def run_warnings(evals: list[dict], latent_dim: int, matches_prior: bool) -> list[str]:
    """Warnings for the newest evaluation in `evals` (each a held-out record from `evaluate`)."""
    if not evals:
        return []
    out = []
    last = evals[-1]
    dead = last.get("collapsed_dims") or []
    if dead:
        which = "every latent dimension" if len(dead) == latent_dim else f"dims {', '.join(map(str, dead))}"
        out.append(
            f"collapsed codes: {which} constant on held-out data (std < 1e-3 of the prior's); "
            "their LPS is not computed. Check the input scale (model.input_norm, data.normalize), the learning "
            "rate or the divergence warm-up (objective.warmup_steps)"
        )
    if matches_prior and len(evals) > STALL_EVALS:
        recent = [e["mmd2_prior"] for e in evals[-STALL_EVALS:]]
        before = min(e["mmd2_prior"] for e in evals[:-STALL_EVALS])
        if min(recent) >= 0.9 * before and recent[-1] > STALL_FLOOR:
            out.append(
                f"MMD² to the prior has not fallen for {STALL_EVALS} evaluations ({recent[-1]:.3f}): the codes are "
                "not matching the prior"
            )
    return out


FAINT_P99 = 0.05  # a set whose 99th-percentile pixel is below this is "faint"
DEAD_SPREAD = 1e-2  # initial codes whose std is below this fraction of the prior's barely see the input


def input_scale_warning(x, standardised: bool = False) -> str | None:
    """A warning when a training batch `x` (pixels in [0, 1]) has a degenerate scale: constant, or faint with a
    few bright pixels (astronomy stamps), on which an autoencoder's codes tend to collapse unless its input is
    standardised (`standardised`: model.input_norm=data)."""
    import torch

    x = x.detach().float().flatten()
    if x.numel() == 0:
        return None
    if float(x.max() - x.min()) == 0.0:
        return f"every pixel of the first training batch equals {float(x[0]):.3g}: the images carry no signal"
    sample = x[torch.linspace(0, x.numel() - 1, min(x.numel(), 1_000_000)).long()]
    p99 = float(torch.quantile(sample, 0.99))
    if p99 < FAINT_P99:
        head = f"faint images: 99% of pixels are below {p99:.3g} (max {float(x.max()):.3g}, mean {float(x.mean()):.2g})"
        if standardised:
            return (
                f"{head}; the encoder sees them standardised, but the reconstruction is dominated by the dark "
                "background: consider data.normalize=asinh (or log) or objective.recon=log_mse"
            )
        return (
            f"{head}, and model.input_norm is none: codes of such sets tend to collapse. Set model.input_norm=data, "
            "data.normalize=asinh (or log), or a divergence warm-up (objective.warmup_steps)"
        )
    return None
