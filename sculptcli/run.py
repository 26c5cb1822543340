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
from sculptcli.codes import CODES_BATCH, check_codes, training_codes
from sculptcli.codes import checkpoint_codes as checkpoint_codes  # re-exported
from sculptcli.config import RunConfig
from sculptcli.data.heldout import heldout_size
from sculptcli.device import resolve_device
from sculptcli.errors import UserError
from sculptcli.metrics import ScoreInput

WHICH = ("last", "best")


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

    def score(self, save: bool = False, progress: bool = False) -> dict[str, Any]:
        """The held-out scores `sculpt train` writes at the end: the config's score.metrics, score.n images,
        score.probes; with `save`, also written to the run directory's scores.json; with `progress`, a progress
        line on stderr while it runs."""
        from sculptcli.scoring import ProgressLine, run_metrics

        cfg = self.config
        options = {"probes": cfg.score.probes, "test_frac": cfg.score.test_frac}
        inp = checkpoint_input(self, cfg.score.n, cfg.seed, options)
        report = run_metrics(inp, cfg.score.metrics, progress=ProgressLine() if progress else None)
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


# ---------------------------------------------------------------- scoring an opened run


def checkpoint_source(ckpt: Checkpoint) -> dict[str, Any]:
    """What a score of this checkpoint records about it: its path, step and how it was trained (device and
    effective precision, as `precision: auto` resolves by hardware)."""
    source: dict[str, Any] = {"checkpoint": str(ckpt.path), "step": ckpt.step}
    if "trained_with" in ckpt.meta:
        source["trained_with"] = json.loads(ckpt.meta["trained_with"])
    return source


def encode_heldout(run: Run, n: int | None) -> tuple[Any, Any, torch.Tensor]:
    """(images, factors, codes): an opened run's first n held-out images (and their factors) and their posterior
    means, all where the run's dataset keeps them (its device)."""
    cfg, data = run.config, run.data
    try:
        n = heldout_size(cfg.score, "n", int(data.heldout_index.numel()), n)
    except UserError as e:
        raise UserError(e.what, where=str(run.path), fix=e.fix) from None
    images, factors = data.heldout(n)
    return images, factors, run.model.embed(images)


def checkpoint_input(run: Run, n: int | None, seed: int, options: dict[str, Any]) -> ScoreInput:
    """Encode the first n held-out images of an opened run's dataset with its model (posterior means)."""
    cfg = run.config
    model, data = run.model, run.data
    images, factors, latents = encode_heldout(run, n)
    latents = check_finite_codes(latents.cpu(), str(run.path))
    prior = run.prior
    layout = subspace_layout(cfg)
    if layout:
        options = {**options, "subspaces": layout}
    return ScoreInput(
        latents=latents,
        factors=None if factors is None else factors.cpu(),
        images=images,
        model=model,
        prior=prior,
        seed=seed,
        options=options,
        data=data,
    )


def subspace_layout(cfg) -> dict[int, list[int]]:
    """The factor subspaces of a run (XFactors: its `infonce` term's factors and dims_per_factor): factor column →
    its latent dims. Empty when the run has none."""
    for term in cfg.objective.terms:
        if term.type == "infonce":
            return {col: list(range(i * term.dims_per_factor, (i + 1) * term.dims_per_factor))
                    for i, col in enumerate(term.factors)}  # fmt: skip
    return {}
