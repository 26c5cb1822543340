"""A prior's sample as a figure: per-dimension histograms on the diagonal, pairwise scatter plots off it."""

from __future__ import annotations

import textwrap

import numpy as np

FORMATS = ("png", "pdf", "svg")


def prior_figure(samples, title: str = "", max_dims: int = 8, scatter_n: int = 3000, bins: int = 80):
    """A matplotlib Figure (Agg canvas, no pyplot state) of the first `max_dims` dims of an (n, d) sample.

    One dimension: a single histogram. Otherwise a grid: histograms on the diagonal, scatter plots of
    (dim j, dim i) below and above it, at most `scatter_n` points each."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = samples.detach().cpu().numpy() if hasattr(samples, "detach") else np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    x = x.astype(np.float64)
    d_all = x.shape[1]
    d = min(d_all, max_dims)
    pts = x[: min(len(x), scatter_n)]
    if d == 1:
        fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        ax.hist(x[:, 0], bins=bins, density=True, color="C0", alpha=0.85)
        ax.set_xlabel("z0")
        ax.set_ylabel("density")
    else:
        size = max(2.0, 12.0 / d) * d
        fig = Figure(figsize=(size, size), dpi=100, layout="constrained")
        axes = fig.subplots(d, d, squeeze=False)
        for i in range(d):
            for j in range(d):
                ax = axes[i][j]
                if i == j:
                    ax.hist(x[:, i], bins=bins, density=True, color="C0", alpha=0.85)
                    ax.set_yticks([])
                else:
                    ax.scatter(pts[:, j], pts[:, i], s=2, alpha=0.3, color="C1", linewidths=0, rasterized=True)
                if i == d - 1:
                    ax.set_xlabel(f"z{j}")
                if j == 0:
                    ax.set_ylabel(f"z{i}")
                ax.tick_params(labelsize=7)
    shown = f" (first {d} of {d_all} dims)" if d < d_all else ""
    width = 70 if d == 1 else max(70, 14 * d)
    fig.suptitle(textwrap.fill(f"{title}{shown}", width) + f"\nn={len(x)}", fontsize=10)
    FigureCanvasAgg(fig)
    return fig
