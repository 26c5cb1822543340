"""A CUDA device without a GPU, for tracing sculpt's CUDA code paths on a CPU machine (tests/test_cuda_trace.py).

`fake_cuda()` runs the code under a fake-tensor mode in which every tensor on `cuda` is a FakeTensor (shape, dtype,
device and strides, no data) while CPU-only work runs for real, so the data sets still generate their splits and
`int(...)` of a CPU tensor still works. A CPU tensor (other than a 0-dim scalar) meeting a CUDA one raises
`FakeTensorDeviceMismatchError`, as CUDA would; reading a CUDA tensor's values (`.item()`, `float()`, `.tolist()`,
numpy, a branch on its values) raises `DataDependentOutputException`: such a path cannot be traced.

Three things PyTorch refuses without a GPU are stood in for while the mode is on:
- `torch.Generator(device="cuda")`: a CPU generator that reports device cuda, and every random draw checks that its
  generator's device is the device of the tensor it draws (CUDA refuses a CPU generator for a CUDA tensor, fake
  tensors alone would not notice);
- `torch.autocast("cuda", torch.bfloat16)`: enabled (PyTorch disables it when no CUDA device is present), so the
  dtypes of the bf16 path are the CUDA path's;
- nothing else: `torch.cuda.is_available()` stays False (code asking it takes its CPU branch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.cuda.amp.common as amp_common
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

CUDA = torch.device("cuda", 0)
_RealGenerator = torch.Generator


class FakeCudaGenerator(_RealGenerator):
    """A CPU generator that says it is on `device` (cuda: what `torch.Generator(device="cuda")` would give)."""

    def __new__(cls, device: Any = "cpu") -> FakeCudaGenerator:
        self = super().__new__(cls, "cpu")
        d = torch.device(device)
        self._fake_device = torch.device("cuda", d.index or 0) if d.type == "cuda" else d
        return self

    def __init__(self, device: Any = "cpu") -> None:  # the C constructor took no part: __new__ made it on the CPU
        pass

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self._fake_device


class GeneratorDeviceCheck(TorchFunctionMode):
    """Every call given a `generator` must draw on that generator's device (as CUDA insists)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        g = kwargs.get("generator")
        if g is not None and isinstance(out, torch.Tensor) and g.device.type != out.device.type:
            name = getattr(func, "__name__", str(func))
            raise RuntimeError(f"{name}: a generator on {g.device} draws a tensor on {out.device}")
        return out


def _on_cuda(x: Any) -> bool:
    if isinstance(x, FakeTensor):
        return True
    if isinstance(x, torch.device):
        return x.type == "cuda"
    return isinstance(x, str) and x.startswith("cuda")


class CudaFakeTensorMode(FakeTensorMode):
    """Fake tensors for whatever touches CUDA (a fake tensor, or a `device` argument naming cuda); an operation on
    real CPU tensors alone runs for real."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not any(_on_cuda(x) for x in pytree.tree_leaves((args, kwargs))):
            return func(*args, **kwargs)  # inside the handler this mode is off: the real CPU kernel
        return super().__torch_dispatch__(func, types, args, kwargs)


def _clear_device_caches() -> None:
    """Per-device caches that would otherwise keep fake CUDA tensors after the trace."""
    from sculptcli.data import dsprites
    from sculptcli.priors import codependent
    from sculptcli.stats import mmd

    dsprites._tables.cache_clear()
    mmd._cached_upper_offsets.cache_clear()
    for key in [k for k in codependent._LOADED if str(k[1]).startswith("cuda")]:
        del codependent._LOADED[key]


@contextlib.contextmanager
def fake_cuda(dynamic_shapes: bool = False) -> Iterator[CudaFakeTensorMode]:
    """Trace with the device `cuda` on a machine without one (see the module docstring). `dynamic_shapes`: a
    boolean mask's selection (`z[rows]`) gets a symbolic row count instead of failing the trace."""
    _clear_device_caches()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(amp_common, "amp_definitely_not_available", lambda: False)
        mp.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        mp.setattr(torch, "Generator", FakeCudaGenerator)
        try:
            shape_env = ShapeEnv() if dynamic_shapes else None
            with CudaFakeTensorMode(allow_non_fake_inputs=True, shape_env=shape_env) as mode, GeneratorDeviceCheck():
                yield mode
        finally:
            _clear_device_caches()
