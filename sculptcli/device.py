"""Which device a command runs on: shared by training and every reader of a finished run."""

from __future__ import annotations

import torch

from sculptcli.errors import UserError


def resolve_device(name: str | torch.device) -> torch.device:
    """`auto` (CUDA when available, else the CPU), `cpu`, `cuda` or `cuda:N` as a torch device; asking for CUDA
    where there is none is a UserError."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA device is available", fix="use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}'", fix="use auto, cpu or cuda") from None
