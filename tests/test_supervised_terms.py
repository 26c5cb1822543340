"""Aux-VAE's and XFactors' terms and the conditional prior, each against a plain loop written here."""

import math

import numpy as np
import pytest
import torch

from sculptcli.build import build_prior
from sculptcli.config import load_config
from sculptcli.data import Batch
from sculptcli.errors import UserError
from sculptcli.models.base import Encoded
from sculptcli.objectives import DIVERGENCES, Objective, ObjectiveSpec
from sculptcli.objectives.divergences import DivergenceContext
from sculptcli.objectives.terms import TERMS, pearson
from sculptcli.priors import PRIORS
from sculptcli.stats.mmd import mmd2


class FakeData:
    """What a conditional prior reads of a dataset: factor names and the training split's factors."""

    def __init__(self, factors: torch.Tensor, names=("a", "b", "c")):
        self.factor_names = names
        self._f = factors

    def train_factors(self):
        return self._f


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    train = torch.stack([torch.rand(500, generator=g) * 4 + 1, torch.randint(0, 5, (500,), generator=g).float(),
                         torch.randn(500, generator=g)], 1)  # fmt: skip
    spec = PRIORS.get("conditional")(factors=["a", 2], std=0.5)
    prior = spec.build(5, "cpu", FakeData(train))
    b = 64
    factors = train[:b]
    mean = torch.randn(b, 5, generator=g)
    logvar = 0.3 * torch.randn(b, 5, generator=g)
    z = mean + torch.randn(b, 5, generator=g) * (0.5 * logvar).exp()
    return prior, train, factors, Encoded(mean, logvar, z), g


def loop_corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def test_pearson_matches_numpy(setup):
    _, _, f, enc, _ = setup
    got = pearson(enc.mean, f)
    for i in range(5):
        for j in range(3):
            assert got[i, j].item() == pytest.approx(loop_corr(enc.mean[:, i].numpy(), f[:, j].numpy()), abs=1e-5)


def test_conditional_prior_scales_by_the_training_range_and_draws_around_it(setup):
    prior, train, f, _, _ = setup
    u = prior.select(f)
    lo, hi = train[:, [0, 2]].amin(0), train[:, [0, 2]].amax(0)
    assert torch.allclose(u, (f[:, [0, 2]] - lo) / (hi - lo))
    assert float(prior.table.min()) >= 0.0 and float(prior.table.max()) <= 1.0
    big = f[:1].expand(20_000, 3)
    draws = prior.sample(20_000, torch.Generator().manual_seed(1), big)
    assert torch.allclose(draws[:, :2].mean(0), u[0], atol=0.02)
    assert torch.allclose(draws[:, :2].std(0), torch.tensor([0.5, 0.5]), atol=0.02)
    assert torch.allclose(draws[:, 2:].std(0), torch.ones(3), atol=0.03)  # the gaussian rest
    agg = prior.sample(20_000, torch.Generator().manual_seed(2))  # the mixture over the training factors
    assert agg[:, 0].mean().item() == pytest.approx(prior.table[:, 0].mean().item(), abs=0.02)


def test_conditional_kl_is_the_closed_form_against_the_shifted_prior(setup):
    prior, _, f, enc, _ = setup
    got = DIVERGENCES.get("kl")()(enc, prior, None, DivergenceContext(batch=Batch(torch.zeros(64, 1, 2, 2), f)))
    u = prior.select(f)
    total = 0.0
    for i in range(64):
        for j in range(5):
            m, s = (u[i, j].item(), 0.5) if j < 2 else (0.0, 1.0)
            mu, var = enc.mean[i, j].item(), math.exp(enc.logvar[i, j].item())
            total += math.log(s / math.sqrt(var)) + (var + (mu - m) ** 2) / (2 * s * s) - 0.5
    assert got.item() == pytest.approx(total / 64, rel=1e-5)


def test_conditional_mmd_compares_joints_with_one_draw_per_item(setup):
    prior, _, f, enc, _ = setup
    spec = DIVERGENCES.get("mmd")()
    ctx = DivergenceContext(batch=Batch(torch.zeros(64, 1, 2, 2), f))
    got = spec(enc, prior, torch.Generator().manual_seed(5), ctx)
    u = prior.select(f)
    draws = prior.sample(64, torch.Generator().manual_seed(5), f)
    want = mmd2(torch.cat([enc.z, u], 1), torch.cat([draws, u], 1), scales=spec.scales)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    # codes that follow the prior given u score lower than codes that ignore u
    aligned = prior.sample(64, torch.Generator().manual_seed(9), f)
    shuffled = aligned[torch.randperm(64, generator=torch.Generator().manual_seed(3))]
    a = spec(Encoded(aligned, None, aligned), prior, torch.Generator().manual_seed(5), ctx)
    b = spec(Encoded(shuffled, None, shuffled), prior, torch.Generator().manual_seed(5), ctx)
    assert a < b


def test_corr_intra_against_a_loop(setup):
    prior, _, f, enc, _ = setup
    got = TERMS.get("corr_intra")()(enc, Batch(torch.zeros(64, 1, 2, 2), f), prior)
    u = prior.select(f).numpy()
    z = enc.z.numpy()
    want = 0.0
    for k in range(2):
        for m in range(2):
            r = loop_corr(z[:, k], u[:, m])
            want += (1 - r) if k == m else abs(r)
    assert got.item() == pytest.approx(want, abs=1e-4)


def test_corr_inter_against_a_loop(setup):
    prior, _, f, enc, _ = setup
    got = TERMS.get("corr_inter")()(enc, Batch(torch.zeros(64, 1, 2, 2), f), prior)
    u = prior.select(f).numpy().astype(np.float64)
    m = enc.mean[:, 2:].numpy().astype(np.float64)
    want = 0.0
    for a in (1, 2, 3):
        for b in (1, 2, 3):
            want += sum(abs(loop_corr(m[:, j] ** a, u[:, k] ** b)) for j in range(3) for k in range(2)) / 3
    want += sum(abs(loop_corr(m[:, j], u[:, 0] * u[:, 1])) for j in range(3)) / 3
    assert got.item() == pytest.approx(want, abs=1e-4)


def test_infonce_against_a_loop():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(12, 6, generator=g)
    f = torch.randint(0, 3, (12, 2), generator=g).float()
    f[0, 1] = 7.0  # an anchor with no positive for factor 1
    term = TERMS.get("infonce")(factors=[0, 1], temperature=0.1)
    got = term(Encoded(z, None, z), Batch(torch.zeros(12, 1, 2, 2), f), None)
    per_factor = []
    for i in range(2):
        t = z[:, 2 * i : 2 * i + 2].double()
        t = t / t.norm(dim=1, keepdim=True)
        losses = []
        for a in range(12):
            pos = [b for b in range(12) if b != a and f[b, i] == f[a, i]]
            if not pos:
                continue
            sim = {b: float(t[a] @ t[b]) / 0.1 for b in range(12) if b != a}
            lp = math.log(sum(math.exp(sim[b]) for b in pos))
            la = math.log(sum(math.exp(v) for v in sim.values()))
            losses.append(-(lp - la))
        per_factor.append(sum(losses) / len(losses))
    assert got.item() == pytest.approx(sum(per_factor) / 2, rel=1e-5)


def test_terms_need_a_conditional_prior_and_enough_dims():
    with pytest.raises(UserError, match="needs a conditional prior"):
        load_config("dsprites-vae-kl", overrides=["objective.terms=[{type: corr_intra}]"])
    with pytest.raises(UserError, match="needs residual dims"):
        load_config(
            "dsprites-vae-kl",
            overrides=["prior={type: conditional, factors: [0, 1, 2, 3, 4]}", "objective.terms=[{type: corr_inter}]"],
        )
    with pytest.raises(UserError, match="needs 12 latent dims"):
        load_config("dsprites-mmd-gaussian", overrides=["objective.terms=[{type: infonce, factors: [0,1,2,3,4,5], "
                                                        "dims_per_factor: 2}]"])  # fmt: skip
    with pytest.raises(UserError, match="gaussian rest"):
        load_config("dsprites-vae-kl", overrides=["prior={type: conditional, factors: [0], rest: {type: uniform}}"])


def test_a_conditional_prior_needs_factors(tmp_path):
    cfg = load_config("dsprites-mmd-gaussian", overrides=["prior={type: conditional, factors: [scale]}"])
    with pytest.raises(UserError, match="needs a dataset with known factors"):
        build_prior(cfg.prior, 5, "cpu", data=None)
    with pytest.raises(UserError, match="factor names"):
        build_prior(PRIORS.get("conditional")(factors=["nope"]), 5, "cpu", FakeData(torch.rand(10, 3)))


def test_objective_adds_weighted_terms(setup):
    prior, _, f, enc, _ = setup
    spec = ObjectiveSpec(recon="mse", divergence={"type": "none"}, terms=[{"type": "corr_intra", "weight": 0.5}])
    obj = Objective(spec, prior)
    x = torch.rand(64, 1, 4, 4)
    parts = obj(Batch(x, f), enc, torch.zeros_like(x), torch.Generator())
    assert parts["loss"].item() == pytest.approx(parts["recon"].item() + 0.5 * parts["corr_intra"].item(), rel=1e-6)
