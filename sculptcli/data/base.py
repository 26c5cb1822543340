"""What every dataset provides once built: deterministic training batches and a fixed held-out split."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from sculptcli.lazy import lazy
from sculptcli.registry import Spec

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy("torch")


@dataclass(frozen=True)
class Batch:
    """One training batch: the images and, when the dataset knows them, the images' factor values and context labels.

    `factors` (B, k) float are the same values `heldout` returns for held-out images (in the dataset's
    `factor_names` order); `context` (B,) long holds the context (intervention) label of each image — a batch
    drawn from one context carries that label throughout. Objectives and divergences receive the whole batch, so
    one that needs factors (a conditional prior, a supervised term) reads them from here."""

    images: Tensor
    factors: Tensor | None = None
    context: Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx) -> Batch:
        """The rows `idx` (a slice or an index tensor) of every part."""
        return Batch(
            self.images[idx],
            None if self.factors is None else self.factors[idx],
            None if self.context is None else self.context[idx],
        )

    def with_images(self, images: Tensor) -> Batch:
        return replace(self, images=images)


class ImageData(ABC):
    """A built dataset. Images are float tensors in [0, 1] with shape (N, C, H, W) on `device`.

    Training batches are a pure function of (seed, step): resuming at step s replays exactly the
    batches an uninterrupted run would have seen, with no data-loader state to save.
    """

    shape: tuple[int, int, int]  # (C, H, W)
    binary: bool  # pixel values are exactly {0, 1}: BCE is the natural reconstruction loss
    factor_names: tuple[str, ...] | None = None
    factor_sizes: tuple[int, ...] | None = None  # None for a continuous factor
    contexts: tuple[str, ...] | None = None  # names of the context labels (the first observational), if any
    n_train: int
    device: torch.device
    seed: int
    train_index: Tensor  # (n_train,) ids of the training items, on `device`

    def train_indices(self, step: int, batch_size: int) -> Tensor:
        """Ids (from `train_index`) of the training batch at `step`: one seeded permutation per epoch."""
        samplers: dict[int, EpochSampler] = self.__dict__.setdefault("_samplers", {})
        sampler = samplers.get(batch_size)
        if sampler is None:
            # on the device that holds the ids: the training device, or the host for a set kept there
            sampler = samplers[batch_size] = EpochSampler(self.n_train, batch_size, self.seed, self.train_index.device)
        return self.train_index[sampler.indices(step)]

    def train_factors(self) -> Tensor | None:
        """The factor values (float (n_train, k), `factor_names` order) of every training item, or None when the
        dataset knows no factors (what a conditional prior scales by and draws its aggregate from)."""
        return None

    def ground_truth(self) -> tuple[Tensor, Callable[[Tensor], Tensor]] | None:
        """For a generated dataset: the factor codes of every image it can make, long (M, K), and a function
        rendering rows of that table to images — what the FactorVAE and β-VAE scores intervene with. None when
        the dataset cannot render from factors."""
        return None

    @abstractmethod
    def train_batch(self, step: int, batch_size: int) -> Batch:
        """The training batch for `step`: images float (B, C, H, W) on `self.device`, with their factors (float
        (B, k)) when the dataset knows them."""

    @abstractmethod
    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The first `n` (all if None) images of the fixed held-out split and their factors
        (float (n, k) factor values, or None when the dataset has no known factors)."""


class EpochSampler:
    """Indices of a training batch at any step: one seeded permutation per epoch, drop-last.

    Lives on the training device so batches never round-trip through the host.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device):
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} exceeds the {n} training examples")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.steps_per_epoch = n // batch_size
        self._epoch = -1
        self._perm: Tensor | None = None

    def indices(self, step: int) -> Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g, device=self.device)
            self._epoch = epoch
        assert self._perm is not None
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


# ---------------------------------------------------------------- the spec every dataset shares: pixel scaling


def normalize_pixels(x: Tensor, how: str, stretch: float) -> Tensor:
    """Pixels in [0, 1] mapped back into [0, 1] by `how`, for faint, high-dynamic-range images:

    none   x unchanged
    max    x / max(x) per image (the brightness of each image is lost: a factor such as flux then is too)
    asinh  asinh(x / s) / asinh(1 / s) with s = stretch (linear below s, logarithmic above: astronomy's stretch)
    log    (log10(x + s) − log10(s)) / (log10(1 + s) − log10(s)), s = stretch (a floor for the dark pixels)
    """
    if how == "none":
        return x
    if how == "max":
        peak = x.flatten(1).amax(1).clamp_min(1e-12)
        return x / peak.view(-1, *([1] * (x.ndim - 1)))
    if how == "asinh":
        return torch.asinh(x / stretch) / math.asinh(1.0 / stretch)
    if how == "log":
        lo = math.log10(stretch)
        return (torch.log10(x + stretch) - lo) / (math.log10(1.0 + stretch) - lo)
    raise ValueError(f"unknown normalize {how!r}")


class NormalizedData(ImageData):
    """A built dataset whose every image (training, held-out, rendered from factors) passes through
    `normalize_pixels`; everything else is the wrapped dataset's."""

    def __init__(self, inner: ImageData, how: str, stretch: float):
        self.inner, self.how, self.stretch = inner, how, stretch
        self.binary = False

    def __getattr__(self, name: str):  # shape, n_train, factors, train_index, … of the wrapped dataset
        return getattr(self.__dict__["inner"], name)

    def _norm(self, x: Tensor) -> Tensor:
        return normalize_pixels(x, self.how, self.stretch)

    def train_batch(self, step: int, batch_size: int) -> Batch:
        batch = self.inner.train_batch(step, batch_size)
        return batch.with_images(self._norm(batch.images))

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor | None]:
        images, factors = self.inner.heldout(n)
        return self._norm(images), factors

    def ground_truth(self):
        table = self.inner.ground_truth()
        if table is None:
            return None
        rows, render = table
        return rows, lambda r: self._norm(render(r))


class DataSpec(Spec):
    """Base of every dataset spec: `load` builds the dataset, `build` adds the pixel scaling every dataset has."""

    normalize: Literal["none", "max", "asinh", "log"] = Field(
        "none", description="pixel scaling for faint, high-dynamic-range images: none, max, asinh or log"
    )
    stretch: float = Field(0.01, gt=0, le=1, description="the asinh softening or the log floor (normalize)")

    def load(self, seed: int, device: torch.device | str = "cpu") -> ImageData:
        raise NotImplementedError

    def has_factors(self) -> bool | None:
        """Whether every item of this dataset comes with factor values (None: known only once it is read)."""
        return None

    def context_names(self) -> tuple[str, ...] | None:
        """The names of the context labels its training batches carry — the first the observational context,
        then one per intervened concept — or None for data without contexts."""
        return None

    def build(self, seed: int, device: torch.device | str = "cpu") -> ImageData:
        data = self.load(seed, device)
        return data if self.normalize == "none" else NormalizedData(data, self.normalize, self.stretch)
