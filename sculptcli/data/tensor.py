"""Your own images from one file: `data: {type: tensor, path: images.safetensors}` (or an .npz).

The file holds `images` and, optionally, `factors` and `context`:

    images    uint8 [N, H, W] (grayscale), [N, H, W, C] (channels last, C ≤ 4) or [N, C, H, W] (channels
              first, C ≤ 4), values 0…255; or a float array of the same shapes with values in [0, 1]
    factors   [N, k] numbers (ground-truth factor values, used by the factor metrics), optional
    context   [N] integers, optional: the context (intervention) label of each image, 0 observational and
              k ≥ 1 an intervention on the k-th concept; `data.contexts` names them ([obs, concept1, …]). Training
              batches then come from one context each, chosen at random per step (a context module's training)

A 4-D array is read as channels first when its second axis is ≤ 4 and its last axis is not, else channels
last. .npz files are read with `allow_pickle=False`; nothing is ever unpickled. At config validation only the
file's header is read (existence, names, shapes); the arrays are loaded at build, converted to float
(N, C, H, W) in [0, 1] and moved to the device once. A fixed seeded split (the same for every run seed) is
held out and never trained on. `pad_to` zero-pads the images, centred, to pad_to × pad_to.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveInt, model_validator

from sculptcli.data import DATASETS
from sculptcli.data.base import Batch, DataSpec, ImageData
from sculptcli.errors import UserError
from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import Tensor
else:
    np = lazy("numpy")
    torch = lazy("torch")

HELDOUT_SEED = 1_000_017  # the held-out split is drawn with this seed, never with the run seed
SUFFIXES = (".safetensors", ".npz")


def read_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype name) of every array in the file, without loading the data. ValueError if unreadable."""
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"unsupported file type '{path.suffix}' ({path}): give a .safetensors or .npz file")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            out = {}
            with safe_open(str(path), "np") as f:
                names = f.keys()
                for k in names:
                    s = f.get_slice(k)
                    out[k] = (tuple(s.get_shape()), str(s.get_dtype()).lower())
            return out
        out = {}
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not name.endswith(".npy"):
                    continue
                with z.open(name) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                out[name[: -len(".npy")]] = (tuple(shape), dtype.name)
        return out
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        raise ValueError(
            f"cannot read {path} ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})"
        ) from None


def check_header(arrays: dict[str, tuple[tuple[int, ...], str]], path: Path) -> tuple[int, tuple[int, int, int]]:
    """(N, (C, H, W)) of the file's images, or ValueError saying what is wrong."""
    if "images" not in arrays:
        found = ", ".join(sorted(arrays)) or "none"
        raise ValueError(f"{path} has no array named 'images' (found: {found})")
    shape, dtype = arrays["images"]
    if dtype not in ("uint8", "u8") and not dtype.startswith(("float", "f16", "f32", "f64", "bf16")):
        raise ValueError(f"'images' must be uint8 (0…255) or float in [0, 1], got {dtype}")
    chw = image_layout(shape)
    n = shape[0]
    if "factors" in arrays:
        fshape, fdtype = arrays["factors"]
        if len(fshape) != 2 or fshape[0] != n:
            raise ValueError(f"'factors' must be [N, k] with N = {n} (the number of images), got {list(fshape)}")
        if fdtype == "bool" or fdtype.startswith(("str", "object", "<U", "|S")):
            raise ValueError(f"'factors' must be numbers, got {fdtype}")
    if "context" in arrays:
        cshape, cdtype = arrays["context"]
        if cshape != (n,):
            raise ValueError(f"'context' must be [N] with N = {n} (the number of images), got {list(cshape)}")
        if not cdtype.startswith(("int", "uint", "i", "u")):
            raise ValueError(f"'context' must be integer labels, got {cdtype}")
    return n, chw


def image_layout(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) of an images array of `shape`, or ValueError."""
    if len(shape) == 3:
        n, h, w = shape
        c = 1
    elif len(shape) == 4:
        if shape[1] <= 4 and shape[3] > 4:
            n, c, h, w = shape
        elif shape[3] <= 4:
            n, h, w, c = shape
        else:
            raise ValueError(f"cannot tell the channel axis of 'images' {list(shape)}: put 1–4 channels first or last")
    else:
        raise ValueError(f"'images' must be [N, H, W], [N, H, W, C] or [N, C, H, W], got rank {len(shape)}")
    if min(n, c, h, w) < 1:
        raise ValueError(f"'images' is empty: {list(shape)}")
    return c, h, w


def load_arrays(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    with np.load(path, allow_pickle=False) as f:
        return {k: torch.from_numpy(np.array(f[k])) for k in f.files if k in ("images", "factors", "context")}


def to_nchw(images: Tensor, where: str) -> Tensor:
    """uint8 or float images in any accepted layout -> float32 (N, C, H, W) in [0, 1]."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    elif images.shape[1] > 4 or images.shape[3] <= 4:  # channels last (same rule as image_layout)
        images = images.permute(0, 3, 1, 2)
    if images.dtype == torch.uint8:
        return images.float().div_(255.0).contiguous()
    x = images.float().contiguous()
    if not torch.isfinite(x).all():
        raise UserError("'images' holds non-finite values", where=where, fix="give finite values in [0, 1]")
    lo, hi = x.min().item(), x.max().item()
    if lo < 0.0 or hi > 1.0:
        raise UserError(
            f"float 'images' must lie in [0, 1], found values from {lo:.4g} to {hi:.4g}",
            where=where,
            fix="divide by 255 (or save uint8 0…255)",
        )
    return x


class TensorData(ImageData):
    """Images from a file, on the device; training batches over all but the held-out split."""

    def __init__(self, spec: TensorSpec, seed: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seed = seed
        path = Path(spec.path).expanduser()
        where = str(path)
        arrays = load_arrays(path)
        images = to_nchw(arrays["images"], where)
        if spec.pad_to:
            c, h, w = images.shape[1:]
            top, left = (spec.pad_to - h) // 2, (spec.pad_to - w) // 2
            padded = torch.zeros(images.shape[0], c, spec.pad_to, spec.pad_to)
            padded[:, :, top : top + h, left : left + w] = images
            images = padded
        factors = arrays.get("factors")
        if factors is not None:
            factors = factors.float()
            if not torch.isfinite(factors).all():
                raise UserError("'factors' holds non-finite values", where=where, fix="give finite factor values")
        n = images.shape[0]
        context = arrays.get("context")
        if context is not None:
            context = context.long()
            k = len(spec.contexts or ())
            if k == 0:
                raise UserError(
                    "the file has a 'context' column and data.contexts does not name its labels",
                    where=where,
                    fix="set data.contexts=[obs,<concept 1>,…] (label 0 observational, k the k-th concept)",
                )
            if int(context.min()) < 0 or int(context.max()) >= k:
                raise UserError(
                    f"'context' labels run from {int(context.min())} to {int(context.max())}, data.contexts names {k}",
                    where=where,
                    fix=f"labels must lie in 0…{k - 1}, or name every label in data.contexts",
                )
        n_heldout = spec.heldout_count(n)
        g = torch.Generator().manual_seed(HELDOUT_SEED)
        draw = torch.randperm(n, generator=g)[:n_heldout]
        keep = torch.ones(n, dtype=torch.bool)
        keep[draw] = False
        self.images = images.to(self.device)
        self.factors = None if factors is None else factors.to(self.device)
        self.shape = tuple(images.shape[1:])  # type: ignore[assignment]
        self.binary = bool(((self.images == 0) | (self.images == 1)).all())
        self.factor_names = None if factors is None else tuple(f"factor_{i}" for i in range(factors.shape[1]))
        self.factor_sizes = None
        self.heldout_index = draw.to(self.device)
        self.train_index = keep.nonzero().squeeze(1).to(self.device)
        self.n_train = n - n_heldout
        self.context = None if context is None else context.to(self.device)
        self.contexts = None if context is None else tuple(spec.contexts or ())
        if self.context is not None:  # the training items of each context label present
            lab = self.context[self.train_index]
            self.by_context = [self.train_index[lab == c] for c in range(len(self.contexts)) if (lab == c).any()]

    def train_batch(self, step: int, batch_size: int) -> Batch:
        if self.context is None:
            idx = self.train_indices(step, batch_size)
        else:  # one context per batch, chosen at random; its items with replacement (the release's sampler)
            key = (self.seed * 0x9E3779B1 + step * 0x2545F491 + 7) % 2**63
            pick = int(torch.randint(len(self.by_context), (1,), generator=torch.Generator().manual_seed(key)))
            pool = self.by_context[pick]  # the context chosen on the host: no device sync per step
            g = torch.Generator(device=self.device).manual_seed(key)
            idx = pool[torch.randint(len(pool), (batch_size,), generator=g, device=self.device)]
        return Batch(
            self.images[idx],
            None if self.factors is None else self.factors[idx],
            None if self.context is None else self.context[idx],
        )

    def train_factors(self) -> Tensor | None:
        return None if self.factors is None else self.factors[self.train_index]

    def heldout_context(self, context: str, n: int | None = None) -> Tensor:
        """The first `n` held-out images whose label is `context` (a name of `data.contexts`)."""
        if self.contexts is None:
            raise ValueError("this file has no 'context' column")
        if context not in self.contexts:
            raise ValueError(f"unknown context {context!r} (the file's: {', '.join(self.contexts)})")
        idx = self.heldout_index[self.context[self.heldout_index] == self.contexts.index(context)]
        return self.images[idx if n is None else idx[:n]]

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The first `n` held-out images (all of them if n is None or larger than the split) and factors."""
        total = self.heldout_index.numel()
        idx = self.heldout_index[: total if n is None else max(0, min(n, total))]
        return self.images[idx], None if self.factors is None else self.factors[idx]


@DATASETS.register
class TensorSpec(DataSpec):
    """Your own images from a .safetensors or .npz file holding `images` (and optional `factors`)."""

    type: Literal["tensor"] = "tensor"
    path: str = Field(description="a .safetensors or .npz file holding `images` (and optional `factors` [N, k])")
    heldout: PositiveInt | float = Field(
        0.1, description="the fixed held-out split: a fraction in (0, 1) of the images, or a count"
    )
    pad_to: PositiveInt | None = Field(None, description="centred zero padding to pad_to × pad_to pixels")
    contexts: list[str] | None = Field(
        None, description="names of the file's 'context' labels: [obs, concept 1, …] (label 0 observational)"
    )

    @model_validator(mode="after")
    def _check_file(self):
        path = Path(self.path).expanduser()
        n, (c, h, w) = check_header(read_header(path), path)
        if isinstance(self.heldout, float) and not 0.0 < self.heldout < 1.0:
            raise ValueError(f"heldout must be a fraction in (0, 1) or a count, got {self.heldout}")
        k = self.heldout_count(n)
        if not 0 < k < n:
            raise ValueError(f"heldout must leave between 1 and {n - 1} held-out images (the file has {n}), got {k}")
        if self.pad_to is not None and self.pad_to < max(h, w):
            raise ValueError(f"pad_to {self.pad_to} is smaller than the {h}×{w} images")
        if self.contexts is not None and (len(self.contexts) < 2 or len(set(self.contexts)) != len(self.contexts)):
            raise ValueError("contexts: name the observational label and at least one concept, each once")
        return self

    def context_names(self) -> tuple[str, ...] | None:
        return None if self.contexts is None else tuple(self.contexts)

    def heldout_count(self, n: int) -> int:
        return max(1, round(self.heldout * n)) if isinstance(self.heldout, float) else self.heldout

    def image_shape(self) -> tuple[int, int, int]:
        path = Path(self.path).expanduser()
        _, (c, h, w) = check_header(read_header(path), path)
        return (c, self.pad_to, self.pad_to) if self.pad_to else (c, h, w)

    def load(self, seed: int, device: torch.device | str = "cpu") -> TensorData:
        return TensorData(self, seed, torch.device(device))
