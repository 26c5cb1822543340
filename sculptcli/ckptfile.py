"""Checkpoint files before they are opened: where a run's checkpoint is, and what its header says (format,
config), read from the safetensors metadata alone. Imports nothing of the engine, so priors may use it."""

from __future__ import annotations

import json
from pathlib import Path

from sculptcli.errors import UserError

FORMAT = "sculpt-checkpoint"
FORMAT_VERSION = "1"


def find_checkpoint(target: Path | None, which: str = "last") -> Path:
    """A checkpoint file from a file, a run directory, or (None) the latest run."""
    from sculptcli.rundir import latest_run

    if target is None:
        target = latest_run()
    target = Path(target)
    if target.is_dir():
        cand = target / f"{which}.safetensors"
        if not cand.is_file():
            raise UserError(
                f"no {which}.safetensors in run directory {target}",
                fix="train first (`sculpt train ...`), or give a checkpoint file",
            )
        return cand
    if not target.exists():
        raise UserError(f"no such checkpoint or run directory: {target}", fix="check the path")
    return target


def checkpoint_latent_dim(target: Path) -> tuple[Path, int]:
    """(checkpoint file, its model's latent size) from a checkpoint or run directory, reading only the metadata.
    ValueError when it is not a readable sculpt checkpoint."""
    from safetensors import safe_open

    try:
        path = find_checkpoint(target)
    except UserError as e:
        raise ValueError(e.what) from None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a sculpt checkpoint")
        d = int(json.loads(meta["config"])["model"]["latent_dim"])
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable sculpt checkpoint ({str(e).splitlines()[0][:100]})") from None
    except Exception as e:  # noqa: BLE001 - damaged metadata or not a safetensors file
        raise ValueError(f"{path}: not a readable sculpt checkpoint ({type(e).__name__})") from None
    return path, d
