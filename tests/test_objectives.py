"""Divergences and reconstruction losses against independent references (torch.distributions, plain formulas)."""

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from sculptcli.data import Batch
from sculptcli.models.base import Encoded
from sculptcli.objectives import DIVERGENCES, Objective, ObjectiveSpec
from sculptcli.priors import PRIORS


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_kl_matches_torch_distributions(gen):
    mu, logvar = torch.randn(32, 4, generator=gen), torch.randn(32, 4, generator=gen) * 0.5
    prior = PRIORS.get("gaussian")(mean=0.5, std=2.0).build(4)
    ours = DIVERGENCES.get("kl")()(Encoded(mu, logvar, mu), prior, gen)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.5, 2.0)).sum(1).mean()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_batch_kl_matches_gaussian_moment_fit(gen):
    z = torch.randn(256, 3, generator=gen) @ torch.tensor([[1.0, 0.3, 0], [0, 1.5, 0], [0, 0, 0.5]]) + 0.2
    ours = DIVERGENCES.get("batch_kl")()(Encoded(z, None, z), None, gen)
    cov = torch.cov(z.T) + 1e-5 * torch.eye(3)
    ref = kl_divergence(MultivariateNormal(z.mean(0), cov), MultivariateNormal(torch.zeros(3), torch.eye(3)))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-4)
    white = torch.randn(20_000, 3, generator=gen)
    assert DIVERGENCES.get("batch_kl")()(Encoded(white, None, white), None, gen).item() < 1e-3


def test_none_divergence_is_zero(gen):
    z = torch.randn(8, 2, generator=gen)
    assert DIVERGENCES.get("none")()(Encoded(z, None, z), None, gen).item() == 0.0


def test_mmd_divergence_uses_the_prior(gen):
    z = torch.randn(512, 2, generator=gen)
    near = PRIORS.get("gaussian")().build(2)
    far = PRIORS.get("gaussian")(mean=3.0).build(2)
    mmd = DIVERGENCES.get("mmd")()
    assert mmd(Encoded(z, None, z), near, gen).item() < 0.02 < mmd(Encoded(z, None, z), far, gen).item()


@pytest.mark.parametrize("recon", ["bce", "mse"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reconstruction_losses(recon, reduction, gen):
    x = (torch.rand(4, 1, 8, 8, generator=gen) > 0.5).float()
    logits = torch.randn(4, 1, 8, 8, generator=gen)
    spec = ObjectiveSpec(recon=recon, reduction=reduction, divergence={"type": "none"})
    obj = Objective(spec, PRIORS.get("gaussian")().build(2))
    p = torch.sigmoid(logits)
    per_pixel = -(x * p.log() + (1 - x) * (1 - p).log()) if recon == "bce" else (p - x) ** 2
    ref = per_pixel.sum() / 4 if reduction == "sum" else per_pixel.mean()
    z = torch.zeros(4, 2)
    parts = obj(Batch(x), Encoded(z, None, z), logits, gen)
    assert parts["recon"].item() == pytest.approx(ref.item(), rel=1e-5)
    assert parts["loss"].item() == pytest.approx(ref.item(), rel=1e-5)


def test_weight_scales_the_divergence(gen):
    x = torch.zeros(16, 1, 4, 4)
    z = torch.randn(16, 2, generator=gen) + 1
    prior = PRIORS.get("gaussian")().build(2)
    parts = [
        Objective(ObjectiveSpec(divergence={"type": "mmd", "weight": w}), prior)(
            Batch(x), Encoded(z, None, z), torch.zeros_like(x), torch.Generator().manual_seed(1)
        )
        for w in (0.0, 0.3, 3.0)
    ]
    assert parts[0]["loss"].item() == pytest.approx(parts[0]["recon"].item())
    gap = [p["loss"].item() - p["recon"].item() for p in parts]
    assert gap[2] == pytest.approx(10 * gap[1], rel=1e-5)


def test_kl_refuses_non_gaussian_prior_and_deterministic_encoder():
    with pytest.raises(ValueError, match="gaussian prior"):
        DIVERGENCES.get("kl")().check(PRIORS.get("uniform")(), stochastic=True)
    with pytest.raises(ValueError, match="stochastic"):
        DIVERGENCES.get("kl")().check(PRIORS.get("gaussian")(), stochastic=False)


def test_mmd_tc_term_is_near_zero_for_independent_codes_and_large_for_dependent_ones():
    from sculptcli.models.base import Encoded
    from sculptcli.objectives.terms import TERMS
    from sculptcli.stats.mmd import mmd2

    term = TERMS.get("mmd_tc")(type="mmd_tc")
    g = torch.Generator().manual_seed(0)
    indep = torch.randn(512, 3, generator=g)
    t = torch.randn(512, 1, generator=g)
    dep = torch.cat([t, t**2, -t], 1) + 0.05 * torch.randn(512, 3, generator=g)  # one factor in three dims
    torch.manual_seed(0)
    v_indep = float(term(Encoded(indep, None, indep), None, None))
    torch.manual_seed(0)
    z = dep.clone().requires_grad_()
    v_dep = term(Encoded(z, None, z), None, None)
    assert v_indep < 0.05 and v_dep.item() > 5 * v_indep  # the biased estimator: ≈ scales · 2 / n for independent codes
    # the known answer: the MMD² of the codes against the same column-shuffled copy
    torch.manual_seed(0)
    idx = torch.rand(dep.shape).argsort(0)
    assert torch.allclose(v_dep.detach(), mmd2(dep, torch.gather(dep, 0, idx), scales=term.scales))
    v_dep.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
