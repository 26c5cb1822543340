"""How well the aggregate posterior fits the prior, as tests: an MMD permutation two-sample test on the joint
distribution (`prior_test`) and per-dimension two-sample Kolmogorov–Smirnov statistics on the marginals (`ks`).

Both are null without a prior (codes scored from a --latents file). Options (ScoreInput.options):
`prior_test_n` (codes used, default 2000), `prior_test_permutations` (default 200), `ks_prior_n` (prior
draws for KS, default 20000)."""

from __future__ import annotations

import torch

from sculptcli.metrics import METRICS, ScoreInput
from sculptcli.metrics.distribution import subsample
from sculptcli.stats.mmd import mmd_permutation_test

PRIOR_TEST_N = 2000
PRIOR_TEST_PERMUTATIONS = 200
KS_PRIOR_N = 20_000


def _prior_sample(prior, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return prior.sample(n, g).float().cpu()


def prior_test(
    latents: torch.Tensor, prior, n: int = PRIOR_TEST_N, permutations: int = PRIOR_TEST_PERMUTATIONS, seed: int = 0
) -> dict:
    """Permutation test of up to n codes against as many prior draws: biased MMD² (the paper's kernel, the
    bandwidth fixed from the pooled sample) and its p-value (1 + #{permuted ≥ observed}) / (1 + permutations)."""
    z = subsample(latents.float().cpu(), n, seed)
    p = _prior_sample(prior, len(z), seed + 2)
    stat, pval = mmd_permutation_test(z, p, permutations=permutations, seed=seed)
    return {"statistic": stat, "p_value": pval, "permutations": permutations, "n": len(z)}


def ks_per_dim(latents: torch.Tensor, prior, n_prior: int = KS_PRIOR_N, seed: int = 0) -> dict:
    """Two-sample KS statistic of every dimension's codes against that dimension of n_prior prior draws."""
    from scipy.stats import ks_2samp

    z = latents.double().cpu().numpy()
    p = _prior_sample(prior, n_prior, seed + 3).double().numpy()
    per_dim = [float(ks_2samp(z[:, i], p[:, i], method="asymp").statistic) for i in range(z.shape[1])]
    return {"per_dim": per_dim, "max": max(per_dim)}


@METRICS.register("prior_test", whole_code=True)
def _prior_test(inp: ScoreInput):
    if inp.prior is None:
        return {"prior_test": None}
    n = inp.options.get("prior_test_n", PRIOR_TEST_N)
    perms = inp.options.get("prior_test_permutations", PRIOR_TEST_PERMUTATIONS)
    r = prior_test(inp.latents, inp.prior, n=n, permutations=perms, seed=inp.seed)
    return {
        "prior_test": r,
        "_settings": {
            "prior_test": {
                "n": r["n"],
                "permutations": perms,
                "kernel": "rbf×{0.5,1,2}·median (pooled, fixed over permutations)",
                "estimator": "biased",
                "prior_seed": inp.seed + 2,
            }
        },
    }


@METRICS.register("ks", whole_code=True)
def _ks(inp: ScoreInput):
    if inp.prior is None:
        return {"ks": None}
    n_prior = inp.options.get("ks_prior_n", KS_PRIOR_N)
    return {
        "ks": ks_per_dim(inp.latents, inp.prior, n_prior=n_prior, seed=inp.seed),
        "_settings": {"ks": {"n": int(inp.latents.shape[0]), "prior_n": n_prior, "prior_seed": inp.seed + 3}},
    }
