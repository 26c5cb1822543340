"""The context module of arXiv 2507.04754: a block-structured network between the latent and the decoder whose
weights switch with the concepts intervened on in each batch (its released `conceptualizer.py`).

With n concepts the latent holds n blocks of `width` dims (one block per concept). For an intervention set I
(a boolean mask (B, n); all False is the observational context):

1. intervention block: block-diagonal n·w × n·w, the blocks of the columns in I from the interventional weights,
   the rest from the observational ones; then GELU. Its output is the exogenous noise ε.
2. expressive layers: per-concept MLPs as block-diagonal linear maps, widths linear from `width` to `out_width`
   over `depth` widths, each followed by BatchNorm1d and GELU.
3. causal layer: dense n·w_o × n·w_o, diagonal blocks fixed to the identity, off-diagonal blocks learned (the
   reduced form c = W ε of a linear SCM). Columns in I use the interventional weights, the rest the observational
   ones; every incoming off-diagonal block of a row in I is cut, so an intervened concept keeps only its own ε.
   `clamp_()` after each optimiser step keeps both weight sets in [0, 1] (as the release).
4. unpooling: Linear(n·w_o → latent_dim), the decoder's usual input.

Differences from the release, on purpose: the intervention block is block-diagonal in the observational context
too (the release uses its dense observational matrix there, unlike its own interventional case), and an
intervened row loses *all* incoming edges, also those from another intervened concept (the release keeps the
interventional edges between two intervened concepts; with two at once — the held-out compositions — that leaves
do(a) depending on b). `pooled` ignores the labels (the paper's "CM pooled").
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def block_mask(n: int, rows: int, cols: int) -> Tensor:
    """The block-diagonal 0/1 mask of n blocks of rows × cols."""
    return torch.kron(torch.eye(n), torch.ones(rows, cols))


class BlockLinear(nn.Module):
    """A block-diagonal linear map: n independent blocks of w_in → w_out (one per concept)."""

    def __init__(self, n: int, w_in: int, w_out: int):
        super().__init__()
        self.register_buffer("mask", block_mask(n, w_out, w_in))
        bound = 1 / math.sqrt(w_in)
        self.weight = nn.Parameter(torch.empty(n * w_out, n * w_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n * w_out).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask.to(x.dtype), self.bias)


def column_masks(ivn: Tensor, rows: int, cols: int) -> tuple[Tensor, Tensor]:
    """For one intervention set `ivn` (bool (n,)): the (n·rows × n·cols) masks of the entries taken from the
    interventional weights (columns in the set) and from the observational ones (the rest)."""
    col = ivn.view(1, -1).expand(len(ivn), -1)
    wide = torch.ones(rows, cols, device=ivn.device)
    use_ivn = torch.kron(col.float(), wide)
    return use_ivn, 1.0 - use_ivn


class InterventionBlock(nn.Module):
    """Stage 1: block-diagonal, the blocks of intervened columns from `ivn_weight`, the others from `obs_weight`."""

    def __init__(self, n: int, w: int):
        super().__init__()
        self.n, self.w = n, w
        self.register_buffer("mask", block_mask(n, w, w))
        bound = 1 / math.sqrt(w)
        self.obs_weight = nn.Parameter(torch.empty(n * w, n * w).uniform_(-bound, bound))
        self.ivn_weight = nn.Parameter(torch.empty(n * w, n * w).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n * w).uniform_(-bound, bound))

    def weight(self, ivn: Tensor) -> Tensor:
        use_ivn, use_obs = column_masks(ivn, self.w, self.w)
        return (use_obs * self.obs_weight + use_ivn * self.ivn_weight) * self.mask


class CausalLayer(nn.Module):
    """Stage 3: c = W ε with identity diagonal blocks; intervened columns from `ivn_weight`; rows in the
    intervention set keep only their own block (their parents are cut)."""

    def __init__(self, n: int, w: int):
        super().__init__()
        self.n, self.w = n, w
        self.register_buffer("diag", block_mask(n, w, w))
        bound = 1 / math.sqrt((n - 1) * w) if n > 1 else 1.0
        self.obs_weight = nn.Parameter(torch.empty(n * w, n * w).uniform_(-bound, bound))
        self.ivn_weight = nn.Parameter(torch.empty(n * w, n * w).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n * w).uniform_(-bound, bound))
        self.clamp_()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Both weight sets into [0, 1] (after every optimiser step, as the release)."""
        self.obs_weight.clamp_(0, 1)
        self.ivn_weight.clamp_(0, 1)

    def weight(self, ivn: Tensor) -> Tensor:
        eye = torch.eye(self.n * self.w, device=ivn.device)
        off = 1.0 - self.diag
        use_ivn, use_obs = column_masks(ivn, self.w, self.w)
        w = eye + off * (use_obs * self.obs_weight + use_ivn * self.ivn_weight)
        cut = torch.kron(ivn.float(), torch.ones(self.w, device=ivn.device)).view(-1, 1) * off  # intervened rows
        return w * (1.0 - cut)


class ContextModule(nn.Module):
    """z (B, n·w) and an intervention mask (B, n) → the decoder's input (B, latent_dim)."""

    def __init__(self, n: int, width: int, out_width: int, depth: int, latent_dim: int, pooled: bool = False):
        super().__init__()
        self.n, self.width, self.pooled = n, width, pooled
        self.ivn_block = InterventionBlock(n, width)
        widths = np.linspace(width, out_width, depth).astype(int).tolist()
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [BlockLinear(n, a, b), nn.BatchNorm1d(n * b), nn.GELU()]
        self.expressive = nn.Sequential(*layers)
        self.causal = CausalLayer(n, widths[-1])
        self.unpool = nn.Linear(n * widths[-1], latent_dim)

    def forward(self, z: Tensor, ivn: Tensor | None = None) -> Tensor:
        """Rows with the same intervention set share one weight matrix (a batch from one context: one matmul)."""
        if ivn is None or self.pooled:
            ivn = torch.zeros(len(z), self.n, dtype=torch.bool, device=z.device)
        ivn = ivn.to(device=z.device, dtype=torch.bool)
        sets, which = torch.unique(ivn, dim=0, return_inverse=True)
        eps = z.new_empty(len(z), self.n * self.width)
        for k, s in enumerate(sets):
            rows = which == k
            eps[rows] = F.linear(z[rows], self.ivn_block.weight(s).to(z.dtype), self.ivn_block.bias.to(z.dtype))
        h = self.expressive(F.gelu(eps))
        c = h.new_empty(len(h), self.causal.n * self.causal.w)
        for k, s in enumerate(sets):
            rows = which == k
            c[rows] = F.linear(h[rows], self.causal.weight(s).to(h.dtype), self.causal.bias.to(h.dtype))
        return self.unpool(c)

    def after_step(self) -> None:
        self.causal.clamp_()


def context_mask(labels: Tensor, n: int) -> Tensor:
    """Context labels (B,) long — 0 observational, k the k-th concept (1-based) — as intervention masks (B, n)."""
    return F.one_hot(labels.long(), n + 1)[:, 1:].bool()


def intervention_mask(names: list[str] | tuple[str, ...], context: str, n_rows: int, device=None) -> Tensor:
    """The mask (n_rows, n) of a context name: 'obs', a concept, or concepts joined by '+' (a composition)."""
    mask = torch.zeros(n_rows, len(names), dtype=torch.bool, device=device)
    if context != "obs":
        for part in context.split("+"):
            if part not in names:
                raise ValueError(f"unknown concept {part!r} (the model's: {', '.join(names)})")
            mask[:, list(names).index(part)] = True
    return mask
