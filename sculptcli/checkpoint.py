"""Checkpoints: one safetensors file holding model (+ optimizer, RNG) tensors and the resolved config,
sculpt version, step and seed as metadata. Loading never unpickles anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from sculptcli.ckptfile import FORMAT, FORMAT_VERSION, find_checkpoint
from sculptcli.config import RunConfig, validate_config
from sculptcli.errors import UserError
from sculptcli.io import atomic_write
from sculptcli.provenance import versions


def save_checkpoint(
    path: Path,
    cfg: RunConfig,
    model: torch.nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    aux: tuple[torch.nn.Module, torch.optim.Optimizer] | None = None,
    trained_with: dict | None = None,
) -> None:
    """Atomically write model weights (and optimizer state, RNG state, `extra` tensors and an auxiliary
    network with its optimizer — FactorVAE's discriminator — if given). `trained_with` (device, effective
    precision, processes) goes into the metadata: `precision: auto` resolves by hardware."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(cfg.model_dump(mode="json", exclude={"budgets"})),
        "step": str(step),
        "seed": str(cfg.seed),
        "prior": json.dumps(cfg.prior.model_dump(mode="json")),
        "versions": json.dumps(versions()),
    }
    if trained_with is not None:
        meta["trained_with"] = json.dumps(trained_with)
    if optimizer is not None:
        _put_optimizer(tensors, meta, "optim", optimizer)
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().contiguous().cpu()
    if aux is not None:
        tensors.update({f"aux.{k}": v.detach().contiguous().cpu() for k, v in aux[0].state_dict().items()})
        if optimizer is not None:
            _put_optimizer(tensors, meta, "auxoptim", aux[1])
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def _put_optimizer(tensors: dict, meta: dict, prefix: str, optimizer: torch.optim.Optimizer) -> None:
    sd = optimizer.state_dict()
    for i, state in sd["state"].items():
        for k, v in state.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{prefix}.{i}.{k}"] = t.detach().contiguous().cpu()
    meta[f"{prefix}_param_groups"] = json.dumps(sd["param_groups"])


@dataclass
class Checkpoint:
    path: Path
    config: RunConfig
    step: int
    meta: dict[str, str]
    tensors: dict[str, torch.Tensor]

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) + 1 :]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    def model_weights(self, model) -> dict[str, torch.Tensor]:
        """The model's state dict from this file; one written before input standardisation existed gets the
        identity standardisation (what its model saw)."""
        weights = self.group("model")
        for key in ("in_shift", "in_scale"):
            if hasattr(model, key):
                weights.setdefault(key, getattr(model, key).detach().clone())
        return weights

    def build_model(self, device: torch.device | str = "cpu", trust_code: bool = False):
        """The model of this checkpoint, weights loaded, in eval mode. A model that is custom code named in the
        checkpoint (`model.type: custom`) is imported only with `trust_code` (`--trust-code`)."""
        from sculptcli.data import DATASETS  # noqa: F401  (shape comes from the data spec)

        targets = getattr(self.config.model, "code_targets", lambda: [])()
        if targets and not trust_code:
            raise UserError(
                f"the checkpoint's model is custom code ({', '.join(targets)}); sculpt imports code named in a "
                "checkpoint only when you say you trust it",
                where=str(self.path),
                fix="if you trust where this run came from, add --trust-code (Python: open_run(..., trust_code=True))",
            )
        shape = data_shape(self.config)
        model = self.config.model.build(shape)
        weights = self.model_weights(model)
        expected = model.state_dict()
        for key, t in weights.items():
            want = expected.get(key)
            if want is not None and t.dtype != want.dtype:
                raise UserError(
                    f"tensor model.{key} is {t.dtype}, the model's is {want.dtype}",
                    where=str(self.path),
                    fix="the file is damaged or was edited; use a checkpoint written by `sculpt train`",
                )
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise UserError(
                    f"tensor model.{key} holds non-finite values (NaN or infinity)",
                    where=str(self.path),
                    fix="the training diverged or the file is damaged; use an earlier checkpoint",
                )
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as e:
            raise UserError(
                "the checkpoint's weights do not match its own config",
                where=str(self.path),
                fix=f"the file is damaged or was edited ({str(e).splitlines()[0]})",
            ) from None
        return model.to(device).eval()

    def restore_optimizer(self, optimizer: torch.optim.Optimizer, prefix: str = "optim") -> None:
        groups = json.loads(self.meta[f"{prefix}_param_groups"])
        state: dict[int, dict] = {}
        for k, v in self.group(prefix).items():
            i, name = k.split(".", 1)
            state.setdefault(int(i), {})[name] = v
        optimizer.load_state_dict({"state": state, "param_groups": groups})

    def restore_rng(self) -> None:
        if "rng.cpu" in self.tensors:
            torch.set_rng_state(self.tensors["rng.cpu"])
        if "rng.cuda" in self.tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(self.tensors["rng.cuda"])


def data_shape(cfg: RunConfig) -> tuple[int, int, int]:
    shape = getattr(cfg.data, "image_shape", None)
    if callable(shape):
        return shape()
    raise UserError(f"dataset '{cfg.data.type}' does not declare its image shape")


def load_checkpoint(path: Path, device: str = "cpu") -> Checkpoint:
    """Read and check a sculpt checkpoint; any problem is a UserError (exit 2), never a traceback."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}", fix="give a .safetensors file or a run directory")
    fix = "give a checkpoint written by `sculpt train` (last.safetensors or best.safetensors)"
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise UserError(
                    "not a sculpt checkpoint (a safetensors file without sculpt's metadata)",
                    where=str(path),
                    fix="to score codes from another model, save them as tensor 'latents' and use "
                    "`sculpt score --latents FILE`",
                )
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except UserError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(
            f"not a readable safetensors file ({str(e).splitlines()[0][:120]}): corrupt, truncated, "
            "or another format (sculpt never loads pickles)",
            where=str(path),
            fix=fix,
        ) from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"checkpoint format version {meta.get('format_version')} is not supported "
            f"(this sculpt reads version {FORMAT_VERSION})",
            where=str(path),
            fix="upgrade sculpt",
        )
    try:
        raw_cfg = json.loads(meta["config"])
        step = int(meta["step"])
    except (KeyError, ValueError):
        raise UserError("the checkpoint's metadata is damaged", where=str(path), fix=fix) from None
    cfg = validate_config(raw_cfg, f"{path} (embedded config)")
    return Checkpoint(path, cfg, step, meta, tensors)


__all__ = ["Checkpoint", "find_checkpoint", "load_checkpoint", "save_checkpoint"]
