"""MMD² on cases with known answers, cross-checked against a plain double-loop implementation."""

import math

import pytest
import torch

from sculptcli.stats.mmd import (
    cross_sq_dists,
    median_bandwidth,
    mmd2,
    mmd_permutation_test,
    pairwise_sq_dists,
    pooled_median_bandwidth,
)


def loop_mmd2(x, y, sigma, scales=(0.5, 1.0, 2.0), kernel="rbf", unbiased=False):
    """An independent, deliberately naive MMD² (python loops over pairs, float64)."""

    def k(a, b):
        d2 = sum((float(ai) - float(bi)) ** 2 for ai, bi in zip(a, b, strict=True))
        total = 0.0
        for s in scales:
            h2 = (s * sigma) ** 2
            total += math.exp(-d2 / (2 * h2)) if kernel == "rbf" else h2 / (h2 + d2)
        return total

    def mean_k(a, b, skip_diag):
        vals = [k(a[i], b[j]) for i in range(len(a)) for j in range(len(b)) if not (skip_diag and i == j)]
        return sum(vals) / len(vals)

    return mean_k(x, x, unbiased) + mean_k(y, y, unbiased) - 2 * mean_k(x, y, False)


def loop_median_distance(x, y):
    pooled = torch.cat([x, y]).double()
    d = [float((pooled[i] - pooled[j]).norm()) for i in range(len(pooled)) for j in range(i + 1, len(pooled))]
    d.sort()
    return d[(len(d) - 1) // 2]  # torch.median returns the lower median


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_identical_samples_give_zero(gen):
    x = torch.randn(200, 4, generator=gen)
    assert mmd2(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_shifted_gaussians_clearly_positive(gen):
    x = torch.randn(500, 1, generator=gen)
    same = torch.randn(500, 1, generator=gen)
    shifted = torch.randn(500, 1, generator=gen) + 1.0
    null = mmd2(x, same).item()
    alt = mmd2(x, shifted).item()
    assert alt > 0.05
    assert alt > 10 * abs(null)


def test_matches_independent_loop_implementation(gen):
    x, y = torch.randn(12, 3, generator=gen), torch.randn(15, 3, generator=gen) * 1.5 + 0.3
    sigma = loop_median_distance(x, y)
    assert float(median_bandwidth(pairwise_sq_dists(torch.cat([x, y])))) == pytest.approx(sigma, rel=1e-5)
    for kernel in ("rbf", "imq"):
        for est in ("biased", "unbiased"):
            ours = mmd2(x, y, kernel=kernel, estimator=est).item()
            ref = loop_mmd2(x, y, sigma, kernel=kernel, unbiased=est == "unbiased")
            assert ours == pytest.approx(ref, rel=1e-4, abs=1e-6), (kernel, est)
    fixed = mmd2(x, y, bandwidth=0.7, scales=[1.0]).item()
    assert fixed == pytest.approx(loop_mmd2(x, y, 0.7, scales=(1.0,)), rel=1e-4)


def test_pooled_median_from_blocks_equals_the_median_of_the_pooled_pairs(gen):
    for n, m in [(2, 3), (7, 40), (64, 512)]:
        x, y = torch.randn(n, 3, generator=gen), torch.randn(m, 3, generator=gen) * 2
        ref = median_bandwidth(pairwise_sq_dists(torch.cat([x, y])))
        got = pooled_median_bandwidth(pairwise_sq_dists(x), cross_sq_dists(x, y), pairwise_sq_dists(y))
        assert float(got) == pytest.approx(float(ref), rel=1e-6)
    # ties (integer points, many equal distances) and the loop's lower median
    x, y = torch.randint(0, 3, (9, 2), generator=gen).float(), torch.randint(0, 3, (14, 2), generator=gen).float()
    got = pooled_median_bandwidth(pairwise_sq_dists(x), cross_sq_dists(x, y), pairwise_sq_dists(y))
    assert float(got) == pytest.approx(loop_median_distance(x, y), rel=1e-6)


def full_pooled_mmd2(x, y, scales, unbiased=False):
    """The plain formulation in float64 (one pooled matrix through autograd, no clamp), for the gradient check."""
    pooled = torch.cat([x, y]).double()
    d2 = ((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(-1)
    n_all = len(pooled)
    iu = torch.triu_indices(n_all, n_all, 1)
    sigma = d2.detach()[iu[0], iu[1]].median().sqrt()
    k = sum(torch.exp(-d2 / (2 * (s * sigma) ** 2)) for s in scales)
    n = len(x)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    if unbiased:
        m = len(y)
        return (kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1)) - 2 * kxy.mean()
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


@pytest.mark.parametrize("unbiased", [False, True])
def test_value_and_gradient_equal_the_plain_pooled_formulation_at_fine_scales(gen, unbiased):
    # fine scales put most kernel entries far below exp(-80), where the exponent is clamped: no visible change
    x = (torch.randn(40, 5, generator=gen) * 1.5).requires_grad_(True)
    y = torch.randn(300, 5, generator=gen)
    scales = (0.02, 0.1, 0.5, 2.0)
    est = "unbiased" if unbiased else "biased"
    ours = mmd2(x, y, scales=scales, estimator=est)
    (g_ours,) = torch.autograd.grad(ours, x)
    xr = x.detach().double().requires_grad_(True)
    ref = full_pooled_mmd2(xr, y, scales, unbiased)
    (g_ref,) = torch.autograd.grad(ref, xr)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)
    assert torch.allclose(g_ours.double(), g_ref, rtol=1e-3, atol=1e-6)
    # a second sample that needs a gradient gets one (the prior block is only left out of autograd when it has none)
    yg = y[:50].clone().requires_grad_(True)
    mmd2(x, yg, scales=scales, estimator=est).backward()
    assert yg.grad is not None and yg.grad.abs().sum() > 0


def test_biased_exceeds_unbiased_and_unbiased_is_centred(gen):
    vals_b, vals_u = [], []
    for _ in range(20):
        x, y = torch.randn(64, 2, generator=gen), torch.randn(64, 2, generator=gen)
        vals_b.append(mmd2(x, y).item())
        vals_u.append(mmd2(x, y, estimator="unbiased").item())
    assert all(b > u for b, u in zip(vals_b, vals_u, strict=True))
    assert min(vals_u) < 0 < max(vals_u)  # the U-statistic is unbiased: it straddles 0 under the null
    assert sum(vals_u) / 20 == pytest.approx(0.0, abs=0.01)
    assert min(vals_b) > 0


def test_gradients_flow_and_pull_toward_the_prior(gen):
    x = (torch.randn(128, 2, generator=gen) + 2.0).requires_grad_(True)
    y = torch.randn(128, 2, generator=gen)
    mmd2(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # gradient descent on x moves its mean toward the prior's (0): the gradient points away from 0
    assert (x.grad.mean(0) > 0).all()


def test_median_bandwidth_is_detached(gen):
    x = torch.randn(64, 3, generator=gen).requires_grad_(True)
    y = torch.randn(64, 3, generator=gen)
    mmd2(x, y).backward()
    g_median = x.grad.clone()
    sigma = float(median_bandwidth(pairwise_sq_dists(torch.cat([x.detach(), y]))))
    x.grad = None
    mmd2(x, y, bandwidth=sigma).backward()
    assert torch.allclose(g_median, x.grad, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError):
        mmd2(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError):
        mmd2(torch.zeros(5, 2), torch.zeros(5, 2), estimator="nope")


def test_permutation_test(gen):
    x = torch.randn(300, 2, generator=gen)
    stat_same, p_same = mmd_permutation_test(x, torch.randn(300, 2, generator=gen), permutations=200)
    stat_diff, p_diff = mmd_permutation_test(x, torch.randn(300, 2, generator=gen) + 0.5, permutations=200)
    assert p_same > 0.05
    assert p_diff < 0.01
    assert stat_diff > stat_same
    # the observed statistic is the biased MMD² with the pooled median bandwidth
    y = torch.randn(50, 2, generator=gen)
    assert mmd_permutation_test(x[:50], y, permutations=5)[0] == pytest.approx(mmd2(x[:50], y).item(), rel=1e-5)
