"""The XY family (XY, XYC, XYCS) of Cha & Thiyagalingam (ICML 2023), generated: one filled circle on black.

Following `make_xyc_dataset.py` of the DGAE repository (stfc-sciml/dae): 84×84 grayscale float images holding
a filled circle of radius 15 centred at column x and row y, x, y ∈ {15, …, 67} (53 positions each); a pixel
(row i, column j) is inside when (j − x)² + (i − y)² ≤ r² (709 pixels at r = 15, π·15² ≈ 707).

    xy     c = 1 only, radius 15                           53·53     =  2,809 images, factors (x, y); binary
    xyc    c ∈ {0.2, 0.4, 0.6, 0.8, 1.0}, radius 15         53·53·5   = 14,045 images, factors (x, y, c)
    xycs   as xyc, radius r ∈ {9, 11, 13, 15} (ours)                    70,020 images, factors (x, y, c, r)

No XYCS generator was published. The Sculpting paper's Fig. 4 shows circles of varying radius, and the authors
note that size and position are co-dependent (a big object cannot sit near an edge), so the centres of a circle
of radius r span {r, …, 82 − r} — the original 15…67 at r = 15, 9…73 (65 positions) at r = 9 — and every circle
stays inside the frame with the same one-pixel spare margin as the original. That is
5·(65² + 61² + 57² + 53²) = 70,020 images; `factor_sizes` gives the distinct values per factor (65, 65, 5, 4).

Images are zero-padded, centred, to `pad_to` × `pad_to` (default 96) so that stride-2 conv stacks divide
evenly (84 = 4·21 only allows two layers; 96 = 32·3 allows five, down to 3×3); the padding offset is
(pad_to − 84) // 2 pixels on the top and left. Factor values are unaffected: x and y stay in unpadded 84×84
pixel coordinates. `pad_to: null` keeps the 84×84 frame.

Rendering is one vectorised distance test per pixel on the device of the request. The sets are small, but
XYCS as float images would take 2.6 GB, so instead of caching every image the set is kept as its factor table
(on the device) and batches are drawn from it on the fly (tens of ms for 512 images on two busy CPU cores);
only the held-out images are cached. Nothing goes through the host per batch.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from sculptcli.data import DATASETS
from sculptcli.data.base import Batch, DataSpec, ImageData
from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")

RES = 84  # the generated frame, before padding
LOW = 15  # the smallest centre coordinate at the largest radius (the original grid is 15…67)
EDGE = 82  # centres span {r, …, EDGE − r}: the largest circle ends on pixel 82 of 0…83, as in the original
HELDOUT_SEED = 2_809_014  # the held-out split is drawn with this seed, never with the run seed
INTENSITIES = (0.2, 0.4, 0.6, 0.8, 1.0)
RADII = (9, 11, 13, 15)


@functools.lru_cache(maxsize=8)
def factor_table(colours: tuple[float, ...], radii: tuple[int, ...]) -> Tensor:
    """Every image of a family as its factor values, float32 (N, 2 + [c] + [r]) on the CPU: x, y, then c
    when there is more than one intensity, then r when there is more than one radius. Order: radius, then
    intensity, then x, then y fastest."""
    rows = []
    for r in radii:
        pos = torch.arange(r, EDGE - r + 1, dtype=torch.float32)
        c = torch.tensor(colours, dtype=torch.float32)
        cc, xx, yy = torch.meshgrid(c, pos, pos, indexing="ij")
        cols = [xx.reshape(-1), yy.reshape(-1)]
        if len(colours) > 1:
            cols.append(cc.reshape(-1))
        if len(radii) > 1:
            cols.append(torch.full_like(cols[0], float(r)))
        rows.append(torch.stack(cols, dim=1))
    return torch.cat(rows)


def render(x: Tensor, y: Tensor, c: Tensor, r: Tensor, pad_to: int | None = None) -> Tensor:
    """Circles centred at column x, row y (unpadded pixels), intensity c, radius r — each float (N,) —
    -> float32 images (N, 1, S, S) with S = pad_to or 84, on the device of x."""
    side = pad_to or RES
    off = (side - RES) // 2
    k = torch.arange(side, device=x.device, dtype=torch.float32) - off
    dx = (k[None, :] - x[:, None]).square_()[:, None, :]  # (N, 1, S): along columns
    dy = (k[None, :] - y[:, None]).square_()[:, :, None]  # (N, S, 1): along rows
    inside = (dx + dy) <= r.square()[:, None, None]  # every circle lies inside the 84×84 frame
    return (inside * c[:, None, None]).unsqueeze(1)


class XYData(ImageData):
    """A built XY-family set: training batches over all images but the held-out split, rendered on device."""

    def __init__(
        self,
        spec: XYFamilySpec,
        seed: int,
        device: torch.device | str = "cpu",
    ):
        self.device = torch.device(device)
        self.seed = seed
        self.pad_to = spec.pad_to
        self.shape = spec.image_shape()
        self.binary = spec.colours == (1.0,)
        self.factor_names = spec.factor_names()
        self.factor_sizes = spec.factor_sizes()
        self._colours, self._radii = spec.colours, spec.radii
        table = factor_table(spec.colours, spec.radii)
        n = table.shape[0]
        draw = heldout_draw(n, spec.heldout)
        keep = torch.ones(n, dtype=torch.bool)
        keep[draw] = False
        self.table = table.to(self.device)
        self.heldout_index = draw.to(self.device)  # held-out rows of the table, in draw order
        self.train_index = keep.nonzero().squeeze(1).to(self.device)  # sorted training rows
        self.n_train = n - spec.heldout
        self._heldout_images: Tensor | None = None

    def render_rows(self, rows: Tensor) -> Tensor:
        """Images of the given table rows, float (n, 1, S, S) on device."""
        f = self.table[rows]
        c = f[:, 2] if len(self._colours) > 1 else torch.full_like(f[:, 0], self._colours[0])
        r = f[:, -1] if len(self._radii) > 1 else torch.full_like(f[:, 0], float(self._radii[0]))
        return render(f[:, 0], f[:, 1], c, r, self.pad_to)

    def train_batch(self, step: int, batch_size: int) -> Batch:
        rows = self.train_indices(step, batch_size)
        return Batch(self.render_rows(rows), self.table[rows])

    def train_factors(self) -> Tensor:
        return self.table[self.train_index]

    def ground_truth(self):
        """Every image of the set as factor codes (each column's values indexed in sorted order) and renderer."""
        codes = torch.stack([torch.unique(c, return_inverse=True)[1] for c in self.table.cpu().T], 1)
        return codes, lambda rows: self.render_rows(rows.to(self.device))

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """The first `n` held-out images (draw order; all of them if n is None or larger than the split) and
        their factor values, float (n, k). The images are views of a cache: do not modify them in place."""
        total = self.heldout_index.numel()
        n = total if n is None else min(n, total)
        if n < 0:
            raise ValueError(f"asked for {n} held-out images")
        if self._heldout_images is None:  # the whole split is small: render it once
            self._heldout_images = self.render_rows(self.heldout_index)
        return self._heldout_images[:n], self.table[self.heldout_index[:n]]


def heldout_draw(n_images: int, n_heldout: int) -> Tensor:
    """The held-out table rows in draw order (long (n,), CPU): a fixed seeded choice, the same for every
    run seed, and the split of size n is a prefix of every larger one."""
    if not 0 < n_heldout < n_images:
        raise ValueError(f"the held-out split needs between 1 and {n_images - 1} images, got {n_heldout}")
    g = torch.Generator().manual_seed(HELDOUT_SEED)
    return torch.randperm(n_images, generator=g)[:n_heldout]


class XYFamilySpec(DataSpec):
    """Shared config and build of the XY family; subclasses set `type`, the intensities and the radii."""

    colours: ClassVar[tuple[float, ...]] = (1.0,)
    radii: ClassVar[tuple[int, ...]] = (15,)

    heldout: int = Field(description="size of the fixed held-out split (default: 10% of the set)")
    pad_to: int | None = Field(
        96, ge=RES, le=512, description="centred zero padding to pad_to × pad_to pixels (null: keep 84×84)"
    )

    @classmethod
    def n_images(cls) -> int:
        return sum((EDGE - 2 * r + 1) ** 2 for r in cls.radii) * len(cls.colours)

    @classmethod
    def factor_names(cls) -> tuple[str, ...]:
        return ("x", "y") + (("c",) if len(cls.colours) > 1 else ()) + (("r",) if len(cls.radii) > 1 else ())

    @classmethod
    def factor_sizes(cls) -> tuple[int, ...]:
        pos = EDGE - 2 * min(cls.radii) + 1
        return (
            (pos, pos)
            + ((len(cls.colours),) if len(cls.colours) > 1 else ())
            + ((len(cls.radii),) if len(cls.radii) > 1 else ())
        )

    @model_validator(mode="after")
    def _heldout_fits(self):
        n = self.n_images()
        if not 0 < self.heldout < n:
            raise ValueError(f"heldout must be between 1 and {n - 1} (the set has {n} images), got {self.heldout}")
        return self

    def has_factors(self) -> bool:
        return True

    def image_shape(self) -> tuple[int, int, int]:
        side = self.pad_to or RES
        return (1, side, side)

    def load(self, seed: int, device: torch.device | str = "cpu") -> XYData:
        return XYData(self, seed, torch.device(device))


@DATASETS.register
class XYSpec(XYFamilySpec):
    """XY: a white circle (radius 15) at 53×53 positions; 2,809 images, binary (generated)."""

    type: Literal["xy"] = "xy"
    heldout: int = Field(281, description="size of the fixed held-out split (default: 10% of 2,809)")


@DATASETS.register
class XYCSpec(XYFamilySpec):
    """XYC: a circle (radius 15) at 53×53 positions and 5 intensities; 14,045 images (generated)."""

    colours: ClassVar[tuple[float, ...]] = INTENSITIES
    type: Literal["xyc"] = "xyc"
    heldout: int = Field(1_405, description="size of the fixed held-out split (default: 10% of 14,045)")


@DATASETS.register
class XYCSSpec(XYFamilySpec):
    """XYCS: XYC with radius 9/11/13/15, centres kept inside the frame; 70,020 images (generated)."""

    colours: ClassVar[tuple[float, ...]] = INTENSITIES
    radii: ClassVar[tuple[int, ...]] = RADII
    type: Literal["xycs"] = "xycs"
    heldout: int = Field(7_002, description="size of the fixed held-out split (default: 10% of 70,020)")
