"""Simulated galaxy stamps rendered with GalSim on a Latin-hypercube design of five continuous factors.

After the galaxy dataset of the Sculpting paper (generator `Synthetic_galaxy_dataset/`): an exponential disc of
total `flux` (counts) and scale radius `radius` (arcsec), sheared by reduced shear (g1, g2), convolved with a
Gaussian PSF of FWHM `psf_fwhm` (arcsec), drawn on a `stamp` × `stamp` grid of `pixel_scale` arcsec pixels
(33 × 33 at 0.2″ by default) with `GSParams(maximum_fft_size=12300)`, then Poisson noise on the pixel counts
(no sky). Images are scaled to [0, 1] by the dataset-wide min and max of the counts (`count_min`, `count_max`,
computed over every rendered image, held-out ones included); the factors are returned as raw physical values.

    factor     range           factor     range
    flux       1e4 … 1e5       g1, g2     −0.5 … 0.5
    radius     0.1 … 1.0       psf_fwhm   0.2 … 0.4

Design. Each factor takes `n` evenly spaced values on its range (`np.linspace`), and image i takes grid value
`perm_k[i]` of factor k, where `perm_k` is an independent permutation drawn, column by column in the order
above, from `numpy.random.default_rng(design_seed)`: a Latin hypercube in which every grid value of every
factor is used exactly once. This is the design family of pyDOE2's `lhs(5, n, criterion=None)` mapped to the
grid by floor(u·n) (as the original does), but not bit-identical to the original's `lhc_16384_5_training.txt`
(which came from `np.random.seed(7)` and pyDOE2's own draw order). No g1² + g2² > 1 rejection is needed:
|g| ≤ 0.71 on these ranges. The design is fixed by `design_seed`, never by the run seed, so every run trains
on the same set.

Noise. The original re-seeds its generator with the same seed (150000) before every image, so every image
carries the same underlying random stream and its noise is correlated across the set. Here each image gets its
own GalSim `BaseDeviate` seed derived from (design_seed, image index) with `numpy.random.SeedSequence`: noise
is independent across images yet the set is reproducible bit for bit, whatever the number of workers.
`noise: none` skips the noise step (noise-free expected counts).

Padding. GalSim centres the profile on the true centre of the stamp, which for an odd stamp is the centre of
pixel stamp // 2 (16 of 0…32). `pad_to` adds zeros (the normalised minimum), (pad_to − stamp) // 2 rows and
columns on the top and left and the rest on the bottom and right: 33 → 64 puts 15 before and 16 after, so the
galaxy centre lands on pixel 31 of 0…63 and the extra pixel goes to the bottom and right. Padding is applied
per batch; the device holds the normalised float32 stamps unpadded (16384 × 33 × 33 × 4 B = 71 MB).

Cache. Rendering 16384 stamps takes seconds in parallel (`workers`, a forked process pool over fixed chunks), so the
rendered set is cached as one .safetensors file under `cache_dir` (default: $SCULPT_CACHE_DIR, else
~/.cache/sculpt), in `galaxy/`, named by a hash of every field that changes pixels (n, design_seed, stamp,
pixel_scale, noise, the factor ranges and the generator version; not pad_to, heldout, workers or cache_dir).
It holds the raw float32 counts (`images`, (n, stamp, stamp)), the float32 factors (`factors`, (n, 5)) and the
count range and GalSim version in its metadata; it is written atomically and reused by every later build. An
unreadable or mismatched cache file is rendered again. GalSim (`pip install 'sculpt[galaxy]'`) is imported only
to render, so a cached set loads without it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from sculptcli.data import DATASETS
from sculptcli.data.base import Batch, DataSpec, ImageData
from sculptcli.errors import UserError
from sculptcli.io import atomic_write
from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import Tensor
else:
    np = lazy("numpy")
    torch = lazy("torch")
    F = lazy("torch.nn.functional")

FACTOR_NAMES = ("flux", "radius", "g1", "g2", "psf_fwhm")
RANGES = ((1e4, 1e5), (0.1, 1.0), (-0.5, 0.5), (-0.5, 0.5), (0.2, 0.4))
MAX_FFT_SIZE = 12_300  # GSParams(maximum_fft_size=...) of the original generator
GENERATOR_VERSION = 1  # bump when rendering changes, so stale caches are not reused
HELDOUT_SEED = 16_384_033  # the held-out split is drawn with this seed, never with the run seed
NOISE_SALT = 0x6A1A  # mixed into every per-image noise seed
CACHE_FORMAT = "sculpt-galaxy-cache"
_MAX_CHUNK = 512  # images per pool task, at most


def lhs_indices(n: int, design_seed: int) -> np.ndarray:
    """The Latin-hypercube design as grid indices, int64 (n, 5): column k is a seeded permutation of 0…n−1."""
    rng = np.random.default_rng(design_seed)
    return np.stack([rng.permutation(n) for _ in FACTOR_NAMES], axis=1)


def lhs_design(n: int, design_seed: int) -> np.ndarray:
    """The design as factor values, float64 (n, 5) in FACTOR_NAMES order: each column uses each of the n evenly
    spaced values of its range exactly once."""
    idx = lhs_indices(n, design_seed)
    grids = [np.linspace(lo, hi, n) for lo, hi in RANGES]
    return np.stack([grids[k][idx[:, k]] for k in range(len(FACTOR_NAMES))], axis=1)


def noise_seed(design_seed: int, index: int) -> int:
    """The GalSim seed of image `index`'s Poisson noise, in 1…2³¹−1 (0 would mean 'seed from the clock')."""
    state = np.random.SeedSequence([NOISE_SALT, design_seed, index]).generate_state(1)[0]
    return int(state) % (2**31 - 2) + 1


def _import_galsim():
    try:
        return importlib.import_module("galsim")
    except ImportError:
        raise UserError(
            "the galaxy dataset needs GalSim",
            fix="pip install 'sculpt[galaxy]'  (or pip install galsim)",
        ) from None


def render_chunk(
    factors: np.ndarray, start: int, design_seed: int, stamp: int, pixel_scale: float, noise: str
) -> np.ndarray:
    """Counts of the images with design rows `start`, `start + 1`, … given as `factors`, float64 (m, 5):
    float32 (m, stamp, stamp), row index = y, column index = x (GalSim's array layout)."""
    galsim = _import_galsim()
    gsp = galsim.GSParams(maximum_fft_size=MAX_FFT_SIZE)
    out = np.empty((len(factors), stamp, stamp), dtype=np.float32)
    for j, (flux, radius, g1, g2, fwhm) in enumerate(factors.tolist()):
        gal = galsim.Exponential(flux=flux, scale_radius=radius, gsparams=gsp).shear(g1=g1, g2=g2)
        psf = galsim.Gaussian(fwhm=fwhm, gsparams=gsp)
        img = galsim.Convolve([gal, psf], gsparams=gsp).drawImage(nx=stamp, ny=stamp, scale=pixel_scale)
        if noise == "poisson":
            rng = galsim.BaseDeviate(noise_seed(design_seed, start + j))
            img.addNoise(galsim.PoissonNoise(rng, sky_level=0.0))
        out[j] = img.array
    return out


def _render_task(args: tuple) -> np.ndarray:
    return render_chunk(*args)


class RenderProgress:
    """What a first render says on stderr: a line when it starts (how many, where the cache goes), the share
    done and an ETA on a terminal (redrawn in place), and a line when it ends."""

    def __init__(self, n: int, where: Path, stream=None):
        self.stream = stream or sys.stderr
        self.n, self.done, self.t0 = n, 0, time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.say(f"rendering {n:,} galaxy stamps with GalSim (first use of these settings; cached in {where})\n")

    def say(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def advance(self, images: int) -> None:
        self.done += images
        if self.tty and self.done < self.n:
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.done * (self.n - self.done)
            self.say(f"\r  {self.done:,}/{self.n:,} ({self.done / self.n:.0%}), about {eta:.0f} s left   ")

    def end(self) -> None:
        self.say(("\r" if self.tty else "") + f"  rendered {self.n:,} stamps in {time.perf_counter() - self.t0:.1f} s"
                 + " " * 20 + "\n")  # fmt: skip


def render_set(spec: GalaxySpec, progress: RenderProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render the whole design of `spec`: (counts float32 (n, stamp, stamp), factors float64 (n, 5)).
    Chunks are fixed index ranges and every image has its own noise seed, so the result does not depend on
    the number of workers. `progress` hears of every chunk done."""
    _import_galsim()  # fail before starting any worker
    factors = lhs_design(spec.n, spec.design_seed)
    workers = spec.workers or os.cpu_count() or 1
    chunk = max(16, min(_MAX_CHUNK, math.ceil(spec.n / (4 * workers))))
    tasks = [
        (factors[i : i + chunk], i, spec.design_seed, spec.stamp, spec.pixel_scale, spec.noise)
        for i in range(0, spec.n, chunk)
    ]
    workers = min(workers, len(tasks))
    advance = progress.advance if progress is not None else (lambda images: None)
    parts = []
    if workers <= 1:
        for t in tasks:
            parts.append(_render_task(t))
            advance(len(t[0]))
    else:
        # fork (as torch's DataLoader workers do): the workers run only NumPy and GalSim, never torch or CUDA,
        # and unlike spawn/forkserver they do not re-run the caller's __main__, so scripts need no main guard.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for t, part in zip(tasks, pool.map(_render_task, tasks), strict=True):  # in order, as they finish
                parts.append(part)
                advance(len(t[0]))
    if progress is not None:
        progress.end()
    return np.concatenate(parts), factors


def default_cache_dir() -> Path:
    return Path(os.environ.get("SCULPT_CACHE_DIR") or Path.home() / ".cache" / "sculpt").expanduser()


def _read_cache(path: Path, spec: GalaxySpec) -> tuple[np.ndarray, np.ndarray, dict[str, str]] | None:
    """(counts, factors, metadata) from a cache file that matches `spec`, or None."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT or meta.get("key") != spec.cache_key():
                return None
            counts, factors = f.get_tensor("images"), f.get_tensor("factors")
    except Exception:  # noqa: BLE001 - a torn or foreign file is simply rendered again
        return None
    if counts.shape != (spec.n, spec.stamp, spec.stamp) or factors.shape != (spec.n, len(FACTOR_NAMES)):
        return None
    return counts, factors, meta


def load_or_render(spec: GalaxySpec) -> tuple[np.ndarray, np.ndarray, bool]:
    """(counts float32 (n, stamp, stamp), factors float32 (n, 5), rendered now?) from the cache, else rendered
    and written to it."""
    path = spec.cache_path()
    cached = _read_cache(path, spec)
    if cached is not None:
        return cached[0], cached[1], False
    _import_galsim()  # a missing GalSim is an error before anything is said
    counts, factors64 = render_set(spec, RenderProgress(spec.n, path.parent))
    factors = factors64.astype(np.float32)
    galsim = _import_galsim()
    meta = {
        "format": CACHE_FORMAT,
        "key": spec.cache_key(),
        "fields": json.dumps(spec.pixel_fields(), sort_keys=True),
        "galsim": str(getattr(galsim, "__version__", "?")),
        "count_min": repr(float(counts.min())),
        "count_max": repr(float(counts.max())),
        "factor_names": ",".join(FACTOR_NAMES),
    }
    try:
        from safetensors.numpy import save_file

        atomic_write(path, lambda p: save_file({"images": counts, "factors": factors}, str(p), metadata=meta))
    except OSError as e:
        warnings.warn(f"could not cache the galaxy renders at {path}: {e}", stacklevel=2)
    return counts, factors, True


def heldout_draw(n_images: int, n_heldout: int) -> Tensor:
    """The held-out rows in draw order (long (n,), CPU): a fixed seeded choice, the same for every run seed."""
    g = torch.Generator().manual_seed(HELDOUT_SEED)
    return torch.randperm(n_images, generator=g)[:n_heldout]


class GalaxyData(ImageData):
    """The rendered galaxy set on the device, normalised to [0, 1]; batches are padded on the fly."""

    def __init__(self, spec: GalaxySpec, seed: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seed = seed
        counts, factors, self.rendered = load_or_render(spec)
        self.cache_path = spec.cache_path()
        self.count_min, self.count_max = float(counts.min()), float(counts.max())
        scale = self.count_max - self.count_min
        if not scale > 0:
            raise UserError("every galaxy image is blank", where=str(self.cache_path), fix="check the data fields")
        images = (torch.from_numpy(counts).to(torch.float64) - self.count_min) / scale
        self.images = images.float().clamp_(0.0, 1.0).unsqueeze(1).to(self.device)  # (n, 1, stamp, stamp)
        self.factors = torch.from_numpy(np.asarray(factors, dtype=np.float32)).to(self.device)
        side = spec.pad_to or spec.stamp
        before = (side - spec.stamp) // 2
        self.padding = (before, side - spec.stamp - before) * 2  # F.pad order: left, right, top, bottom
        self.shape = (1, side, side)
        self.binary = False
        self.factor_names = FACTOR_NAMES
        self.factor_sizes = (None,) * len(FACTOR_NAMES)  # type: ignore[assignment]  # all continuous
        draw = heldout_draw(spec.n, spec.heldout)
        keep = torch.ones(spec.n, dtype=torch.bool)
        keep[draw] = False
        self.heldout_index = draw.to(self.device)
        self.train_index = keep.nonzero().squeeze(1).to(self.device)
        self.n_train = spec.n - spec.heldout

    def pad(self, images: Tensor) -> Tensor:
        """Stamps (B, 1, stamp, stamp) -> centred zero-padded (B, 1, side, side)."""
        return F.pad(images, self.padding) if any(self.padding) else images

    def train_batch(self, step: int, batch_size: int) -> Batch:
        idx = self.train_indices(step, batch_size)
        return Batch(self.pad(self.images[idx]), self.factors[idx])

    def train_factors(self) -> Tensor:
        return self.factors[self.train_index]

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """The first `n` held-out images (draw order; all of them if n is None or larger than the split) and
        their raw factor values, float32 (n, 5) in FACTOR_NAMES order."""
        total = self.heldout_index.numel()
        idx = self.heldout_index[: total if n is None else max(0, min(n, total))]
        return self.pad(self.images[idx]), self.factors[idx]


@DATASETS.register
class GalaxySpec(DataSpec):
    """Galaxy stamps (GalSim): exponential disc ⊗ Gaussian PSF on a Latin hypercube of flux, radius, g1, g2 and
    PSF FWHM; 16,384 images 33×33 padded to 64×64 (generated, needs `pip install galsim`)."""

    type: Literal["galaxy"] = "galaxy"
    n: int = Field(16_384, ge=100, le=1_000_000, description="images: the size of the Latin hypercube design")
    design_seed: int = Field(7, ge=0, description="seed of the design and the noise (not the run seed)")
    stamp: int = Field(33, ge=8, le=256, description="stamp side in pixels (odd: centred on a pixel)")
    pixel_scale: float = Field(0.2, gt=0.0, le=10.0, description="arcsec per pixel")
    noise: Literal["poisson", "none"] = Field("poisson", description="Poisson noise on the counts, or none")
    pad_to: int | None = Field(
        64, ge=8, le=512, description="centred zero padding to pad_to × pad_to pixels (null: keep the stamp)"
    )
    heldout: int | None = Field(
        None, ge=1, description="size of the fixed held-out split (null: 10% of n, 1,638 for the default set)"
    )
    cache_dir: str | None = Field(
        None, description="where renders are cached (null: $SCULPT_CACHE_DIR, else ~/.cache/sculpt)"
    )
    workers: int = Field(0, ge=0, le=1024, description="render processes (0: one per CPU)")

    @model_validator(mode="after")
    def _check(self):
        if self.heldout is None:
            self.heldout = max(1, self.n // 10)
        if self.heldout >= self.n:
            raise ValueError(
                f"heldout must be between 1 and {self.n - 1} (the set has n = {self.n}), got {self.heldout}"
            )
        if self.pad_to is not None and self.pad_to < self.stamp:
            raise ValueError(f"pad_to {self.pad_to} is smaller than the {self.stamp}×{self.stamp} stamp")
        return self

    def pixel_fields(self) -> dict:
        """Everything that changes the rendered counts."""
        return {
            "generator": GENERATOR_VERSION,
            "n": self.n,
            "design_seed": self.design_seed,
            "stamp": self.stamp,
            "pixel_scale": self.pixel_scale,
            "noise": self.noise,
            "ranges": [list(r) for r in RANGES],
            "max_fft_size": MAX_FFT_SIZE,
        }

    def cache_key(self) -> str:
        return hashlib.sha256(json.dumps(self.pixel_fields(), sort_keys=True).encode()).hexdigest()[:20]

    def cache_path(self) -> Path:
        root = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        return root / "galaxy" / f"galaxy-{self.n}-{self.stamp}px-{self.cache_key()}.safetensors"

    def has_factors(self) -> bool:
        return True

    def image_shape(self) -> tuple[int, int, int]:
        side = self.pad_to or self.stamp
        return (1, side, side)

    def load(self, seed: int, device: torch.device | str = "cpu") -> GalaxyData:
        return GalaxyData(self, seed, torch.device(device))
