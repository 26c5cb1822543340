"""The metrics sculpt reports by default: LPS (three probes), NMSE, MMD² to the prior, covariance ratio."""

from __future__ import annotations

import time

from sculptcli.metrics import METRICS, ScoreInput
from sculptcli.metrics.distribution import cov_ratio, mmd2_to_prior
from sculptcli.metrics.lps import lps
from sculptcli.metrics.recon import SSIM_SIGMA, nmse, ssim

# Probes whose cost explodes with the code's width run from a metric set only up to a size; named on its own
# (`-m all,lps`) LPS runs every probe asked for. LightGBM: d targets × d features (≈ d² · bins · leaves per tree,
# whatever n: 80 s at d = 192, n = 1,000 on 2 shared cores). MLP: d models of d inputs over n rows (n · d²).
LPS_LGBM_MAX_D = 128
LPS_MLP_MAX_ND2 = 10_000 * 128**2


def lps_too_wide(probe: str, n: int, d: int) -> str | None:
    """Why a probe costs too much on n codes of d dimensions to run unasked, or None when it runs (the score's and
    the live evaluation's rule)."""
    if probe == "lgbm" and d > LPS_LGBM_MAX_D:
        return f"d = {d} > {LPS_LGBM_MAX_D} (LightGBM probe: cost ∝ d²)"
    if probe == "mlp" and n * d * d > LPS_MLP_MAX_ND2:
        return f"n·d² = {n * d * d:,} > {LPS_MLP_MAX_ND2:,} (MLP probe: cost ∝ n·d²)"
    return None


def lps_skip_reason(probe: str, n: int, d: int) -> str | None:
    """Why a probe is left out of a score that did not name LPS on its own, or None when it runs."""
    why = lps_too_wide(probe, n, d)
    return None if why is None else f"{why}; run it by name: -m all,lps"


@METRICS.register("lps")
def _lps(inp: ScoreInput):
    """LPS of the scored columns; per-dimension values are laid out over the original dimensions, null for a
    dimension left out (collapsed). Reached through a set on a wide code, the probes `lps_skip_reason` names
    are null and listed under `skipped` (`lps.lgbm`, `lps.mlp`)."""
    probes = inp.options.get("probes", ["lgbm", "mlp", "linear"])
    test_frac = inp.options.get("test_frac", 0.2)
    out: dict = {"per_dim": {}}
    settings = {}
    skipped: dict[str, str] = {}
    dims = inp.dims if inp.dims is not None else list(range(inp.latents.shape[1]))
    full = inp.d_full or inp.latents.shape[1]
    for probe in probes:
        reason = None if inp.asked else lps_skip_reason(probe, *inp.latents.shape)
        if reason is not None:
            out[probe] = None
            skipped[f"lps.{probe}"] = reason
            continue
        t0 = time.perf_counter()
        inp.report(f"probe {probe}", 0, 0)
        kw = {"progress": lambda done, total: inp.report("lgbm targets", done, total)} if probe == "lgbm" else {}
        r = lps(inp.latents, probe, seed=inp.seed, test_frac=test_frac, **kw)
        r.settings["seconds"] = round(time.perf_counter() - t0, 3)
        out[probe] = r.mean
        per: list[float | None] = [None] * full
        for j, v in zip(dims, r.per_dim, strict=True):
            per[j] = v
        out["per_dim"][probe] = per
        settings[probe] = r.settings
    return {"lps": out, "_settings": {"lps": settings}, "_skipped": skipped}


@METRICS.register("nmse", keys=("nmse", "nmse_db"), whole_code=True)
def _nmse(inp: ScoreInput):
    if inp.model is None or inp.images is None:
        return {"nmse": None, "nmse_db": None}
    lin, db = nmse(inp.model, inp.images)
    return {"nmse": lin, "nmse_db": db}


@METRICS.register("ssim", whole_code=True)
def _ssim(inp: ScoreInput):
    if inp.model is None or inp.images is None:
        return {"ssim": None}
    return {
        "ssim": ssim(inp.model, inp.images),
        "_settings": {"ssim": {"window": f"gaussian sigma {SSIM_SIGMA}, 11 taps, valid region", "data_range": 1.0}},
    }


@METRICS.register("mmd2_prior", whole_code=True)
def _mmd2_prior(inp: ScoreInput):
    if inp.prior is None:
        return {"mmd2_prior": None}
    n = inp.options.get("mmd_n", 5000)
    return {
        "mmd2_prior": mmd2_to_prior(inp.latents, inp.prior, n=n, seed=inp.seed),
        "_settings": {
            "mmd2_prior": {"n": min(n, len(inp.latents)), "kernel": "rbf×{0.5,1,2}·median", "estimator": "biased"}
        },
    }


@METRICS.register("cov_ratio")
def _cov_ratio(inp: ScoreInput):
    return {"cov_ratio": cov_ratio(inp.latents)}


from sculptcli.metrics import prior_fit  # noqa: E402,F401  (registers prior_test and ks)
