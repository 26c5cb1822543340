"""dSprites, procedurally: a download-free lookalike on the exact published factor grid.

The original pixel renderer was never published, so every image is drawn on the fly from its
factors by an implicit shape test at each pixel centre (square, ellipse, heart). The factor grid,
the flat index order and the factor values match the published `latents_classes` /
`latents_values` (minus the constant colour factor):

    shape 3 (square, ellipse, heart; values 1, 2, 3)   scale 6 (linspace(0.5, 1, 6))
    orientation 40 (linspace(0, 2π, 40): 0 and 2π both present)   pos_x 32, pos_y 32 (linspace(0, 1, 32))

    flat index = 245760·shape + 40960·scale + 1024·orientation + 32·pos_x + pos_y   (pos_y fastest)

pos_x moves the sprite along the image columns, pos_y along the rows. Rendering is pure torch and
runs on the device of the factor tensor; only a 26×26 window around each sprite is evaluated and
then pasted into the 64×64 frame, so a batch of 512 takes about 2 ms on two CPU cores.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from sculptcli.data import DATASETS
from sculptcli.data.base import Batch, DataSpec, ImageData
from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
N_IMAGES = 737_280
STRIDES = (245_760, 40_960, 1_024, 32, 1)
HELDOUT_SEED = 7_372_800  # the held-out split is drawn with this seed, never with the run seed

RES = 64  # image side in pixels
HALF = 10.0  # shape half-extent in pixels at scale 1
MARGIN = 14.5  # sprite centres span [MARGIN, RES - MARGIN] pixels, so rotated shapes stay inside
# The largest shape reaches 0.8·√2·HALF ≈ 11.3 px from its centre (square corner; the heart reaches
# ≈ 11.0), so a 2·13-pixel window around the rounded centre always holds the whole sprite.
_WIN_HALF = 13
WINDOW = 2 * _WIN_HALF
_CHUNK = 16_384  # render larger requests in chunks to bound the intermediate tensors



@functools.lru_cache(maxsize=8)
def _tables(device: torch.device) -> dict[str, Tensor]:
    """Per-device lookup tables (factor class -> value / rendering constant) and pixel offsets."""
    f64 = torch.float64
    scale = torch.linspace(0.5, 1.0, 6, dtype=f64)
    orient = torch.linspace(0.0, 2 * math.pi, 40, dtype=f64)
    pos = torch.linspace(0.0, 1.0, 32, dtype=f64)
    # Trig in float64 and rounded once, so orientation 2π draws exactly the image of orientation 0.
    cos, sin = orient.cos(), orient.sin()
    inv = 1.0 / (scale * HALF)
    t = {
        "strides": torch.tensor(STRIDES, dtype=torch.long),
        "sizes": torch.tensor(FACTOR_SIZES, dtype=torch.long),
        "shape_val": torch.tensor([1.0, 2.0, 3.0]),
        "scale_val": scale.float(),
        "orient_val": orient.float(),
        "pos_val": pos.float(),
        "centre": (MARGIN + pos * (RES - 2 * MARGIN)).float(),  # pixel coordinate of the sprite centre
        # (orientation, scale) -> the rotation scaled by 1 / (scale·HALF), as 4 floats
        "cos_s": (cos[:, None] * inv[None, :]).float(),
        "sin_s": (sin[:, None] * inv[None, :]).float(),
        "koff": torch.arange(WINDOW, dtype=torch.float32) + 0.5,  # pixel-centre offsets in the window
        "kidx": torch.arange(WINDOW, dtype=torch.long),
    }
    return {k: v.to(device) for k, v in t.items()}


def index_to_factors(idx: Tensor) -> Tensor:
    """Flat indices, long (N,), -> factor classes, long (N, 5) in FACTOR_NAMES order."""
    t = _tables(idx.device)
    return (idx.long().unsqueeze(-1) // t["strides"]) % t["sizes"]


def factors_to_index(f: Tensor) -> Tensor:
    """Factor classes, long (N, 5), -> flat indices, long (N,)."""
    t = _tables(f.device)
    return (f.long() * t["strides"]).sum(-1)


def factor_values(f: Tensor) -> Tensor:
    """Factor classes, long (N, 5), -> the published factor values, float32 (N, 5)."""
    t = _tables(f.device)
    return torch.stack(
        [
            t["shape_val"][f[:, 0]],
            t["scale_val"][f[:, 1]],
            t["orient_val"][f[:, 2]],
            t["pos_val"][f[:, 3]],
            t["pos_val"][f[:, 4]],
        ],
        dim=1,
    )


def _uv(f: Tensor, t: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Shape-frame coordinates (u, v), each (n, W, W), of the pixel centres of each sprite's
    window, and the window's top-left pixel (ox, oy), each long (n,)."""
    a = t["cos_s"][f[:, 2], f[:, 1]][:, None, None]  # cos θ / (scale·HALF)
    b = t["sin_s"][f[:, 2], f[:, 1]][:, None, None]  # sin θ / (scale·HALF)
    cx, cy = t["centre"][f[:, 3]], t["centre"][f[:, 4]]
    ox = (cx.round() - _WIN_HALF).clamp_(0, RES - WINDOW)
    oy = (cy.round() - _WIN_HALF).clamp_(0, RES - WINDOW)
    dx = ((ox[:, None] + t["koff"]) - cx[:, None])[:, None, :]  # (n, 1, W): along columns
    dy = ((oy[:, None] + t["koff"]) - cy[:, None])[:, :, None]  # (n, W, 1): along rows
    u = a * dx + b * dy
    v = a * dy - b * dx
    return u, v, ox.long(), oy.long()


def _square(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.8


def _ellipse(u: Tensor, v: Tensor) -> Tensor:
    return u * u + 4.0 * (v * v) <= 1.0


def _heart(u: Tensor, v: Tensor) -> Tensor:
    # (x² + y² − 1)³ − x²y³ <= 0 with x = 1.2u, y = 0.15 − 1.2v (lobes up, point down)
    x2 = (u * 1.2).square_()
    y = 0.15 - v * 1.2
    q = x2 + y * y - 1.0
    return q * q * q <= x2 * (y * y * y)


_TESTS = (_square, _ellipse, _heart)


def _render_chunk(f: Tensor, out: Tensor, grouped: bool) -> None:
    """Draw the sprites of `f` (n, 5) into the zeroed `out` (n, RES·RES)."""
    t = _tables(f.device)
    n = f.shape[0]
    if grouped:  # evaluate each sprite's own shape test only (needs host syncs: CPU only)
        for k, test in enumerate(_TESTS):
            rows = (f[:, 0] == k).nonzero().squeeze(1)
            if rows.numel():
                u, v, ox, oy = _uv(f[rows], t)
                _paste(out, rows, test(u, v), ox, oy, t)
        return
    u, v, ox, oy = _uv(f, t)
    shape = f[:, 0].view(-1, 1, 1)
    inside = torch.where(shape == 0, _square(u, v), torch.where(shape == 1, _ellipse(u, v), _heart(u, v)))
    _paste(out, torch.arange(n, device=f.device), inside, ox, oy, t)


def _paste(out: Tensor, rows: Tensor, inside: Tensor, ox: Tensor, oy: Tensor, t: dict[str, Tensor]) -> None:
    k = t["kidx"]
    col = (ox[:, None] + k)[:, None, :]
    row = (oy[:, None] + k)[:, :, None]
    flat = (rows * (RES * RES))[:, None, None] + row * RES + col
    out.view(-1)[flat.view(-1)] = inside.view(-1).to(out.dtype)


def render(f: Tensor) -> Tensor:
    """Factor classes, long (N, 5), -> binary images, float32 (N, 1, 64, 64) in {0, 1}, on f.device."""
    if f.dim() != 2 or f.shape[1] != len(FACTOR_SIZES):
        raise ValueError(f"render expects factor classes of shape (N, 5), got {tuple(f.shape)}")
    if f.dtype != torch.long:
        raise ValueError(f"render expects long factor classes, got {f.dtype}")
    n = f.shape[0]
    out = torch.zeros(n, RES * RES, device=f.device)
    grouped = f.device.type == "cpu"
    for s in range(0, n, _CHUNK):
        _render_chunk(f[s : s + _CHUNK], out[s : s + _CHUNK], grouped)
    return out.view(n, 1, RES, RES)


@functools.lru_cache(maxsize=1)
def _heldout_order() -> Tensor:
    """All flat indices in the fixed held-out draw order (CPU, independent of device and run seed)."""
    g = torch.Generator().manual_seed(HELDOUT_SEED)
    return torch.randperm(N_IMAGES, generator=g)


def _check_heldout(n_heldout: int) -> None:
    if not 0 < n_heldout < N_IMAGES:
        raise ValueError(f"the held-out split needs between 1 and {N_IMAGES - 1} images, got {n_heldout}")


def heldout_draw(n_heldout: int) -> Tensor:
    """The held-out flat indices in draw order (long (n,), CPU): a fixed seeded random choice, so any
    prefix is itself a uniform sample and the split of size n is a prefix of every larger one."""
    _check_heldout(n_heldout)
    return _heldout_order()[:n_heldout].clone()


def heldout_indices(n_heldout: int) -> Tensor:
    """The held-out flat indices, sorted (long (n,), CPU); the same set for every run seed."""
    return heldout_draw(n_heldout).sort().values


class DSprites(ImageData):
    """Built dSprites: training batches over all images but the held-out split, rendered on device."""

    shape = (1, RES, RES)
    binary = True
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def __init__(self, n_heldout: int, seed: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seed = seed
        draw = heldout_draw(n_heldout)
        keep = torch.ones(N_IMAGES, dtype=torch.bool)
        keep[draw] = False
        self.heldout_index = draw.to(self.device)  # held-out flat indices in draw order
        self.train_index = keep.nonzero().squeeze(1).to(self.device)  # sorted training flat indices
        self.n_train = N_IMAGES - n_heldout
        self._heldout_images = torch.empty(0, *self.shape, device=self.device)

    def train_batch(self, step: int, batch_size: int) -> Batch:
        codes = index_to_factors(self.train_indices(step, batch_size))
        return Batch(render(codes), factor_values(codes))

    def train_factors(self) -> Tensor:
        return factor_values(index_to_factors(self.train_index))

    def ground_truth(self):
        """All 737,280 factor combinations (flat index order) and their renderer."""
        return index_to_factors(torch.arange(N_IMAGES)), lambda rows: render(index_to_factors(rows.to(self.device)))

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """The first `n` held-out images (draw order; any prefix is a uniform sample of the split) and
        their factor values, float (n, 5). The images are views of a cache: do not modify them in place."""
        total = self.heldout_index.numel()
        n = total if n is None else n
        if not 0 <= n <= total:
            raise ValueError(f"asked for {n} held-out images but the split has {total}")
        have = self._heldout_images.shape[0]
        if n > have:  # render only what was never asked for before, then keep it
            more = render(index_to_factors(self.heldout_index[have:n]))
            self._heldout_images = torch.cat([self._heldout_images, more])
        idx = self.heldout_index[:n]
        return self._heldout_images[:n], factor_values(index_to_factors(idx))


@DATASETS.register
class DSpritesSpec(DataSpec):
    """dSprites (procedural lookalike, generated on the fly; exact published factor grid)."""

    type: Literal["dsprites"] = "dsprites"
    heldout: int = Field(10_000, ge=100, le=100_000, description="size of the fixed held-out split")

    def image_shape(self) -> tuple[int, int, int]:
        return DSprites.shape

    def has_factors(self) -> bool:
        return True

    def load(self, seed: int, device: torch.device | str = "cpu") -> DSprites:
        return DSprites(self.heldout, seed, torch.device(device))
