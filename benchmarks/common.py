"""Shared benchmark helpers: the run environment and an interleaved, repeated timing of rivals."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch


def environment() -> dict[str, str]:
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {"device": dev, "torch": torch.__version__, "threads": str(torch.get_num_threads())}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Run each rival `repeats` times in alternation (A B A B ...) and return each one's median.

    Each callable returns its own measured seconds (so it can exclude its set-up)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0
