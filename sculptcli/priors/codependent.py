"""Priors for the shapes a factorised prior cannot express: `empirical` (resampled codes, e.g. a teacher's aggregate
posterior), `ring` and `torus` (circular factors), and `transform` (a 1-D prior pushed through an elementwise map).

`transform.base` refers to `PriorUnion`, closed over every registered prior in `sculptcli/priors/__init__.py`.

`empirical` reads its codes without pickle: `.safetensors` (tensor `latents`) or `.npy` (`allow_pickle=False`).
Validation checks the file early (existence, shape, dtype, finite values, streamed in chunks) and remembers the
result per (path, size, mtime); the tensor itself is loaded once per device at `build()`/first `sample()`.
A relative `source` is resolved against the current directory and stored absolute, so a run's saved config keeps
working from anywhere (as long as the file stays where it is).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, PrivateAttr, field_validator, model_validator

from sculptcli.ckptfile import checkpoint_latent_dim
from sculptcli.errors import UserError, did_you_mean
from sculptcli.lazy import lazy
from sculptcli.priors import PRIORS
from sculptcli.priors.base import PriorSpec, Sampler

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import Tensor
else:
    np = lazy("numpy")
    torch = lazy("torch")
    F = lazy("torch.nn.functional")

LATENT_SUFFIXES = (".safetensors", ".npy")
DEFAULT_CHECKPOINT_N = 20_000
_CHUNK_ROWS = 65_536  # rows per chunk when scanning a codes file for non-finite values


def _randn(shape, generator, device) -> Tensor:
    return torch.randn(shape, generator=generator, device=device)


def _rand(shape, generator, device) -> Tensor:
    return torch.rand(shape, generator=generator, device=device)


# ---------------------------------------------------------------- empirical: reading codes files

_SCANNED: dict[tuple, tuple[int, int]] = {}  # (path, size, mtime_ns) -> (N, d) of a checked file
_LOADED: OrderedDict[tuple, Tensor] = OrderedDict()  # (source key, device) -> the codes on that device
_MAX_LOADED = 8


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


_REAL_DTYPES = ("F", "I", "U")  # safetensors dtype names: F16, BF16, F32, F64, I8..I64, U8..U64 (not BOOL)


def _check_dtype(name: str, path: Path) -> None:
    """`name`: a numpy dtype's `.str`-like kind letter or a safetensors dtype name."""
    if not name.upper().lstrip("B").startswith(_REAL_DTYPES):
        raise ValueError(f"{path}: the codes must be real numbers, not {name}")


def _check_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(f"{path}: the codes must be a 2-D array [N, d], got shape {list(shape)}")
    n, d = shape
    if n < 1 or d < 1:
        raise ValueError(f"{path}: the codes are empty (shape {list(shape)})")
    return int(n), int(d)


def _check_finite(chunk: Tensor, start: int, path: Path) -> None:
    bad = ~torch.isfinite(chunk.float())
    if bad.any():
        row = start + int(bad.nonzero()[0, 0])
        raise ValueError(f"{path}: the codes hold non-finite values (NaN or infinity; the first in row {row})")


def scan_codes_file(path: Path) -> tuple[int, int]:
    """(N, d) of a codes file after checking it (shape, dtype, finite values, read in chunks); ValueError if bad."""
    if not path.is_file():
        raise ValueError(f"no such file: {path}" + (" (a directory)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    if suffix not in LATENT_SUFFIXES:
        raise ValueError(f"{path}: unsupported codes file type '{path.suffix}' (give .safetensors or .npy)")
    key = _file_key(path)
    if key in _SCANNED:
        return _SCANNED[key]
    try:
        if suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            kind = {"f": "F", "i": "I", "u": "U"}.get(arr.dtype.kind, str(arr.dtype))
            _check_dtype(kind, path)
            n, d = _check_shape(arr.shape, path)
            for s in range(0, n, _CHUNK_ROWS):
                _check_finite(torch.from_numpy(np.array(arr[s : s + _CHUNK_ROWS])), s, path)
            del arr
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                names = list(f.keys())  # noqa: SIM118
                if "latents" not in names:
                    raise ValueError(f"{path}: no tensor named 'latents' (found: {', '.join(sorted(names)) or 'none'})")
                sl = f.get_slice("latents")
                _check_dtype(sl.get_dtype(), path)
                n, d = _check_shape(tuple(sl.get_shape()), path)
                for s in range(0, n, _CHUNK_ROWS):
                    _check_finite(sl[s : s + _CHUNK_ROWS], s, path)
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read the codes ({str(e).splitlines()[0][:120]})") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure (truncated, not the format) is a bad file
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ValueError(f"{path}: cannot read the codes ({why})") from None
    _SCANNED[key] = (n, d)
    return n, d


def read_codes_file(path: Path) -> Tensor:
    """The codes of a (checked) file as float32 [N, d] on the CPU, never unpickling anything."""
    scan_codes_file(path)
    if path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
        z = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    else:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            z = f.get_tensor("latents").float()
    if not torch.isfinite(z).all():  # the file changed since it was checked
        raise UserError("the codes hold non-finite values (NaN or infinity)", where=str(path))
    return z


# ---------------------------------------------------------------- empirical


@PRIORS.register
class Empirical(PriorSpec):
    """Resampled codes: rows of an [N, d] array (e.g. a teacher's aggregate posterior) drawn with replacement,
    plus optional Gaussian jitter of std `bandwidth`. Co-dependent: keeps the joint distribution of the codes."""

    type: Literal["empirical"] = "empirical"
    source: Path | None = Field(
        None, description="codes file [N, d]: .safetensors (tensor 'latents') or .npy; relative to the cwd"
    )
    checkpoint: Path | None = Field(
        None,
        description="instead of source: a checkpoint or run directory whose model encodes the first n images of "
        "its own training stream (posterior means), once per process",
    )
    n: PositiveInt | None = Field(None, description=f"with checkpoint: images encoded (default {DEFAULT_CHECKPOINT_N})")
    bandwidth: NonNegativeFloat = Field(0.0, description="std of the Gaussian jitter added to every drawn code")

    _dim: int = PrivateAttr(0)
    _on: dict = PrivateAttr(default_factory=dict)  # device -> this spec's codes (no stat per draw)

    @model_validator(mode="after")
    def _check_source(self):
        if (self.source is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of source (a codes file) or checkpoint (a checkpoint or run directory)")
        if self.source is not None:
            if self.n is not None:
                raise ValueError("n applies to checkpoint only (a source file is used whole)")
            path = self.source.expanduser().resolve()
            _, d = scan_codes_file(path)
            if path != self.source:
                object.__setattr__(self, "source", path)  # store absolute without re-running validation
        else:
            assert self.checkpoint is not None
            ckpt, d = checkpoint_latent_dim(self.checkpoint.expanduser().resolve())
            if ckpt != self.checkpoint:
                object.__setattr__(self, "checkpoint", ckpt)
        if self.dims is not None and self.dims != d:
            raise ValueError(f"dims is {self.dims} but the codes have {d} dimensions")
        self._dim = d
        return self

    def event_dim(self) -> int:
        return self._dim

    def origin(self) -> str:
        return str(self.source) if self.source is not None else f"the codes of {self.checkpoint}"

    def check_dim(self, dim: int) -> None:
        if self._dim != dim:
            raise ValueError(
                f"the empirical codes ({self.origin()}) have {self._dim} dimensions but the latent size is {dim}"
            )

    def codes(self, device: torch.device | str = "cpu") -> Tensor:
        """The codes [N, d] float32 on `device`, loaded once per process and device. With `checkpoint`, the
        engine encodes them before the prior is built (`sculptcli.build.resolve_prior_codes`) and hands them
        over with `use_codes`: a prior never loads a model."""
        device = torch.device(device)
        if str(device) in self._on:
            return self._on[str(device)]
        if self.source is None:
            if "cpu" not in self._on:
                raise UserError(
                    f"the codes of {self.checkpoint} were not encoded before the prior was built",
                    fix="build priors through sculptcli.build.build_prior (or call resolve_prior_codes first)",
                )
            self._on[str(device)] = self._on["cpu"].to(device)
            return self._on[str(device)]
        key: tuple = ("file", *_file_key(self.source))
        full = (key, str(device))
        if full not in _LOADED:
            cpu = (key, "cpu")
            z = _LOADED[cpu] if cpu in _LOADED else read_codes_file(self.source)
            _LOADED[full] = z.to(device)
            while len(_LOADED) > _MAX_LOADED:
                _LOADED.popitem(last=False)
        _LOADED.move_to_end(full)
        self._on[str(device)] = _LOADED[full]
        return _LOADED[full]

    def needs_codes(self) -> bool:
        """True while this prior reads a checkpoint's codes that have not been handed over yet."""
        return self.checkpoint is not None and "cpu" not in self._on

    def use_codes(self, z: Tensor) -> None:
        """Hand over the (checkpoint's) codes [N, d] this prior resamples."""
        if z.ndim != 2 or z.shape[1] != self._dim:
            raise ValueError(f"codes of shape {tuple(z.shape)} for an empirical prior of {self._dim} dimensions")
        self._on.clear()
        self._on["cpu"] = z.detach().float().cpu()

    def build(self, dim: int, device: torch.device | str = "cpu", data=None) -> Sampler:
        self.check_dim(dim)
        self.codes(device)  # read now, not at the first step
        return Sampler(self, dim, torch.device(device))

    def sample(self, n, dim, generator, device):
        z = self.codes(device)
        idx = torch.randint(len(z), (n,), generator=generator, device=device)
        out = z[idx]
        if self.bandwidth > 0:
            out = out + self.bandwidth * _randn(out.shape, generator, device)
        return out

    def describe(self) -> str:
        n = self.n or DEFAULT_CHECKPOINT_N
        what = f"source={self.source}" if self.source is not None else f"checkpoint={self.checkpoint}, n={n}"
        return f"empirical({what}, d={self._dim}" + (f", bandwidth={self.bandwidth:g})" if self.bandwidth else ")")


# ---------------------------------------------------------------- ring and torus


def _rings(n: int, radii: Tensor, noise: float, generator, device) -> Tensor:
    """(n, 2k) points on k independent rings: angle uniform on [0, 2π), radius radii[j] + noise·N(0, 1)."""
    k = radii.numel()
    theta = _rand((n, k), generator, device) * (2 * math.pi)
    r = radii.to(device)[None, :] + noise * _randn((n, k), generator, device)
    return torch.stack([r * theta.cos(), r * theta.sin()], dim=2).reshape(n, 2 * k)


@PRIORS.register
class Ring(PriorSpec):
    """A circle in 2 dims: angle uniform on [0, 2π), radius `radius` with Gaussian radial `noise` (a circular
    factor such as orientation). Co-dependent: neither coordinate is informative alone."""

    type: Literal["ring"] = "ring"
    radius: PositiveFloat = 1.0
    noise: NonNegativeFloat = Field(0.1, description="std of the radial Gaussian noise")

    @model_validator(mode="after")
    def _two_dims(self):
        if self.dims is not None and self.dims != 2:
            raise ValueError(f"dims is {self.dims} but a ring covers exactly 2 dims (use torus for several rings)")
        return self

    def event_dim(self) -> int:
        return 2

    def sample(self, n, dim, generator, device):
        return _rings(n, torch.tensor([float(self.radius)]), self.noise, generator, device)


@PRIORS.register
class Torus(PriorSpec):
    """Independent rings on consecutive pairs of dims (0-1, 2-3, ...): `dims` (even, default 4 or
    2·len(radius)), a radius per pair (or one for all) and Gaussian radial `noise`."""

    type: Literal["torus"] = "torus"
    radius: PositiveFloat | list[PositiveFloat] = Field(1.0, description="one radius, or one per pair of dims")
    noise: NonNegativeFloat = Field(0.1, description="std of the radial Gaussian noise")

    @field_validator("radius")
    @classmethod
    def _nonempty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("radius needs at least one entry (one per pair of dims)")
        return v

    @model_validator(mode="after")
    def _pairs(self):
        if self.dims is not None and self.dims % 2:
            raise ValueError(f"torus dims must be even (one ring per pair of dimensions), got {self.dims}")
        if isinstance(self.radius, list) and self.dims is not None and len(self.radius) != self.dims // 2:
            raise ValueError(f"radius has {len(self.radius)} entries but dims {self.dims} makes {self.dims // 2} pairs")
        return self

    def event_dim(self) -> int:
        if self.dims is not None:
            return self.dims
        return 2 * len(self.radius) if isinstance(self.radius, list) else 4

    def radii(self) -> list[float]:
        k = self.event_dim() // 2
        return [float(r) for r in self.radius] if isinstance(self.radius, list) else [float(self.radius)] * k

    def sample(self, n, dim, generator, device):
        return _rings(n, torch.tensor(self.radii()), self.noise, generator, device)


# ---------------------------------------------------------------- transform

FUNCTIONS = {  # torch looked up at call time: defining the prior specs imports no torch
    "tanh": lambda x: torch.tanh(x),
    "exp": lambda x: torch.exp(x),
    "cube": lambda x: x * x * x,
    "sigmoid": lambda x: torch.sigmoid(x),
    "softplus": lambda x: F.softplus(x),
    "square": lambda x: torch.square(x),
    "abs": lambda x: torch.abs(x),
}
FunctionName = Literal["tanh", "exp", "cube", "sigmoid", "softplus", "square", "abs"]
assert set(get_args(FunctionName)) == set(FUNCTIONS)


@PRIORS.register
class Transform(PriorSpec):
    """fn(base): a 1-D prior (gaussian, uniform, laplace, gmm or another transform) pushed through an elementwise
    map fn (tanh, exp, cube, sigmoid, softplus, square, abs); 1-D like its base."""

    type: Literal["transform"] = "transform"
    base: PriorUnion = Field(description="the 1-D prior whose samples are mapped")  # type: ignore[valid-type]  # noqa: F821
    fn: FunctionName = Field(description="tanh | exp | cube | sigmoid | softplus | square | abs")

    @field_validator("fn", mode="before")
    @classmethod
    def _known_fn(cls, v):
        if isinstance(v, str) and v not in FUNCTIONS:
            raise ValueError(f"unknown fn '{v}'.{did_you_mean(v, FUNCTIONS)} Choices: {', '.join(FUNCTIONS)}")
        return v

    @model_validator(mode="after")
    def _one_dimensional_base(self):
        if self.base.event_dim() is not None:
            raise ValueError(
                f"base must be a 1-D prior (gaussian, uniform, laplace, gmm, or a transform of one), "
                f"not '{self.base.type}' (it has {self.base.event_dim()} dimensions of its own)"
            )
        if self.base.dims is not None:
            raise ValueError("give dims on the transform, not on its base (the base is mapped elementwise)")
        return self

    def sample_1d(self, shape, generator, device):
        return FUNCTIONS[self.fn](self.base.sample_1d(shape, generator, device))

    def describe(self) -> str:
        return f"transform(fn={self.fn}, base={self.base.describe()})"
