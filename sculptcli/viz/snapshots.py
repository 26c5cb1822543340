"""The pictures a tracker logs at each held-out evaluation, as (H, W, 3) uint8 arrays: a traversal grid of the
model as it stands and the aggregate posterior's marginals against the prior's."""

from __future__ import annotations

import numpy as np
import torch

from sculptcli.viz.diagnostics import marginals_figure
from sculptcli.viz.traverse import latent_grid, traverse_images

SNAPSHOT_DIMS = 10  # a traversal grid shows at most the 10 codes of largest spread
SNAPSHOT_ROWS = 3
SNAPSHOT_STEPS = 7


def figure_array(fig) -> np.ndarray:
    """A matplotlib figure (with an Agg canvas) -> (H, W, 3) uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def traversal_array(model, codes: torch.Tensor) -> np.ndarray:
    """Rows of the first SNAPSHOT_ROWS codes, each sweeping one coordinate over its 2nd–98th percentile among
    `codes`; one block per coordinate (the SNAPSHOT_DIMS of largest spread, in index order)."""
    lo, hi = torch.quantile(codes, torch.tensor([0.02, 0.98]), dim=0)
    dims = sorted(torch.argsort(hi - lo, descending=True)[:SNAPSHOT_DIMS].tolist())
    t = torch.linspace(0, 1, SNAPSHOT_STEPS)
    values = lo[:, None] + (hi - lo)[:, None] * t[None, :]  # (d, steps)
    images = traverse_images(model, codes[:SNAPSHOT_ROWS], dims, values)
    grid, _ = latent_grid(images, gap=4)
    if grid.shape[0] == 1:
        grid = grid.expand(3, -1, -1)
    return (grid[:3].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def marginals_array(codes: torch.Tensor, prior_samples: torch.Tensor | None, title: str) -> np.ndarray:
    """The posterior-vs-prior histogram of each code dimension (at most 20 panels)."""
    keep = slice(0, 20)
    p = None if prior_samples is None else prior_samples[:, keep]
    fig = marginals_figure(codes[:, keep], p, title=title)
    return figure_array(fig)


@torch.no_grad()
def snapshots(model, images: torch.Tensor, prior, step: int) -> dict[str, np.ndarray]:
    """The evaluation's pictures for `images` (held-out, on any device): traversal grid and marginals."""
    was_training = model.training
    model.eval()
    try:
        codes = model.embed(images).float().cpu()
        draws = None
        if not getattr(prior.spec, "needs_factors", False):
            draws = prior.to("cpu").sample(len(codes), torch.Generator().manual_seed(step)).float()
        return {
            "pictures/traversal": traversal_array(model, codes),
            "pictures/marginals": marginals_array(codes, draws, f"step {step}"),
        }
    finally:
        model.train(was_training)
