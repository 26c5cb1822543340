"""Latent traversals: sweep one latent coordinate of real images' codes and decode, as a grid, a figure and a GIF.

Pure functions, no CLI: `parse_range` reads a `--range` string, `sweep_values` turns it into the swept
values of every dimension, `traverse_images` decodes the sweeps, `latent_grid` tiles them with
`torchvision.utils.make_grid` (one block of rows per swept dimension), `traversal_figure` annotates the grid
with matplotlib and `gif_frames` cuts it into one frame per swept value.

Grid geometry (`GridLayout`): every block is one make_grid of rows × steps cells of H × W pixels with
`padding` pixels around each cell, so a block is steps·(W+p)+p wide and rows·(H+p)+p tall; blocks are
stacked top to bottom with `gap` blank pixel rows between them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sculptcli.errors import UserError

RANGE_FORMS = "prior, data, codebook (a quantised model), fixed:LO:HI (e.g. fixed:-3:3) or fit:K (e.g. fit:2)"
PRIOR_PERCENTILES = (2.0, 98.0)
PRIOR_SAMPLES = 50_000
PAD_VALUE = 1.0  # white lines between cells (the figure background)
DPI = 100
MIN_FIGURE_WIDTH = 420  # room for the title
MAX_FIGURE_PX = 60_000  # Agg cannot draw images beyond 2^16 pixels a side

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


# ---------------------------------------------------------------- sweep values


@dataclass(frozen=True)
class RangeSpec:
    """A parsed `--range`: mode prior | data | fixed (lo, hi) | fit (k standard deviations)."""

    mode: str
    lo: float | None = None
    hi: float | None = None
    k: float | None = None

    def describe(self) -> str:
        if self.mode == "codebook":
            return "codebook values of each latent"
        if self.mode == "prior":
            return f"prior {PRIOR_PERCENTILES[0]:g}–{PRIOR_PERCENTILES[1]:g}th percentile"
        if self.mode == "data":
            return "data min–max"
        if self.mode == "fixed":
            return f"fixed [{self.lo:g}, {self.hi:g}]"
        return f"data mean ± {self.k:g}σ"


def parse_range(text: str) -> RangeSpec:
    """`prior`, `data`, `fixed:LO:HI` or `fit:K` -> RangeSpec; anything else is a UserError naming the forms."""
    t = str(text).strip().lower()
    if t in ("prior", "data", "codebook"):
        return RangeSpec(t)
    m = re.fullmatch(rf"fixed:({_NUM}):({_NUM})", t)
    if m:
        lo, hi = float(m.group(1)), float(m.group(2))
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise UserError(f"--range {text}: LO must be smaller than HI", fix=f"--range takes {RANGE_FORMS}")
        return RangeSpec("fixed", lo=lo, hi=hi)
    m = re.fullmatch(rf"fit:({_NUM})", t)
    if m:
        k = float(m.group(1))
        if not (math.isfinite(k) and k > 0):
            raise UserError(f"--range {text}: K must be positive", fix=f"--range takes {RANGE_FORMS}")
        return RangeSpec("fit", k=k)
    raise UserError(f"unknown --range '{text}'", fix=f"--range takes {RANGE_FORMS}")


def iid_groups(spec, d: int) -> list[list[int]]:
    """Dimensions of a d-dimensional prior grouped by identical marginals: the copies of a 1-D prior,
    including equal 1-D blocks of a product prior; other dimensions (mvn, nested products) stand alone."""
    from sculptcli.priors.builtin import Product

    if not isinstance(spec, Product):
        return [list(range(d))] if spec.event_dim() is None else [[i] for i in range(d)]
    groups: dict[str, list[int]] = {}
    start = 0
    for block, k in zip(spec.blocks, spec.block_dims(), strict=True):
        dims = list(range(start, start + k))
        if block.event_dim() is None:
            key = json.dumps(block.model_dump(mode="json", exclude={"dims"}), sort_keys=True)
            groups.setdefault(key, []).extend(dims)
        else:
            groups.update({f"#{i}": [i] for i in dims})
        start += k
    return list(groups.values())


def range_bounds(
    spec: RangeSpec,
    *,
    codes: Tensor | None = None,
    prior=None,
    dim: int | None = None,
    seed: int = 0,
    n_prior: int = PRIOR_SAMPLES,
) -> tuple[Tensor, Tensor]:
    """(lo, hi), each float (d,), of every latent dimension under `spec`.

    prior: the PRIOR_PERCENTILES of a seeded sample of `prior` (a Sampler: `.spec`, `.dim`,
    `.sample(n, generator)`), pooled over dimensions with identical marginals so they sweep identical values;
    data: min and max of `codes` (n, d); fit: mean ± k·std of `codes`; fixed: the same for every dimension
    (d from `codes`, `prior` or `dim`)."""
    if spec.mode == "prior":
        if prior is None:
            raise UserError("--range prior needs the model's prior", fix="use --range data, fit:K or fixed:LO:HI")
        g = torch.Generator().manual_seed(seed)
        d = prior.dim
        s = prior.sample(min(n_prior, max(5_000, 4_000_000 // d)), g).double().cpu().numpy()
        lo, hi = torch.empty(d, dtype=torch.float64), torch.empty(d, dtype=torch.float64)
        for group in iid_groups(prior.spec, d):  # i.i.d. dimensions share one pooled estimate
            q = np.quantile(s[:, group].reshape(-1), [p / 100 for p in PRIOR_PERCENTILES])
            lo[group], hi[group] = float(q[0]), float(q[1])
    elif spec.mode in ("data", "fit"):
        if codes is None or len(codes) < 2:
            raise UserError(f"--range {spec.mode} needs encoded data (at least 2 codes)")
        z = codes.double().cpu()
        if spec.mode == "data":
            lo, hi = z.min(0).values, z.max(0).values
        else:
            assert spec.k is not None
            mean, std = z.mean(0), z.std(0)
            lo, hi = mean - spec.k * std, mean + spec.k * std
    elif spec.mode == "fixed":
        if dim is None:
            dim = codes.shape[1] if codes is not None else prior.dim if prior is not None else None
        if dim is None:
            raise ValueError("fixed range bounds need the latent size")
        lo = torch.full((dim,), float(spec.lo), dtype=torch.float64)
        hi = torch.full((dim,), float(spec.hi), dtype=torch.float64)
    else:
        raise ValueError(f"unknown range mode {spec.mode!r}")
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise UserError(f"the {spec.describe()} range is not finite", fix="use --range fixed:LO:HI")
    return lo.float(), hi.float()


def sweep_values(spec: RangeSpec, steps: int, **kw) -> Tensor:
    """The swept values, float (d, steps): `steps` evenly spaced values from lo to hi per dimension
    (see `range_bounds` for the keyword arguments)."""
    if steps < 2:
        raise ValueError("a sweep needs at least 2 steps")
    lo, hi = range_bounds(spec, **kw)
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    return (lo.double()[:, None] + (hi - lo).double()[:, None] * t[None, :]).float()


# ---------------------------------------------------------------- decoding


def traversal_codes(codes: Tensor, dim: int, values: Tensor) -> Tensor:
    """(rows, d) codes and (steps,) values -> (rows·steps, d): row r repeated, coordinate `dim` swept."""
    rows, steps = codes.shape[0], values.shape[0]
    z = codes[:, None, :].expand(rows, steps, codes.shape[1]).clone()
    z[:, :, dim] = values.to(z)[None, :]
    return z.reshape(rows * steps, -1)


@torch.no_grad()
def traverse_images(model, codes: Tensor, dims: list[int], values: Tensor, batch_size: int = 512) -> Tensor:
    """Decoded traversals, float (len(dims), rows, steps, C, H, W) in [0, 1] (sigmoid of the decoder's logits).

    Block b sweeps coordinate dims[b] over values[dims[b]] (values is (d, steps)) while every other
    coordinate keeps each row's own code."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    rows, steps = codes.shape[0], values.shape[1]
    z = torch.cat([traversal_codes(codes, k, values[k]) for k in dims]).to(device)
    out = torch.cat([torch.sigmoid(model.decode(z[i : i + batch_size]).float()) for i in range(0, len(z), batch_size)])
    return out.cpu().reshape(len(dims), rows, steps, *out.shape[1:])


# ---------------------------------------------------------------- the grid


@dataclass(frozen=True)
class GridLayout:
    """Where every cell of a traversal grid lies (in grid pixels)."""

    blocks: int
    rows: int
    steps: int
    height: int  # of one image
    width: int
    padding: int = 2
    gap: int = 0

    @property
    def block_height(self) -> int:
        return self.rows * (self.height + self.padding) + self.padding

    @property
    def grid_width(self) -> int:
        return self.steps * (self.width + self.padding) + self.padding

    @property
    def grid_height(self) -> int:
        return self.blocks * self.block_height + (self.blocks - 1) * self.gap

    def block_top(self, b: int) -> int:
        return b * (self.block_height + self.gap)

    def cell(self, b: int, r: int, s: int) -> tuple[slice, slice]:
        """(row slice, column slice) of cell (block b, row r, step s) in the grid, padding excluded."""
        y = self.block_top(b) + self.padding + r * (self.height + self.padding)
        x = self.padding + s * (self.width + self.padding)
        return slice(y, y + self.height), slice(x, x + self.width)

    def column(self, s: int) -> slice:
        """Columns of step s, with the padding on both sides."""
        x = s * (self.width + self.padding)
        return slice(x, x + self.width + 2 * self.padding)


def latent_grid(images: Tensor, padding: int = 2, gap: int = 0) -> tuple[Tensor, GridLayout]:
    """(blocks, rows, steps, C, H, W) images -> (the grid, float (3, Hg, Wg) in [0, 1], its GridLayout)."""
    from torchvision.utils import make_grid

    nb, rows, steps, c, h, w = images.shape
    layout = GridLayout(nb, rows, steps, h, w, padding, gap)
    parts = []
    for b in range(nb):
        block = make_grid(images[b].reshape(rows * steps, c, h, w), nrow=steps, padding=padding, pad_value=PAD_VALUE)
        if b:
            parts.append(torch.full((block.shape[0], gap, block.shape[2]), PAD_VALUE))
        parts.append(block)
    grid = torch.cat(parts, dim=1).clamp(0.0, 1.0)
    assert grid.shape[1:] == (layout.grid_height, layout.grid_width), (grid.shape, layout)
    return grid, layout


def display_scale(height: int, width: int, target: int = 64) -> int:
    """Integer upscale so a cell is drawn at least `target` pixels on its shorter side."""
    return max(1, math.ceil(target / max(1, min(height, width))))


def label_gap(values: Tensor, dims: list[int], scale: int) -> int:
    """Grid pixel rows between blocks: room for each block's own column labels when the blocks'
    swept values differ, a thin line otherwise."""
    shared = all(torch.allclose(values[k], values[dims[0]]) for k in dims)
    return math.ceil((6 if shared or len(dims) == 1 else 18) / scale)


# ---------------------------------------------------------------- the figure


@dataclass(frozen=True)
class FigureLayout:
    """Pixel geometry of the annotated figure: the grid is drawn `scale`× at (left, top)."""

    width: int
    height: int
    left: int
    top: int
    scale: int


def figure_layout(layout: GridLayout, labelled_rows: bool, scale: int = 1) -> FigureLayout:
    """The annotated figure's size and the grid's place in it: margins for the title and column labels
    (top), the row labels (left, for several blocks), at least MIN_FIGURE_WIDTH wide with the grid centred."""
    margin = 64 if labelled_rows else 16
    top, bottom, right = 52, 12, 16
    gw, gh = layout.grid_width * scale, layout.grid_height * scale
    width = max(margin + gw + right, MIN_FIGURE_WIDTH)
    left = max(margin, (width - gw) // 2)
    return FigureLayout(width, top + gh + bottom, left, top, scale)


def column_labels(values: Tensor) -> list[str]:
    """Labels of one sweep's values, with enough decimals (2 to 5) that neighbouring values differ."""
    v = values.double().tolist()
    step = abs(v[-1] - v[0]) / max(1, len(v) - 1)
    decimals = 2 if step <= 0 else min(5, max(2, math.ceil(-math.log10(step)) + 1))
    return [f"{x:.{decimals}f}" if abs(x) < 1000 else f"{x:.3g}" for x in v]


def traversal_figure(
    grid: Tensor,
    layout: GridLayout,
    dims: list[int],
    values: Tensor,
    title: str,
    subtitle: str = "",
    scale: int = 1,
):
    """The grid annotated: title, the swept values as column labels (above every block when the blocks'
    values differ) and, for several blocks, a row label per block. Returns (Figure, FigureLayout); saving
    it at DPI gives exactly FigureLayout.width × height pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    several = len(dims) > 1
    fl = figure_layout(layout, labelled_rows=several, scale=scale)
    if max(fl.width, fl.height) > MAX_FIGURE_PX:
        raise UserError(
            f"the figure would be {fl.width}×{fl.height} pixels, too large to draw",
            fix="use a single --dim, or fewer --seeds or --steps",
        )
    fig = Figure(figsize=(fl.width / DPI, fl.height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fl.width)
    ax.set_ylim(fl.height, 0)  # pixel coordinates, y down
    ax.set_axis_off()
    gw, gh = layout.grid_width * scale, layout.grid_height * scale
    img = grid.permute(1, 2, 0).numpy()
    ax.imshow(
        img,
        extent=(fl.left, fl.left + gw, fl.top + gh, fl.top),
        interpolation="nearest",
        aspect="auto",
        vmin=0.0,
        vmax=1.0,
    )
    ax.text(fl.width / 2, 6, title, ha="center", va="top", fontsize=10, fontweight="bold")
    if subtitle:
        ax.text(fl.width / 2, 22, subtitle, ha="center", va="top", fontsize=8, color="0.3")
    shared = all(torch.allclose(values[k], values[dims[0]]) for k in dims)
    for b, k in enumerate(dims):
        top = fl.top + layout.block_top(b) * scale
        if b == 0 or not shared:
            for s, label in enumerate(column_labels(values[k])):
                cols = layout.column(s)
                x = fl.left + (cols.start + cols.stop) / 2 * scale
                ax.text(x, top - 2, label, ha="center", va="bottom", fontsize=7)
        if several:
            y = top + layout.block_height * scale / 2
            ax.text(fl.left - 8, y, f"z{k}", ha="right", va="center", fontsize=10, fontweight="bold")
    return fig, fl


def swap_images(model, a: Tensor, b: Tensor, groups: list[list[int]], batch_size: int = 512) -> Tensor:
    """Decoded subspace swaps, float (rows, 2 + len(groups), C, H, W): per row, image a's and b's reconstructions,
    then a's code with the dims of each group (a factor subspace) taken from b's code."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    variants = [a, b]
    for dims in groups:
        z = a.clone()
        z[:, dims] = b[:, dims]
        variants.append(z)
    z = torch.stack(variants, 1).reshape(-1, a.shape[1]).to(device)
    with torch.no_grad():
        out = torch.cat(
            [torch.sigmoid(model.decode(z[i : i + batch_size]).float()) for i in range(0, len(z), batch_size)]
        )
    return out.cpu().reshape(a.shape[0], len(variants), *out.shape[1:])


def labelled_grid_figure(grid: Tensor, layout: GridLayout, labels: list[str], title: str, subtitle: str, scale: int):
    """A one-block grid with a text label above each column. Returns (Figure, FigureLayout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fl = figure_layout(layout, labelled_rows=False, scale=scale)
    fig = Figure(figsize=(fl.width / DPI, fl.height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fl.width)
    ax.set_ylim(fl.height, 0)
    ax.set_axis_off()
    gw, gh = layout.grid_width * scale, layout.grid_height * scale
    extent = (fl.left, fl.left + gw, fl.top + gh, fl.top)
    ax.imshow(grid.permute(1, 2, 0).numpy(), extent=extent, interpolation="nearest", aspect="auto", vmin=0, vmax=1)
    ax.text(fl.width / 2, 6, title, ha="center", va="top", fontsize=10, fontweight="bold")
    ax.text(fl.width / 2, 22, subtitle, ha="center", va="top", fontsize=8, color="0.3")
    for s, label in enumerate(labels):
        cols = layout.column(s)
        ax.text(fl.left + (cols.start + cols.stop) / 2 * scale, fl.top - 2, label, ha="center", va="bottom", fontsize=7)
    return fig, fl


# ---------------------------------------------------------------- writing


def save_figure_png(fig, path: Path) -> None:
    """Write a Figure as PNG atomically, at DPI (no tight bounding box: the pixel size is the figure's)."""
    from sculptcli.io import atomic_write

    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def gif_frames(grid: Tensor, layout: GridLayout, scale: int = 1) -> list:
    """One PIL image per swept value: that column of the grid (every row of every block)."""
    from PIL import Image

    frames = []
    for s in range(layout.steps):
        col = grid[:, :, layout.column(s)]
        arr = (col.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        im = Image.fromarray(arr)
        if scale > 1:
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
        frames.append(im)
    return frames


def save_gif(frames: list, path: Path, duration_ms: int = 120) -> None:
    """An endlessly looping GIF of `frames`, written atomically."""
    from sculptcli.io import atomic_write

    def write(tmp: Path) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)

    atomic_write(Path(path), write)
