"""The paper's Fig. 1 views of a scored latent space: marginals against the prior, the latent covariance, and
per-dimension LPS. Each function returns a matplotlib Figure (Agg canvas, no pyplot state)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

ANNOTATE_MAX_D = 16  # covariance cells carry their values up to this many dimensions


def _np(x) -> np.ndarray:
    return (x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)).copy()


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def marginals_figure(latents, prior_samples=None, bins: int = 50, title: str = ""):
    """Density-normalised histograms of every latent dimension (aggregate posterior), with the prior's
    marginal overlaid when `prior_samples` (m, d) is given. Bins span the 0.1–99.9th percentiles of both."""
    z = _np(latents)
    p = None if prior_samples is None else _np(prior_samples)
    d = z.shape[1]
    ncols = min(d, 5)
    nrows = math.ceil(d / ncols)
    fig = _figure(2.6 * ncols, 2.0 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i in range(nrows * ncols):
        ax = axes[i // ncols][i % ncols]
        if i >= d:
            ax.set_axis_off()
            continue
        both = z[:, i] if p is None else np.concatenate([z[:, i], p[:, i]])
        lo, hi = np.quantile(both, [0.001, 0.999])
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        ax.hist(z[:, i], bins=edges, density=True, color="C0", alpha=0.6, label="aggregate posterior")
        if p is not None:
            ax.hist(p[:, i], bins=edges, density=True, histtype="step", color="C3", linewidth=1.4, label="prior")
        ax.set_title(f"z{i}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.suptitle(f"{title}\nmarginals: aggregate posterior" + (" vs prior" if p is not None else ""), fontsize=10)
    return fig


def covariance_figure(latents, title: str = ""):
    """Heatmap of the latent covariance matrix, symmetric colour scale around 0, with a colour bar; the
    values are written in the cells when d ≤ ANNOTATE_MAX_D."""
    z = _np(latents)
    d = z.shape[1]
    c = np.atleast_2d(np.cov(z, rowvar=False))
    side = min(12.0, max(4.0, 0.45 * d + 2.0))
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    m = float(np.abs(c).max()) or 1.0
    im = ax.imshow(c, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="covariance")
    if d <= ANNOTATE_MAX_D:
        size = 8 if d <= 8 else 6
        for i in range(d):
            for j in range(d):
                dark = abs(c[i, j]) > 0.6 * m
                ax.text(j, i, f"{c[i, j]:.2g}", ha="center", va="center", fontsize=size, color="w" if dark else "k")
    ticks = range(d) if d <= 32 else range(0, d, max(1, d // 16))
    ax.set_xticks(list(ticks), [f"z{t}" for t in ticks], fontsize=7, rotation=90 if d > 16 else 0)
    ax.set_yticks(list(ticks), [f"z{t}" for t in ticks], fontsize=7)
    ax.set_title(f"{title}\nlatent covariance", fontsize=10)
    return fig


def lps_figure(per_dim: dict[str, list[float]], title: str = ""):
    """Grouped bars: held-out R² of predicting each dimension from the others, one bar per probe."""
    probes = [p for p, v in per_dim.items() if v]
    d = max((len(per_dim[p]) for p in probes), default=0)
    fig = _figure(min(14.0, max(5.0, 0.5 * d * max(1, len(probes)) ** 0.5 + 2.0)), 3.6)
    ax = fig.add_subplot()
    if not probes:
        ax.text(0.5, 0.5, "no LPS computed", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        width = 0.8 / len(probes)
        x = np.arange(d)
        for i, probe in enumerate(probes):
            v = np.asarray(per_dim[probe], dtype=np.float64)
            ax.bar(x + (i - (len(probes) - 1) / 2) * width, v, width, label=f"{probe} (mean {v.mean():.3f})")
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ticks = range(d) if d <= 32 else range(0, d, max(1, d // 16))
        ax.set_xticks(list(ticks), [f"z{t}" for t in ticks], fontsize=7)
        ax.set_ylabel("held-out R² from the other dims")
        ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{title}\nper-dimension LPS · lower = more independent", fontsize=10)
    return fig


def write_diagnostics(
    out_dir: Path, latents, prior_samples=None, lps_per_dim: dict[str, list[float]] | None = None, title: str = ""
) -> list[Path]:
    """Draw all three figures, then write marginals.png, covariance.png and lps.png atomically into `out_dir`."""
    from sculptcli.io import atomic_write

    out_dir = Path(out_dir)
    figs = {
        "marginals.png": marginals_figure(latents, prior_samples, title=title),
        "covariance.png": covariance_figure(latents, title=title),
        "lps.png": lps_figure(lps_per_dim or {}, title=title),
    }
    paths = []
    for name, fig in figs.items():
        path = out_dir / name
        atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png"))
        paths.append(path)
    return paths
