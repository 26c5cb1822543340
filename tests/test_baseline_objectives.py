"""β-TCVAE and FactorVAE objectives: the estimators against independent formulas, and training + exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from torch.distributions import Normal

from sculptcli.data import Batch
from sculptcli.models.base import Encoded
from sculptcli.objectives import DIVERGENCES, Objective, ObjectiveSpec
from sculptcli.objectives.divergences import DivergenceContext, permute_dims
from sculptcli.priors import PRIORS
from tests.conftest import TINY


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def _encoded(gen, b=24, d=3, corr=False, scale=0.3):
    mu = torch.randn(b, d, generator=gen)
    if corr:
        mu[:, 1] = mu[:, 0]
    logvar = torch.full((b, d), 2 * math.log(scale))
    z = mu + torch.randn(b, d, generator=gen) * scale
    return Encoded(mu, logvar, z)


def plain_mws(enc: Encoded, n_data: int, prior_std: float = 1.0) -> dict[str, float]:
    """Minibatch-weighted sampling written out with loops and torch.distributions."""
    z, mu, std = enc.z.double(), enc.mean.double(), (0.5 * enc.logvar.double()).exp()
    b, d = z.shape
    mi = tc = dkl = 0.0
    for i in range(b):
        log_qzx = Normal(mu[i], std[i]).log_prob(z[i]).sum()
        per = torch.stack([Normal(mu[m], std[m]).log_prob(z[i]) for m in range(b)])  # (m, j)
        log_qz = torch.logsumexp(per.sum(1), 0) - math.log(b * n_data)
        log_prod = sum(torch.logsumexp(per[:, j], 0) - math.log(b * n_data) for j in range(d))
        log_pz = Normal(0.0, prior_std).log_prob(z[i]).sum()
        mi += float(log_qzx - log_qz) / b
        tc += float(log_qz - log_prod) / b
        dkl += float(log_prod - log_pz) / b
    return {"mi": mi, "tc": tc, "dim_kl": dkl}


def test_tcvae_matches_a_plain_minibatch_weighted_estimator(gen):
    enc = _encoded(gen, corr=True)
    spec = DIVERGENCES.get("tcvae")()
    ours = {k: float(v) for k, v in spec.parts(enc, PRIORS.get("gaussian")(), 1000).items()}
    ref = plain_mws(enc, 1000)
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-4), k
    # weighted sum with (α, β, γ) and the divergence weight outside
    prior = PRIORS.get("gaussian")().build(3)
    val = DIVERGENCES.get("tcvae")(alpha=0.5, beta=4.0, gamma=2.0)(enc, prior, gen, DivergenceContext(n_data=1000))
    assert float(val) == pytest.approx(0.5 * ref["mi"] + 4 * ref["tc"] + 2 * ref["dim_kl"], rel=1e-4, abs=1e-4)


def test_tcvae_terms_telescope_to_the_single_sample_kl(gen):
    enc = _encoded(gen)
    p = DIVERGENCES.get("tcvae")().parts(enc, PRIORS.get("gaussian")(), 500)
    total = float(p["mi"] + p["tc"] + p["dim_kl"])
    std = (0.5 * enc.logvar).exp()
    ref = (Normal(enc.mean, std).log_prob(enc.z) - Normal(0.0, 1.0).log_prob(enc.z)).sum(1).mean()
    assert total == pytest.approx(float(ref), rel=1e-5)


def test_tcvae_total_correlation_sees_dependence():
    # n_data = 1: the batch itself is the population, so log q(z) is the batch mixture without the log N offset
    g = torch.Generator().manual_seed(1)
    spec = DIVERGENCES.get("tcvae")()
    tc = [
        float(spec.parts(_encoded(g, b=512, corr=c, scale=0.1), PRIORS.get("gaussian")(), 1)["tc"])
        for c in (True, False)
    ]
    assert tc[0] > tc[1] + 0.8


def test_permute_dims_permutes_each_column_independently(gen):
    z = torch.arange(40.0).reshape(20, 2)
    p = permute_dims(z, gen)
    for j in range(2):
        assert sorted(p[:, j].tolist()) == z[:, j].tolist()
    assert not torch.equal(p, z)
    assert not torch.equal(p[:, 0] - z[0, 0], (p[:, 1] - z[0, 1]))  # the columns were not shuffled together


def test_factorvae_discriminator_learns_total_correlation():
    torch.manual_seed(0)
    prior = PRIORS.get("gaussian")().build(2)
    spec = ObjectiveSpec(
        divergence={"type": "factor_tc", "gamma": 1.0, "disc_hidden": 64, "disc_layers": 3, "disc_lr": 1e-3}
    )
    g = torch.Generator().manual_seed(0)

    def tc_after_training(dependent: bool) -> float:
        obj = Objective(spec, prior)
        for _ in range(300):
            u = torch.randn(256, 1, generator=g)
            z = (
                torch.cat([u, u + 0.1 * torch.randn(256, 1, generator=g)], 1)
                if dependent
                else torch.randn(256, 2, generator=g)
            )
            obj.aux_step(z, g)
        z = torch.randn(4096, 1, generator=g)
        z = (
            torch.cat([z, z + 0.1 * torch.randn(4096, 1, generator=g)], 1)
            if dependent
            else torch.randn(4096, 2, generator=g)
        )
        with torch.no_grad():
            return float(obj.aux(z).mean())

    assert tc_after_training(True) > 1.0  # log-odds of "joint" well above 0: strong dependence
    assert abs(tc_after_training(False)) < 0.3  # cannot tell independent codes from their permutation


def test_factorvae_adds_gamma_times_discriminator_log_odds(gen):
    prior = PRIORS.get("gaussian")().build(3)
    obj = Objective(ObjectiveSpec(divergence={"type": "factor_tc", "gamma": 10.0, "disc_hidden": 16}), prior)
    enc = _encoded(gen)
    x = torch.zeros(24, 1, 4, 4)
    parts = obj(Batch(x), enc, torch.zeros_like(x), gen)
    kl = float(DIVERGENCES.get("kl")()(enc, prior, gen))
    with torch.no_grad():
        tc = float(obj.aux(enc.z).mean())
    assert float(parts["div"].detach()) == pytest.approx(kl + 10.0 * tc, rel=1e-5)


@pytest.mark.parametrize("name", ["tcvae", "factor_tc"])
def test_baselines_need_gaussian_prior_and_stochastic_encoder(name):
    with pytest.raises(ValueError, match="gaussian prior"):
        DIVERGENCES.get(name)().check(PRIORS.get("uniform")(), stochastic=True)
    with pytest.raises(ValueError, match="stochastic"):
        DIVERGENCES.get(name)().check(PRIORS.get("gaussian")(), stochastic=False)


def _records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize(
    "divergence", [{"type": "tcvae", "beta": 4.0}, {"type": "factor_tc", "gamma": 10.0, "disc_hidden": 32}]
)
def test_baselines_train_and_resume_exactly(cli, tmp_path, divergence):
    cfg = dict(
        TINY,
        objective={"recon": "bce", "reduction": "sum", "divergence": divergence},
        model={**TINY["model"], "stochastic": True},
        # constant lr: a run cut short by --max-steps and extended has another cosine schedule (its length changed)
        train={**TINY["train"], "steps": 8, "save_every": 4, "eval_every": 4, "schedule": "constant"},
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "full", "-q", "--no-score")[0] == 0
    assert (
        cli(
            "train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "part", "-q", "--no-score", "--max-steps", "4"
        )[0]
        == 0
    )
    assert cli("train", "--out", tmp_path / "part", "--resume", "--max-steps", "8", "-q", "--no-score")[0] == 0
    full, part = _records(tmp_path / "full"), _records(tmp_path / "part")
    assert [r["step"] for r in full] == [r["step"] for r in part]
    for a, b in zip(full, part, strict=True):
        assert math.isfinite(a["loss"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
