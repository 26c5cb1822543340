"""The quad set of the context-module paper (arXiv 2507.04754), generated on the training device: 64×64 RGB
images of four coloured quadrants and a centred shape, drawn in *contexts* (which concept was intervened on).

Following the released generator (`quad_helper.py` of Alex-Markham/context-module):

- Eight latent variables X = (quad1, quad2, quad3, quad4, size, color, shape, orientation) from a linear-Gaussian
  SCM with the released 8×8 weights W (X_j = Σ_i W_ij X_i + ε_j, ε_j ~ N(0, σ²_j): sempler's convention, an edge
  i → j where W_ij ≠ 0), standardised by the observational distribution, passed through Φ (the normal CDF):
  size = 0.2 + 0.8·Φ, shape = round(3·Φ) ∈ {circle, square, triangle, ellipse}, the rest Φ ∈ [0, 1].
- quad1 fills the bottom-left quadrant, quad2 bottom-right, quad3 top-left, quad4 top-right, each colour a scalar
  through the piecewise-linear red→yellow→green→cyan→blue→magenta map; a centred shape of side (size·48) px,
  rotated by orientation·2π, in the colour of `color`; pixel values quantised to 8 bits as the released PNGs.
- Contexts: obs, and do-interventions on quad1–4, size or orientation: the intervened variable loses its parents
  and is drawn from N(μ_int, σ²_int) (the released values). Held-out compositions intervene on two at once
  (the nine pairs below) and are generated only for evaluation, never in a training batch.

Variants: `causal` is the released quad_causal generator. `independent` is the same with W = 0 (every concept
independent; the released independent set was downloaded from Zenodo, not generated, so this is ours).

Ours, documented: the standardisation uses the observational distribution's exact moments (the release uses the
moments of its observational sample); the training set is `n` latent draws per context, kept as an (n, 8) table
on the device and rendered per batch (no images cached); the held-out images of a context are rendered on request.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from sculptcli.data import DATASETS
from sculptcli.data.base import Batch, DataSpec, ImageData
from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")

SIDE = 64
VARIABLES = ("quad1", "quad2", "quad3", "quad4", "size", "color", "shape", "orientation")
CONCEPTS = ("quad1", "quad2", "quad3", "quad4", "size", "orientation")  # the intervened ones, in this order
CONTEXTS = ("obs", *CONCEPTS)
COMPOSITIONS = (
    "quad1+quad2",
    "quad1+quad3",
    "quad1+quad4",
    "quad1+size",
    "quad1+orientation",
    "quad2+quad3",
    "quad2+quad4",
    "quad2+size",
    "quad2+orientation",
)
SHAPES = ("circle", "square", "triangle", "ellipse")

# the released SCM (quad_helper.py): W[i, j] is the weight of the edge i -> j
W_CAUSAL = (
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (-1.23, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.0, 1.56, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (1.34, 0.0, -0.72, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (-0.95, 0.0, 0.0, 0.0, 1.67, 0.0, 0.0, 0.0),
    (0.0, 0.58, 0.0, 0.0, 0.0, -1.34, 0.0, 0.0),
    (1.12, 0.0, 0.0, 0.0, -0.81, 0.0, 1.45, 0.0),
)
OBS_VAR = (1.3855493, 1.16426732, 1.00502177, 1.95646855, 1.27482347, 1.42, 1.31, 1.18)
INT_MEAN = (1.16920556, 1.47496736, -1.60596209, -1.96578519, 1.0117071, -0.85, 1.23, -0.67)
INT_VAR = (1.94878138, 1.35886756, 1.57343313, 1.1021785, 1.30511067, 1.52, 1.41, 1.26)
COLOURS = ((1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 1))  # red→yellow→green→cyan→blue→magenta
TRAIN_SEED, HELDOUT_SEED = 131_223, 4_719_820  # the fixed sets, the same for every run seed


def intervened(context: str) -> tuple[int, ...]:
    """Indices (into CONCEPTS) of the concepts a context name intervenes on: obs → (), 'quad1+size' → (0, 4)."""
    if context == "obs":
        return ()
    parts = context.split("+")
    unknown = [p for p in parts if p not in CONCEPTS]
    if unknown or len(set(parts)) != len(parts):
        raise ValueError(f"unknown context {context!r}: obs, or concepts {', '.join(CONCEPTS)} joined by '+'")
    return tuple(CONCEPTS.index(p) for p in parts)


class SCM:
    """The linear-Gaussian SCM over the eight variables, with do-interventions (float64 on the CPU: exact)."""

    def __init__(self, variant: str):
        self.W = (
            torch.tensor(W_CAUSAL, dtype=torch.float64)
            if variant == "causal"
            else torch.zeros(8, 8, dtype=torch.float64)
        )
        # observational moments: X = ε (I − W)^{-1} in row form, Cov = Aᵀ diag(σ²) A
        a = torch.linalg.inv(torch.eye(8, dtype=torch.float64) - self.W)
        cov = a.T @ torch.diag(torch.tensor(OBS_VAR, dtype=torch.float64)) @ a
        self.std = cov.diagonal().sqrt()

    def sample(self, n: int, nodes: tuple[int, ...], g: torch.Generator) -> Tensor:
        """n standardised draws (float64 (n, 8)) with do(X_i ~ N(μ_int, σ²_int)) for every variable index in `nodes`."""
        w = self.W.clone()
        mean = torch.zeros(8, dtype=torch.float64)
        var = torch.tensor(OBS_VAR, dtype=torch.float64)
        for i in nodes:
            w[:, i] = 0.0  # the intervened variable loses its parents
            mean[i], var[i] = INT_MEAN[i], INT_VAR[i]
        eps = mean + var.sqrt() * torch.randn(n, 8, generator=g, dtype=torch.float64)
        x = eps @ torch.linalg.inv(torch.eye(8, dtype=torch.float64) - w)
        return x / self.std


def to_factors(x: Tensor) -> Tensor:
    """Standardised SCM draws → the rendered factor values (float32): Φ, size 0.2 + 0.8Φ, shape round(3Φ)."""
    u = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    u[:, 4] = 0.2 + 0.8 * u[:, 4]
    u[:, 6] = torch.round(u[:, 6] * 3).clamp(0, 3)
    return u.float()


def colour_map(v: Tensor) -> Tensor:
    """Scalars (n,) in [0, 1] → RGB (n, 3) through the piecewise-linear red→…→magenta map."""
    anchors = torch.tensor(COLOURS, dtype=v.dtype, device=v.device)
    v = v.clamp(0, 1)
    seg_size = 1.0 / (len(COLOURS) - 1)
    seg = torch.floor(v / seg_size).long().clamp(0, len(COLOURS) - 2)
    t = ((v - seg * seg_size) / seg_size).unsqueeze(1)
    return anchors[seg] * (1 - t) + anchors[seg + 1] * t


def render(f: Tensor) -> Tensor:
    """Factor rows (n, 8) (VARIABLES order, on any device) → images float (n, 3, 64, 64) in [0, 1], 8-bit levels."""
    n, dev = len(f), f.device
    img = torch.empty(n, 3, SIDE, SIDE, device=dev)
    h = SIDE // 2
    for k, (rows, cols) in enumerate(
        (
            (slice(h, SIDE), slice(0, h)),
            (slice(h, SIDE), slice(h, SIDE)),
            (slice(0, h), slice(0, h)),
            (slice(0, h), slice(h, SIDE)),
        )
    ):
        img[:, :, rows, cols] = colour_map(f[:, k])[:, :, None, None]
    size = f[:, 4].clamp(0.2, 1.0).view(n, 1, 1) * 48
    angle = (f[:, 7] * 2 * math.pi).view(n, 1, 1)
    shape = f[:, 6].long().view(n, 1, 1)
    y, x = torch.meshgrid(
        torch.arange(SIDE, device=dev, dtype=f.dtype), torch.arange(SIDE, device=dev, dtype=f.dtype), indexing="ij"
    )
    dx, dy = (x - 32).unsqueeze(0), (y - 32).unsqueeze(0)
    xr = dx * torch.cos(angle) + dy * torch.sin(angle)  # the pixel in the shape's frame (rotated by −angle)
    yr = -dx * torch.sin(angle) + dy * torch.cos(angle)
    half = size / 2
    circle = dx**2 + dy**2 <= half**2
    square = (xr.abs() <= half) & (yr.abs() <= half)
    # equilateral triangle, vertices at radius `half` and angles angle + 0, 120, 240 degrees: inside every edge,
    # each edge at distance half/2 from the centre with its outward normal at 60, 180 and 300 degrees
    triangle = torch.ones_like(circle)
    for deg in (60.0, 180.0, 300.0):
        th = math.radians(deg)
        triangle &= xr * math.cos(th) + yr * math.sin(th) <= half / 2
    ellipse = (xr / size) ** 2 + (yr / half) ** 2 <= 0.25
    mask = torch.where(shape == 0, circle, torch.where(shape == 1, square, torch.where(shape == 2, triangle, ellipse)))
    rgb = colour_map(f[:, 5])[:, :, None, None]
    img = torch.where(mask.unsqueeze(1), rgb.expand(-1, -1, SIDE, SIDE), img)
    return torch.floor(img * 255 + 1e-4) / 255  # the released images are 8-bit PNGs


class QuadData(ImageData):
    """A built quad set: a factor table per training context, rendered per batch; every batch from one context."""

    binary = False
    factor_names = VARIABLES
    factor_sizes = (None, None, None, None, None, None, 4, None)
    contexts = CONTEXTS
    compositions = COMPOSITIONS  # held out: generated for evaluation only

    def __init__(self, spec: QuadSpec, seed: int, device: torch.device):
        self.device, self.seed, self.spec = device, seed, spec
        self.shape = (3, SIDE, SIDE)
        self.scm = SCM(spec.variant)
        self.train_contexts = tuple(CONTEXTS.index(c) for c in spec.train_contexts)
        self.tables = {}
        for c in self.train_contexts:
            g = torch.Generator().manual_seed(TRAIN_SEED + 7919 * c)
            self.tables[c] = to_factors(self.scm.sample(spec.n, self._nodes(CONTEXTS[c]), g)).to(device)
        self.n_train = spec.n * len(self.train_contexts)
        self.train_index = torch.arange(self.n_train, device=device)
        self.heldout_index = torch.arange(spec.heldout, device=device)  # the obs held-out split (scored)
        self._heldout: dict[str, Tensor] = {}

    @staticmethod
    def _nodes(context: str) -> tuple[int, ...]:
        return tuple(VARIABLES.index(CONCEPTS[i]) for i in intervened(context))

    def train_batch(self, step: int, batch_size: int) -> Batch:
        """One context, uniformly at random, then `batch_size` of its training draws (with replacement, as the
        released sampler): a pure function of (seed, step)."""
        key = (self.seed * 0x9E3779B1 + step * 0x2545F491 + 7) % 2**63
        pick = int(torch.randint(len(self.train_contexts), (1,), generator=torch.Generator().manual_seed(key)))
        c = self.train_contexts[pick]  # chosen on the host: no device sync per step
        g = torch.Generator(device=self.device).manual_seed(key)
        rows = torch.randint(self.spec.n, (batch_size,), generator=g, device=self.device)
        f = self.tables[c][rows]
        label = torch.full((batch_size,), c, dtype=torch.long, device=self.device)
        return Batch(render(f), f, label)

    def train_factors(self) -> Tensor:
        return torch.cat([self.tables[c] for c in self.train_contexts])

    def heldout_factors(self, context: str, n: int | None = None) -> Tensor:
        """The held-out factor table of any context (a training context or a composition), float (n, 8)."""
        if context not in self._heldout:
            key = sum(ord(ch) * 31**i for i, ch in enumerate(context)) % 1_000_003
            g = torch.Generator().manual_seed(HELDOUT_SEED + key)
            self._heldout[context] = to_factors(self.scm.sample(self.spec.heldout, self._nodes(context), g)).to(
                self.device
            )
        table = self._heldout[context]
        return table if n is None else table[:n]

    def heldout_context(self, context: str, n: int | None = None) -> Tensor:
        """The first `n` held-out images of a context ('obs', 'size', 'quad1+quad2', …), float (n, 3, 64, 64)."""
        f = self.heldout_factors(context, n)
        return torch.cat([render(f[i : i + 2048]) for i in range(0, len(f), 2048)])

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """The observational held-out split (what LPS and the other scores read) and its factors."""
        f = self.heldout_factors("obs", n)
        return torch.cat([render(f[i : i + 2048]) for i in range(0, len(f), 2048)]), f


@DATASETS.register
class QuadSpec(DataSpec):
    """quad: four coloured quadrants and a centred shape, 64×64 RGB, in contexts obs and do(quad1–4, size,
    orientation); generated on the device (the context-module paper's set)."""

    type: Literal["quad"] = "quad"
    variant: Literal["independent", "causal"] = Field(
        "independent", description="independent concepts, or the released linear-Gaussian SCM (quad_causal)"
    )
    n: int = Field(50_000, ge=64, le=10**7, description="training draws per context (the paper: 50,000)")
    heldout: int = Field(10_000, ge=20, le=10**6, description="held-out draws per context and composition")
    train_contexts: list[str] = Field(
        default_factory=lambda: list(CONTEXTS),
        description="the contexts training batches come from (base: [obs]); compositions are never trained on",
    )

    @field_validator("train_contexts")
    @classmethod
    def _known_contexts(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CONTEXTS]
        if bad:
            raise ValueError(f"unknown context(s) {bad}: choose from {', '.join(CONTEXTS)} (compositions are held out)")
        if not v or len(set(v)) != len(v):
            raise ValueError("give each training context once, at least one")
        return v

    def has_factors(self) -> bool:
        return True

    def context_names(self) -> tuple[str, ...]:
        return CONTEXTS

    def image_shape(self) -> tuple[int, int, int]:
        return (3, SIDE, SIDE)

    def load(self, seed: int, device: torch.device | str = "cpu") -> QuadData:
        return QuadData(self, seed, torch.device(device))
