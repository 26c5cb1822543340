"""The metrics sculpt reports by default: LPS (three probes), NMSE, MMD² to the prior, covariance ratio."""

from __future__ import annotations

from sculptcli.metrics import METRICS, ScoreInput
from sculptcli.metrics.distribution import cov_ratio, mmd2_to_prior
from sculptcli.metrics.lps import lps
from sculptcli.metrics.recon import SSIM_SIGMA, nmse, ssim


@METRICS.register("lps")
def _lps(inp: ScoreInput):
    """LPS of the scored columns; per-dimension values are laid out over the original dimensions, null for a
    dimension left out (collapsed)."""
    probes = inp.options.get("probes", ["lgbm", "mlp", "linear"])
    test_frac = inp.options.get("test_frac", 0.2)
    out: dict = {"per_dim": {}}
    settings = {}
    dims = inp.dims if inp.dims is not None else list(range(inp.latents.shape[1]))
    full = inp.d_full or inp.latents.shape[1]
    for probe in probes:
        r = lps(inp.latents, probe, seed=inp.seed, test_frac=test_frac)
        out[probe] = r.mean
        per: list[float | None] = [None] * full
        for j, v in zip(dims, r.per_dim, strict=True):
            per[j] = v
        out["per_dim"][probe] = per
        settings[probe] = r.settings
    return {"lps": out, "_settings": {"lps": settings}}


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
