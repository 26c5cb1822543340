"""The run station (its reading half): open a finished run or checkpoint, written once.

`open_run(path)` finds the checkpoint (a run directory's last or best, or a .safetensors file), reads its embedded
config, and hands back a `Run` whose model, data and prior are built on first use. `sculpt score`, `traverse`,
`copy-latent`, the `empirical` prior's checkpoint mode and the Python API all open runs here; nothing here imports
the trainer."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sculptcli.checkpoint import Checkpoint, find_checkpoint, load_checkpoint
from sculptcli.config import RunConfig
from sculptcli.device import resolve_device
from sculptcli.errors import UserError

WHICH = ("last", "best")
CODES_BATCH = 500  # images per batch when a model encodes its own training stream


def check_which(which: str) -> str:
    """`which` if it names a checkpoint of a run directory (last or best), else a UserError."""
    if which not in WHICH:
        raise UserError(f"--checkpoint must be last or best, not '{which}'", fix="give --checkpoint last or best")
    return which


def check_finite_codes(z: Tensor, where: str, what: str = "held-out images") -> Tensor:
    """`z` if every code is finite, else a UserError: the model's training diverged."""
    if not bool(torch.isfinite(z).all()):
        raise UserError(
            f"the model encodes {what} to non-finite codes",
            where=where,
            fix="the checkpoint's training diverged; use an earlier checkpoint",
        )
    return z


class Run:
    """A finished (or checkpointed) run, opened for reading.

    `config` and `step` are read at once; `model` (weights loaded, eval mode), `data` (the run's dataset, built with
    its seed) and `prior` (on the CPU) are built on first use. A model that is custom code named in the checkpoint
    (`model.type: custom`) is imported only when the run was opened with `trust_code=True`."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device, trust_code: bool = False):
        self.checkpoint = checkpoint
        self.device = device
        self.trust_code = trust_code

    @property
    def path(self) -> Path:
        """The checkpoint file."""
        return self.checkpoint.path

    @property
    def dir(self) -> Path:
        """The run directory (the checkpoint's folder)."""
        return self.checkpoint.path.resolve().parent

    @property
    def config(self) -> RunConfig:
        """The resolved config the run was trained with."""
        return self.checkpoint.config

    @property
    def step(self) -> int:
        """The optimizer step the checkpoint was written at."""
        return self.checkpoint.step

    @property
    def latent_dim(self) -> int:
        return int(self.config.model.latent_dim)

    @cached_property
    def model(self) -> torch.nn.Module:
        """The run's autoencoder on `device`, weights loaded, in eval mode."""
        return self.checkpoint.build_model(self.device, trust_code=self.trust_code)

    @cached_property
    def data(self):
        """The run's dataset, built with the run's seed on `device` (same splits as in training)."""
        return self.config.data.build(self.config.seed, self.device)

    @cached_property
    def prior(self):
        """The run's prior bound to its latent size, on the CPU (a conditional prior sees the run's data)."""
        from sculptcli.build import build_prior

        return build_prior(self.config.prior, self.latent_dim, "cpu", self.data)

    @property
    def scores(self) -> dict[str, Any] | None:
        """The run directory's scores.json (what `sculpt train` or `sculpt score --save` wrote), or None."""
        path = self.dir / "scores.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UserError(
                f"unreadable scores.json ({e})", where=str(path), fix="rescore: sculpt score --save"
            ) from None

    def encode(self, images: Tensor, batch_size: int = 1024) -> Tensor:
        """Posterior means (float32, CPU, [N, latent_dim]) of images [N, C, H, W] with pixels in [0, 1]."""
        images = torch.as_tensor(images)
        shape = tuple(self.model.in_shift.shape) if hasattr(self.model, "in_shift") else None
        if images.ndim != 4 or (shape is not None and images.shape[1] != shape[0]):
            raise UserError(
                f"encode takes images [N, C, H, W], got {list(images.shape)}",
                where=str(self.path),
                fix=f"give a batch of images shaped like the run's data ({self._image_shape()})",
            )
        return self.model.embed(images.to(self.device, torch.float32), batch_size).cpu()

    @torch.no_grad()
    def decode(self, z: Tensor, batch_size: int = 1024) -> Tensor:
        """Images (float32, CPU, [N, C, H, W], pixels in [0, 1]) decoded from codes z [N, latent_dim]."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise UserError(
                f"decode takes codes [N, {self.latent_dim}], got {list(z.shape)}",
                where=str(self.path),
                fix="give codes of the run's latent size (e.g. from run.encode)",
            )
        parts = [
            torch.sigmoid(self.model.decode(z[i : i + batch_size].to(self.device)).float()).cpu()
            for i in range(0, len(z), batch_size)
        ]
        return torch.cat(parts) if parts else torch.empty(0, *self._image_shape())

    def score(self, save: bool = False) -> dict[str, Any]:
        """The held-out scores `sculpt train` writes at the end: the config's score.metrics, score.n images,
        score.probes; with `save`, also written to the run directory's scores.json."""
        from sculptcli.scoring import checkpoint_input, checkpoint_source, run_metrics

        cfg = self.config
        options = {"probes": cfg.score.probes, "test_frac": cfg.score.test_frac}
        report = run_metrics(checkpoint_input(self, cfg.score.n, cfg.seed, options), cfg.score.metrics)
        report["settings"].update(checkpoint_source(self.checkpoint))
        if save:
            from sculptcli.io import atomic_write_text, json_text

            atomic_write_text(self.dir / "scores.json", json_text(report, indent=2))
        return report

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The first n held-out images of the run's data (all with None) and their factors (None without)."""
        return self.data.heldout(n)

    def training_codes(self, n: int, batch_size: int = CODES_BATCH) -> Tensor:
        """Posterior means of the first n images of the run's own training stream (checked finite)."""
        return check_codes(training_codes(self.model, self.data, n, batch_size), str(self.path))

    def _image_shape(self) -> tuple[int, int, int]:
        from sculptcli.checkpoint import data_shape

        return data_shape(self.config)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, step={self.step}, name={self.config.name!r})"


def open_run(
    path: str | Path | None = None,
    which: str = "last",
    device: str | torch.device = "cpu",
    trust_code: bool = False,
) -> Run:
    """Open a run directory (its `which` checkpoint: last or best), a .safetensors checkpoint, or (None) the
    latest run. Nothing is built until used; a damaged or foreign file is a UserError (exit 2 on the CLI)."""
    check_which(which)
    ckpt = load_checkpoint(find_checkpoint(None if path is None else Path(path).expanduser(), which))
    return Run(ckpt, resolve_device(device), trust_code)


# ---------------------------------------------------------------- a model's codes of its own training stream


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
    (the `empirical` prior's `checkpoint:` mode). Custom model code named in that checkpoint is not imported."""
    run = open_run(Path(target), device=device)
    if getattr(run.config.model, "code_targets", lambda: [])():
        raise UserError(
            "the checkpoint's model is custom code, which an empirical prior's `checkpoint:` does not import",
            where=str(run.path),
            fix="export its codes with `sculpt score RUN --trust-code --export-latents codes.safetensors` and give "
            "prior.source=codes.safetensors",
        )
    return run.training_codes(n)
