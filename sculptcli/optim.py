"""The optimizer and the learning-rate schedule a run's `train` section asks for (build station helpers)."""

from __future__ import annotations

import math

import torch

from sculptcli.config import TrainSpec


def make_optimizer(train: TrainSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam, or AdamW with weight decay on weight matrices only: parameters with fewer than 2 dims (biases, norm
    scales) and codebooks are never decayed (QLAE's groups)."""
    if train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=train.lr)
    decay, keep = [], []
    for name, p in model.named_parameters():
        (keep if p.ndim < 2 or "codebook" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=train.lr)


def lr_at(train: TrainSpec, step: int, total: int) -> float:
    """The learning rate of optimizer step `step` (0-based) of `total`: a pure function, so resume is exact."""
    scale = 1.0
    if train.warmup_steps and step < train.warmup_steps:
        scale = (step + 1) / train.warmup_steps
    elif train.schedule == "cosine":
        span = max(1, total - train.warmup_steps)
        t = min(1.0, (step - train.warmup_steps) / span)
        scale = train.min_lr_frac + (1 - train.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t))
    return train.lr * scale


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
