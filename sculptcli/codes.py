"""A model's codes of its own training stream, and a checkpoint's: what latent copying's teacher and the
`empirical` prior's `checkpoint:` mode read. Below the build and run stations: it builds a model and its data,
never a prior, so a prior may be made of another run's codes without an import circle."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from sculptcli.checkpoint import find_checkpoint, load_checkpoint
from sculptcli.device import resolve_device
from sculptcli.errors import UserError

CODES_BATCH = 500  # images per batch when a model encodes its own training stream

@torch.no_grad()
def training_codes(model, data, n: int, batch_size: int = CODES_BATCH) -> Tensor:
    """Posterior means (float32, CPU, [n, d]) of the first n images of `data`'s training stream:
    `data.train_batch(step, batch_size)` at steps 0, 1, … (the same images for any batch size within an epoch)."""
    if n < 1:
        raise UserError(f"the number of codes must be at least 1, got {n}")
    bs = max(1, min(batch_size, n, data.n_train))
    was_training = model.training
    model.eval()
    out, got, step = [], 0, 0
    while got < n:
        z = model.embed(data.train_batch(step, bs).images).cpu()[: n - got]
        out.append(z)
        got += len(z)
        step += 1
    model.train(was_training)
    return torch.cat(out)


def check_codes(z: Tensor, where: str) -> Tensor:
    """`z` if it is a non-empty [N, d] array of finite values, else a UserError."""
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise UserError(f"the teacher produced no codes (shape {list(z.shape)})", where=where)
    bad = ~torch.isfinite(z).all(1)
    if bad.any():
        raise UserError(
            f"the teacher encodes {int(bad.sum())} of {len(z)} training images to non-finite codes (NaN or infinity)",
            where=where,
            fix="the teacher's training diverged or its weights are damaged; use an earlier checkpoint "
            "(--checkpoint best) or retrain it",
        )
    return z


def checkpoint_codes(target: Path, n: int, device: torch.device | str = "cpu") -> Tensor:
    """The codes of a checkpoint file or run directory's model over the first n images of its own training stream
    (the `empirical` prior's `checkpoint:` mode). Custom model code named in that checkpoint is not imported. Only
    the model and the data are built (not the checkpoint's prior), so a prior may read another run's codes."""
    ckpt = load_checkpoint(find_checkpoint(Path(target).expanduser(), "last"))
    if getattr(ckpt.config.model, "code_targets", lambda: [])():
        raise UserError(
            "the checkpoint's model is custom code, which an empirical prior's `checkpoint:` does not import",
            where=str(ckpt.path),
            fix="export its codes with `sculpt score RUN --trust-code --export-latents codes.safetensors` and give "
            "prior.source=codes.safetensors",
        )
    device = resolve_device(device)
    model, data = ckpt.build_model(device), ckpt.config.data.build(ckpt.config.seed, device)
    return check_codes(training_codes(model, data, n), str(ckpt.path))
