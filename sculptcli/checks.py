"""`sculpt checks`: what this machine will do with sculpt — versions, device and precision, threads, memory and
disk, the datasets found on disk, the optional extras and loggers installed. Each fact comes from the code that
uses it (the trainer's bf16 probe, the data specs' root resolution, the CPU share), so the report cannot drift
from what a run does."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from sculptcli import __version__
from sculptcli.errors import UserError
from sculptcli.trackers import TRACKERS, missing_modules

LIBS = (
    "torch", "torchvision", "numpy", "lightgbm", "scikit-learn", "scipy", "pot", "safetensors", "pydantic",
    "matplotlib", "typer", "rich", "pyyaml",
)  # fmt: skip
EXTRAS = {  # importable module -> what sculpt does with it (the loggers: from their registrations)
    "galsim": "renders the galaxy set (pip install 'sculpt[galaxy]')",
    **{t.name: f"logger: {t.help} ({t.install})" for t in TRACKERS.values()},
}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python, sculpt and each library's installed version (None: not installed)."""
    return {"python": platform.python_version(), "sculpt": __version__} | {lib: _version(lib) for lib in LIBS}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device() -> dict[str, Any]:
    """The device `--device auto` picks and the precision `train.precision: auto` gives it there."""
    import torch

    from sculptcli.training.trainer import bf16_autocast, cpu_has_bf16

    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(i)
        dev = torch.device("cuda", i)
        return {
            "type": "cuda",
            "name": torch.cuda.get_device_name(i),
            "count": torch.cuda.device_count(),
            "capability": f"{props.major}.{props.minor}",
            "memory_bytes": int(props.total_memory),
            "bf16": "native" if torch.cuda.is_bf16_supported() else "emulated",
            "precision_auto": "bf16" if bf16_autocast("auto", dev) else "fp32",
            "cuda": torch.version.cuda,
        }
    native = cpu_has_bf16()
    return {
        "type": "cpu",
        "name": _cpu_model(),
        "count": 0,
        "bf16": "native (AVX512-BF16 or AMX)" if native else "emulated (no AVX512-BF16/AMX: slower than fp32)",
        "precision_auto": "bf16" if bf16_autocast("auto", torch.device("cpu")) else "fp32",
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")(),
    }


def threads() -> dict[str, Any]:
    """CPUs of the machine and of this process, and the intra-op threads a lone run takes."""
    from sculptcli.training.cpushare import available_cpus, fixed_threads, pick_threads

    return {
        "machine_cpus": os.cpu_count(),
        "available_cpus": available_cpus(),
        "fixed_by_user": fixed_threads(None),  # OMP_NUM_THREADS when set and usable
        "run_threads": pick_threads(None),
    }


def memory() -> dict[str, int | None]:
    """Total and available RAM in bytes (/proc/meminfo; None where it cannot be read)."""
    out: dict[str, int | None] = {"total_bytes": None, "available_bytes": None}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                out["total_bytes" if key == "MemTotal" else "available_bytes"] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def disk(runs: Path) -> dict[str, Any]:
    """Free space where runs are written (the nearest existing folder of `runs`)."""
    probe = runs.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"runs": str(runs.resolve()), "free_bytes": usage.free, "total_bytes": usage.total}


def _found(find) -> dict[str, Any]:
    try:
        where = find()
    except UserError as e:
        return {"found": False, "problem": e.what.splitlines()[0]}
    return {"found": True, "path": str(where)}


def data(root: str | None = None) -> dict[str, Any]:
    """Per dataset: where it is looked for (the specs' own resolution) and whether it is there."""
    from sculptcli.data.folder import cache_dir
    from sculptcli.data.galaxy import default_cache_dir
    from sculptcli.data.vision import DATA_DIR_ENV, TINY_DIR, find_cifar, find_mnist, resolve_root, tiny_wnids

    base = resolve_root(root)
    galaxy_cache = default_cache_dir() / "galaxy"
    cached = sorted(galaxy_cache.glob("*.safetensors")) if galaxy_cache.is_dir() else []
    generated = {"found": True, "path": "generated on the fly (nothing on disk)"}
    return {
        "root": str(base),
        "root_from": "--data-dir" if root else (f"${DATA_DIR_ENV}" if os.environ.get(DATA_DIR_ENV) else "./data"),
        "datasets": {
            "mnist": _found(lambda: next(iter(find_mnist(base).values())).parent),
            "cifar10": _found(lambda: find_cifar(base)[0]),
            "tinyimagenet": _found(lambda: (tiny_wnids(base / TINY_DIR), base / TINY_DIR)[1]),
            "galaxy": {"found": bool(cached), "path": str(galaxy_cache), "cached_sets": len(cached)}
            | ({} if cached else {"problem": "no rendered set cached yet (the first run renders it with GalSim)"}),
            "folder": {"found": True, "path": f"data.path=DIR (decoded images cached in {cache_dir()})"},
            "tensor": {"found": True, "path": "data.path=FILE (.safetensors or .npz)"},
            "dsprites": generated,
            "xy": generated,
            "quad": generated,
        },
    }


def extras() -> dict[str, dict[str, Any]]:
    """The optional packages sculpt uses when they are installed; a logger's `missing`: the modules it still needs
    (mlflow also needs sqlalchemy and alembic for its local store)."""
    out: dict[str, dict[str, Any]] = {}
    for name, use in EXTRAS.items():
        out[name] = {"version": _version(name) or _version(f"{name}-skinny"), "use": use}
        if name in TRACKERS:
            out[name]["missing"] = missing_modules(name)
    return out


def collect(runs: Path = Path("runs"), data_root: str | None = None) -> dict[str, Any]:
    """Every check, as one JSON-ready mapping (the keys of `sculpt checks --json`)."""
    return {
        "versions": versions(),
        "platform": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "device": device(),
        "threads": threads(),
        "memory": memory(),
        "disk": disk(runs),
        "data": data(data_root),
        "extras": extras(),
    }
