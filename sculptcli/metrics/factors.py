"""The factor metrics registered for `sculpt score`: MIG, SAP, DCI, FactorVAE, β-VAE, modularity, InfoMEC, LDS, TC.

Each needs the codes' ground-truth factors (generated datasets, galaxy, tensor files with `factors`, `--latents`
files with `factors`); without them its keys are null. FactorVAE and β-VAE scores intervene on factors: by default
they draw batches sharing a factor value from the scored codes themselves; `intervene: render` renders and encodes
fresh images from a generated dataset's whole factor grid (the protocol). The choice is recorded as `pool`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sculptcli.metrics import METRICS, ScoreInput
from sculptcli.metrics.information import infomec, lds
from sculptcli.metrics.intervention import FactorPool, betavae_score, factorvae_score
from sculptcli.metrics.supervised import dci, mig, modularity_explicitness, sap, tc_gaussian, tc_mmd

BINS_DEFAULT = 20


def _opt(inp: ScoreInput, key: str, default: Any) -> Any:
    return inp.options.get(key, default)


def _usable(inp: ScoreInput) -> bool:
    return inp.factors is not None and inp.factors.shape[1] >= 1 and len(inp.latents) >= 20


ONE_FACTOR = "only one factor varies in these data: {what}"


def _one_factor(inp: ScoreInput) -> bool:
    """True when fewer than two factor columns vary: metrics that compare factors do not apply."""
    f = inp.factors
    return f is not None and int((f.amax(0) > f.amin(0)).sum()) < 2


def _not_applicable(out: dict[str, Any], reasons: dict[str, str]) -> dict[str, Any]:
    """`out` with the keys of `reasons` (dotted for nested ones) set to None and the reasons attached."""
    for key in reasons:
        head, _, leaf = key.partition(".")
        if leaf and isinstance(out.get(head), dict):
            out[head][leaf] = None
        else:
            out[head] = None
    return {**out, "_reasons": {**out.get("_reasons", {}), **reasons}}


@METRICS.register("mig")
def _mig(inp: ScoreInput):
    if not _usable(inp):
        return {"mig": None}
    v, s = mig(inp.latents, inp.factors, bins=_opt(inp, "bins", BINS_DEFAULT))
    return {"mig": v, "_settings": {"mig": s}}


@METRICS.register("sap")
def _sap(inp: ScoreInput):
    if not _usable(inp):
        return {"sap": None}
    v, s = sap(inp.latents, inp.factors, seed=inp.seed, bins=_opt(inp, "bins", BINS_DEFAULT))
    return {"sap": v, "_settings": {"sap": s}}


@METRICS.register("dci")
def _dci(inp: ScoreInput):
    if not _usable(inp):
        return {"dci": None}
    v, s = dci(
        inp.latents,
        inp.factors,
        model=_opt(inp, "dci_model", "lgbm"),
        seed=inp.seed,
        progress=lambda done, total: inp.report("factors", done, total),
    )
    out = {
        "d": v["disentanglement"],
        "c": v["completeness"],
        "i": v["informativeness_test"],
        "i_train": v["informativeness_train"],
    }
    res = {"dci": out, "_settings": {"dci": s}}
    if _one_factor(inp):
        res = _not_applicable(res, {"dci.d": ONE_FACTOR.format(what="DCI disentanglement spreads a latent's "
                                                                    "importance over factors (log base K, K = 1)")})
    return res


@METRICS.register("modularity", keys=("modularity", "explicitness"))
def _modularity(inp: ScoreInput):
    if not _usable(inp):
        return {"modularity": None, "explicitness": None}
    v, s = modularity_explicitness(inp.latents, inp.factors, bins=_opt(inp, "bins", BINS_DEFAULT), seed=inp.seed)
    res = {"modularity": v["modularity"], "explicitness": v["explicitness_test"], "_settings": {"modularity": s}}
    if _one_factor(inp):
        res = _not_applicable(res, {"modularity": ONE_FACTOR.format(what="modularity compares a latent's "
                                                                         "information across factors")})
    return res


@METRICS.register("infomec")
def _infomec(inp: ScoreInput):
    if not _usable(inp):
        return {"infomec": None}
    v, s = infomec(
        inp.latents, inp.factors, seed=inp.seed, progress=lambda done, total: inp.report("factors", done, total)
    )
    res = {"infomec": v, "_settings": {"infomec": s}}
    if _one_factor(inp) and isinstance(v, dict):
        res = _not_applicable(res, {"infomec.m": ONE_FACTOR.format(what="InfoM rescales from chance over factors "
                                                                        "(1/K with K = 1)")})
    return res


@METRICS.register("lds")
def _lds(inp: ScoreInput):
    if not _usable(inp):
        return {"lds": None}
    v, s = lds(inp.latents, inp.factors)
    return {"lds": v, "_settings": {"lds": s}}


@METRICS.register("tc_gauss")
def _tc_gauss(inp: ScoreInput):
    v, s = tc_gaussian(inp.latents)
    return {"tc_gauss": v, "_settings": {"tc_gauss": s}}


@METRICS.register("tc_mmd")
def _tc_mmd(inp: ScoreInput):
    v, s = tc_mmd(inp.latents, seed=inp.seed, n=_opt(inp, "mmd_n", 2000))
    return {"tc_mmd": v, "_settings": {"tc_mmd": s}}


# ---------------------------------------------------------------- intervention metrics


def factor_pool(inp: ScoreInput) -> FactorPool | None:
    """The scored codes (default, `intervene: codes`), or with `intervene: render` fresh renders of the dataset's
    whole factor grid encoded by the model — disentanglement_lib's protocol, ~2.9 M images at the default vote
    counts (minutes on a GPU, far longer on a CPU)."""
    gt = getattr(inp.data, "ground_truth", None)
    render_wanted = inp.options.get("intervene", "codes") == "render"
    table = gt() if render_wanted and callable(gt) and inp.model is not None else None
    if table is not None:
        factor_idx, render = table
        model = inp.model
        device = next(model.parameters()).device

        @torch.no_grad()
        def codes_of(rows: np.ndarray) -> np.ndarray:
            images = render(torch.as_tensor(rows, dtype=torch.long, device=device))
            return model.embed(images).cpu().numpy().astype(np.float64)

        pool = FactorPool(factor_idx, codes_of, rows_per_call=4096)
        pool.extra_settings = {"pool": "rendered from the dataset's full factor grid, encoded by the model"}
        return pool
    if render_wanted:
        from sculptcli.errors import UserError

        raise UserError(
            "--intervene render needs a checkpoint of a generated dataset (dsprites, xy, xyc, xycs)",
            fix="use --intervene codes (batches drawn from the scored codes)",
        )
    if not _usable(inp):
        return None
    pool = FactorPool.from_codes(inp.latents, inp.factors, bins=_opt(inp, "bins", BINS_DEFAULT))
    pool.extra_settings["pool"] = "the scored codes: batches sharing a factor value drawn from them (with replacement)"
    return pool


def _pool(inp: ScoreInput) -> FactorPool | None:
    if "pool" not in inp.cache:
        inp.cache["pool"] = factor_pool(inp)
    return inp.cache["pool"]


@METRICS.register("factorvae", keys=("factorvae", "factorvae_subspace"))
def _factorvae(inp: ScoreInput):
    """The FactorVAE score and, for a run with factor subspaces (XFactors' `infonce` layout, `subspaces` option),
    XFactors' subspace-aware variant: the share of eval votes whose argmin dimension lies in the right subspace
    (the targeted factor's own T_k; the residual dims for an untargeted factor)."""
    pool = _pool(inp)
    if pool is None:
        return {"factorvae": None, "factorvae_subspace": None}
    if _one_factor(inp):
        why = ONE_FACTOR.format(what="the FactorVAE score's majority vote has one class, so it is 1 for any code")
        return {"factorvae": None, "factorvae_subspace": None, "_reasons": {"factorvae": why}}
    v, s = factorvae_score(pool, seed=inp.seed, **_sizes(inp))
    out = {"factorvae": v, "factorvae_subspace": None, "_settings": {"factorvae": s}}
    layout = inp.options.get("subspaces")
    if layout:  # no eval votes: no active dimension, scored 0 like the standard score
        votes = s.get("eval_votes")
        out["factorvae_subspace"] = 0.0 if votes is None else subspace_vote_share(np.asarray(votes), layout, inp.dims)
    return out


def subspace_vote_share(votes: np.ndarray, layout: dict, dims: list[int] | None = None) -> float:
    """Share of FactorVAE votes (factors × scored columns) cast into the right subspace. `layout` maps a factor
    column to its latent dims (original indices); `dims` gives each scored column's original index."""
    cols = dims if dims is not None else list(range(votes.shape[1]))
    owned = {d for ds in layout.values() for d in ds}
    right = 0.0
    for k in range(votes.shape[0]):
        mine = set(layout.get(k, layout.get(str(k), [])))
        for j, d in enumerate(cols):
            if (d in mine) if mine else (d not in owned):
                right += votes[k, j]
    total = votes.sum()
    return float(right / total) if total else 0.0


@METRICS.register("aux_corr", whole_code=True)
def _aux_corr(inp: ScoreInput):
    """Aux-VAE's per-factor check: |Pearson| between each auxiliary latent (the first dims of a conditional prior)
    and the factor it should follow, on the scored codes; `mean` over factors."""
    prior = inp.prior
    if prior is None or not getattr(prior.spec, "needs_factors", False) or inp.factors is None:
        return {"aux_corr": None}
    z = inp.latents.double().numpy()
    f = inp.factors.double().numpy()
    out = {}
    for j, (name, col) in enumerate(zip(prior.spec.factors, prior.columns, strict=True)):
        a, b = z[:, j], f[:, col]
        r = np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else 0.0
        out[str(name)] = float(abs(r))
    return {"aux_corr": {**out, "mean": float(np.mean(list(out.values())))}}


@METRICS.register("betavae")
def _betavae(inp: ScoreInput):
    pool = _pool(inp)
    if pool is None:
        return {"betavae": None}
    if _one_factor(inp):
        why = ONE_FACTOR.format(what="the β-VAE score's classifier has one class, so it is 1 for any code")
        return {"betavae": None, "_reasons": {"betavae": why}}
    v, s = betavae_score(pool, seed=inp.seed, **_sizes(inp))
    return {"betavae": v, "_settings": {"betavae": s}}


def _sizes(inp: ScoreInput) -> dict[str, int]:
    """The protocol's vote counts (10,000 train / 5,000 eval), or `votes` split 2:1 when given."""
    votes = inp.options.get("votes")
    if votes is None:
        return {}
    return {"n_train": max(2, votes * 2 // 3), "n_eval": max(1, votes - votes * 2 // 3)}
