"""What every dataset provides once built: deterministic training batches and a fixed held-out split."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor


class ImageData(ABC):
    """A built dataset. Images are float tensors in [0, 1] with shape (N, C, H, W) on `device`.

    Training batches are a pure function of (seed, step): resuming at step s replays exactly the
    batches an uninterrupted run would have seen, with no data-loader state to save.
    """

    shape: tuple[int, int, int]  # (C, H, W)
    binary: bool  # pixel values are exactly {0, 1}: BCE is the natural reconstruction loss
    factor_names: tuple[str, ...] | None = None
    factor_sizes: tuple[int, ...] | None = None  # None for a continuous factor
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

    def ground_truth(self) -> tuple[Tensor, Callable[[Tensor], Tensor]] | None:
        """For a generated dataset: the factor codes of every image it can make, long (M, K), and a function
        rendering rows of that table to images — what the FactorVAE and β-VAE scores intervene with. None when
        the dataset cannot render from factors."""
        return None

    @abstractmethod
    def train_batch(self, step: int, batch_size: int) -> Tensor:
        """The training batch for `step`: float (B, C, H, W) on `self.device`."""

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
