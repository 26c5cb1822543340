"""Degenerate codes are reported, never scored as perfect: collapsed dims, null metrics, warnings, banners."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from sculptcli.metrics import ScoreInput
from sculptcli.metrics.collapse import collapsed_dims
from sculptcli.metrics.lps import lps
from sculptcli.priors import PRIORS
from sculptcli.scoring import run_metrics
from sculptcli.training.health import input_scale_warning, run_warnings

N = 1500


def gaussian(std=1.0, dims=None):
    return PRIORS.get("gaussian")(std=std).build(dims or 4)


def codes(kind: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    live = torch.randn(N, 4, generator=g)
    live[:, 1] = live[:, 0] ** 2 + 0.05 * torch.randn(N, generator=g)  # dim 1 a function of dim 0
    if kind == "constant":
        return torch.full((N, 4), 0.37)
    if kind == "near":
        return 0.2 + 1e-5 * torch.randn(N, 4, generator=g)
    if kind == "half":
        live[:, 2:] = torch.tensor([1.5, -0.5]) + 1e-6 * torch.randn(N, 2, generator=g)
        return live
    return live


def test_collapse_rule_is_relative_to_the_prior_and_catches_exact_constants():
    assert collapsed_dims(codes("constant"), gaussian()) == [0, 1, 2, 3]
    assert collapsed_dims(codes("near"), gaussian()) == [0, 1, 2, 3]
    assert collapsed_dims(codes("half"), gaussian()) == [2, 3]
    assert collapsed_dims(codes("live"), gaussian()) == []
    z = 5e-3 * torch.randn(N, 4, generator=torch.Generator().manual_seed(1))
    assert collapsed_dims(z, gaussian(std=1.0)) == []  # std 5e-3 ≥ 1e-3 · 1
    assert collapsed_dims(z, gaussian(std=10.0)) == [0, 1, 2, 3]  # std 5e-3 < 1e-3 · 10
    assert collapsed_dims(z) == []  # no prior: reference std 1


@pytest.mark.parametrize("kind", ["constant", "near"])
def test_an_all_collapsed_code_scores_null_with_a_warning(kind):
    f = torch.randint(0, 4, (N, 3)).float()
    r = run_metrics(ScoreInput(latents=codes(kind), factors=f, prior=gaussian(), seed=0), ["fast"])
    assert r["collapsed_dims"] == [0, 1, 2, 3]
    for key in ("lps", "mig", "sap", "lds", "tc_gauss", "tc_mmd", "cov_ratio"):
        assert r[key] is None, key
        assert "collapsed" in r["settings"]["errors"][key]
    assert r["warnings"] and "collapsed code" in r["warnings"][0]
    # the distance to the prior still says the truth: far from N(0, I)
    assert r["mmd2_prior"] > 0.5 and r["ks"]["max"] > 0.4


def test_a_half_collapsed_code_is_scored_on_its_live_dims_and_says_so():
    z = codes("half")
    r = run_metrics(ScoreInput(latents=z, prior=gaussian(), seed=0, options={"probes": ["lgbm", "linear"]}), ["basic"])
    assert r["collapsed_dims"] == [2, 3]
    assert "dims 2, 3 collapsed" in r["warnings"][0]
    direct = lps(z[:, :2], "lgbm", seed=0)  # the live dims alone
    assert r["lps"]["lgbm"] == pytest.approx(direct.mean)
    assert r["lps"]["per_dim"]["lgbm"][:2] == pytest.approx(direct.per_dim)
    assert r["lps"]["per_dim"]["lgbm"][2:] == [None, None]
    assert r["lps"]["lgbm"] > 0.4  # dim 1 = dim 0² is predictable: no free credit from the dead dims
    assert r["settings"]["d"] == 4


def test_live_codes_get_no_warning():
    inp = ScoreInput(latents=codes("live"), prior=gaussian(), seed=0, options={"probes": ["linear"]})
    r = run_metrics(inp, ["lps"])
    assert r["collapsed_dims"] == [] and r["warnings"] == []


def test_score_cli_prints_a_red_banner_and_json_warnings(cli, tmp_path):
    path = tmp_path / "dead.safetensors"
    save_file({"latents": codes("constant")}, str(path))
    code, out, err = cli("score", "--latents", path, "--probes", "lgbm,linear", "-m", "basic")
    assert code == 0, err
    assert "warning" in out and "collapsed code" in out and "null" in out
    code, out, _ = cli("score", "--latents", path, "--json", "-m", "basic")
    r = json.loads(out)
    assert r["lps"] is None and r["collapsed_dims"] == [0, 1, 2, 3] and r["warnings"]


def test_run_warnings_collapse_and_a_stalled_prior_match():
    ev = {"collapsed_dims": [0, 1], "mmd2_prior": 0.9}
    w = run_warnings([ev], latent_dim=2, matches_prior=True)
    assert len(w) == 1 and "every latent dimension" in w[0]
    stalled = [{"collapsed_dims": [], "mmd2_prior": v} for v in (0.98, 0.97, 0.98, 0.97, 0.98)]
    assert any("has not fallen" in x for x in run_warnings(stalled, 4, True))
    assert run_warnings(stalled, 4, False) == []  # a plain AE does not train against the prior
    falling = [{"collapsed_dims": [], "mmd2_prior": v} for v in (0.9, 0.5, 0.3, 0.2, 0.1)]
    assert run_warnings(falling, 4, True) == []
    matched = [{"collapsed_dims": [], "mmd2_prior": v} for v in (0.01, 0.004, 0.005, 0.006, 0.004)]
    assert run_warnings(matched, 4, True) == []  # a plateau at a match is fine


def test_input_scale_warning_flags_faint_and_constant_images():
    g = torch.Generator().manual_seed(0)
    faint = torch.rand(8, 1, 33, 33, generator=g) * 0.004
    faint[:, :, 15:18, 15:18] = 1.0  # a bright core
    assert "faint images" in input_scale_warning(faint) and "input_norm=data" in input_scale_warning(faint)
    assert "background" in input_scale_warning(faint, standardised=True)
    assert "no signal" in input_scale_warning(torch.zeros(4, 1, 8, 8))
    assert input_scale_warning(torch.rand(4, 1, 8, 8, generator=g)) is None


def test_live_evaluation_lists_collapsed_dims_and_computes_no_lps():
    """A model whose codes are constant: the held-out record lists every dim and its LPS is undefined (NaN)."""
    from sculptcli.training.evaluate import evaluate

    class Dead(torch.nn.Module):
        latent_dim, stochastic = 3, False

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def encode(self, x, sample=False):
            from sculptcli.models.base import Encoded

            z = torch.zeros(len(x), 3) + self.p
            return Encoded(z, None, z)

        def decode(self, z):
            return torch.zeros(len(z), 1, 8, 8)

        def embed(self, x):
            return self.encode(x).mean

    from sculptcli.objectives import Objective, ObjectiveSpec

    prior = gaussian(dims=3)
    obj = Objective(ObjectiveSpec(recon="mse"), prior)
    images = torch.rand(300, 1, 8, 8)
    rec = evaluate(Dead(), obj, images, prior, seed=0, step=1)
    assert rec["collapsed_dims"] == [0, 1, 2]
    assert all(math.isnan(rec[f"lps_{p}"]) for p in ("linear", "lgbm", "mlp"))
    assert rec["mmd2_prior"] > 0.5
