"""The run station's writing half: what a training run writes into its directory — config.yaml, metrics.jsonl,
last.safetensors and best.safetensors — and what it reads back to resume. Only the main process writes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from sculptcli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from sculptcli.io import append_jsonl, atomic_write_text, read_jsonl, write_jsonl

STALE = ("best.safetensors", "scores.json")  # what a dead run of the same directory may have left


class RunFiles:
    def __init__(self, run_dir: Path, writes: bool = True):
        self.dir = Path(run_dir)
        self.writes = writes  # False on the other processes of a distributed run
        self.metrics = self.dir / "metrics.jsonl"

    def start_fresh(self, cfg) -> None:
        """A fresh start: what a dead run of this directory left (no checkpoint) goes; the config is written."""
        if not self.writes:
            return
        for stale in STALE:
            (self.dir / stale).unlink(missing_ok=True)
        write_jsonl(self.metrics, [])
        atomic_write_text(self.dir / "config.yaml", cfg.to_yaml())

    def last(self) -> Checkpoint:
        return load_checkpoint(self.dir / "last.safetensors")

    def resume_records(self, step: int) -> list[dict[str, Any]]:
        """The metrics up to `step` (later ones, written after the last checkpoint, are dropped from the file);
        the held-out evaluations among them are returned."""
        if not self.writes:
            return []
        kept = [r for r in read_jsonl(self.metrics) if r["step"] <= step]
        write_jsonl(self.metrics, kept)
        return [r for r in kept if r.get("split") == "heldout"]

    def log(self, record: dict[str, Any]) -> None:
        if self.writes:
            append_jsonl(self.metrics, record)

    def save(self, name: str, cfg, model, step: int, optimizer, window, best: float, aux, trained_with) -> None:
        """Checkpoint `name` (last or best) atomically: model (and optimizer, aux network, RNG) at `step`."""
        if self.writes:
            extra = {"window": window, "best": torch.tensor(best)}
            save_checkpoint(self.dir / f"{name}.safetensors", cfg, model, step, optimizer, extra, aux, trained_with)


def resume_state(ckpt: Checkpoint, window: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The running log window and the best held-out objective a checkpoint carries."""
    window = ckpt.tensors.get("extra.window", window).to(window.device)
    return window, float(ckpt.tensors.get("extra.best", torch.tensor(math.inf)))
