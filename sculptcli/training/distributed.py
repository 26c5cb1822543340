"""Multi-process training under torchrun: process-group setup, the autograd all-gather and flag/sum reductions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from sculptcli.errors import UserError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank and world size (1 = ordinary single-process training)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """One GPU per process (cuda:LOCAL_RANK) under torchrun; the requested device otherwise."""
        if self.enabled and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    # ---- collectives (no-ops in a single process)
    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when any process passes True (a Ctrl-C seen by one stops all in step)."""
        if not self.enabled:
            return flag
        t = torch.tensor(float(flag), device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def mean_(self, t: Tensor) -> Tensor:
        """In-place mean of `t` over the processes."""
        if self.enabled:
            dist.all_reduce(t)
            t /= self.world
        return t

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, x: Tensor) -> Tensor:
        """The rows of every process concatenated in rank order, differentiable (see _AllGather)."""
        return _AllGather.apply(x) if self.enabled else x

    def close(self) -> None:
        """Leave the job together: a barrier first, so no process tears down gloo while another still uses it."""
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def from_env(device: torch.device) -> Dist:
    """Join the torchrun job described by the environment (WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        if torch.cuda.device_count() <= local:
            raise UserError(
                f"process {rank} needs GPU {local} but only {torch.cuda.device_count()} are visible",
                fix="use --nproc at most the number of GPUs",
            )
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local)


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums the gradient over processes and returns this process's rows.

    Every process computes the same loss of the global batch, so the gradient for our rows is the sum of all
    processes' gradients for them; DDP then averages parameter gradients, which makes the whole update equal to
    single-process training on the global batch. (all_reduce + slice, because gloo has no reduce_scatter.)
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]
