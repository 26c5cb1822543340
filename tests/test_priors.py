"""Prior specs: validation, and sample statistics against the declared distributions."""

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from sculptcli.priors import PRIORS, prior_union

N = 200_000
ADAPTER = TypeAdapter(prior_union())


def sample(spec: dict, dim: int = 1, n: int = N, seed: int = 0) -> torch.Tensor:
    prior = ADAPTER.validate_python(spec)
    return prior.build(dim).sample(n, torch.Generator().manual_seed(seed))


def test_registry_lists_the_core_priors():
    assert {"gaussian", "uniform", "laplace", "gmm", "mvn", "product"} <= set(PRIORS.names())


def test_gaussian_moments():
    s = sample({"type": "gaussian", "mean": 2.0, "std": 3.0}, dim=3)
    assert s.shape == (N, 3)
    assert torch.allclose(s.mean(0), torch.full((3,), 2.0), atol=0.03)
    assert torch.allclose(s.std(0), torch.full((3,), 3.0), atol=0.03)


def test_uniform_range_and_moments():
    s = sample({"type": "uniform", "low": -5, "high": 5}, dim=2)
    assert s.min() >= -5 and s.max() < 5
    assert torch.allclose(s.mean(0), torch.zeros(2), atol=0.05)
    assert torch.allclose(s.var(0), torch.full((2,), 100 / 12), rtol=0.02)


def test_laplace_moments():
    s = sample({"type": "laplace", "loc": 1.0, "scale": 2.0})
    assert s.mean().item() == pytest.approx(1.0, abs=0.03)
    assert s.var().item() == pytest.approx(2 * 2.0**2, rel=0.03)
    assert s.median().item() == pytest.approx(1.0, abs=0.03)


def test_gmm_mixture_moments_and_modes():
    s = sample({"type": "gmm", "means": [-10, 10], "stds": 1.0, "weights": [0.25, 0.75]})
    # mean = Σ w m ; var = Σ w (s² + m²) − mean²
    assert s.mean().item() == pytest.approx(5.0, abs=0.1)
    assert s.var().item() == pytest.approx(1 + 100 - 25, rel=0.02)
    assert (s > 0).float().mean().item() == pytest.approx(0.75, abs=0.01)
    assert ((s.abs() - 10).abs() < 4).float().mean().item() > 0.999  # no mass between the modes


def test_mvn_covariance():
    cov = [[2.0, 0.8], [0.8, 1.0]]
    s = sample({"type": "mvn", "mean": [1.0, -1.0], "cov": cov}, dim=2)
    assert torch.allclose(s.mean(0), torch.tensor([1.0, -1.0]), atol=0.02)
    assert torch.allclose(torch.cov(s.T), torch.tensor(cov), atol=0.03)


def test_product_blocks_cover_their_dimensions():
    spec = {
        "type": "product",
        "blocks": [
            {"type": "uniform", "low": -5, "high": 5},
            {"type": "gaussian", "std": 2},
            {"type": "gmm", "means": [-10, 10], "stds": 1, "dims": 2},
            {"type": "mvn", "mean": [0, 0], "cov": [[1, 0.9], [0.9, 1]]},
        ],
    }
    s = sample(spec, dim=6)
    assert s.shape == (N, 6)
    assert s[:, 0].min() >= -5 and s[:, 0].max() < 5
    assert s[:, 1].std().item() == pytest.approx(2.0, rel=0.02)
    assert (s[:, 2:4].abs() > 5).float().mean().item() > 0.99
    assert torch.corrcoef(s[:, 4:6].T)[0, 1].item() == pytest.approx(0.9, abs=0.01)
    assert abs(torch.corrcoef(s[:, :4].T)[0, 1].item()) < 0.01  # blocks are independent


def test_seeded_and_reproducible():
    a = sample({"type": "gaussian"}, dim=4, n=100, seed=3)
    b = sample({"type": "gaussian"}, dim=4, n=100, seed=3)
    c = sample({"type": "gaussian"}, dim=4, n=100, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "spec, dim",
    [
        ({"type": "mvn", "mean": [0, 0], "cov": [[1, 0], [0, 1]]}, 3),
        ({"type": "product", "blocks": [{"type": "gaussian", "dims": 2}]}, 3),
        ({"type": "gaussian", "dims": 4}, 5),
    ],
)
def test_dimension_mismatch_is_refused(spec, dim):
    prior = ADAPTER.validate_python(spec)
    with pytest.raises(ValueError, match="latent size"):
        prior.check_dim(dim)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"type": "gaussian", "std": 0}, "greater than 0"),
        ({"type": "uniform", "low": 1, "high": 1}, "smaller than high"),
        ({"type": "gmm", "means": [0, 1], "weights": [0.5, 0.6]}, "sum to 1"),
        ({"type": "gmm", "means": [0, 1], "weights": [1.5, -0.5]}, "non-negative"),
        ({"type": "mvn", "mean": [0, 0], "cov": [[1, 2], [2, 1]]}, "positive definite"),
        ({"type": "gaussian", "sdt": 1}, "Did you mean 'std'"),
        ({"type": "gausian"}, "gausian"),
    ],
)
def test_invalid_specs(spec, fragment):
    with pytest.raises(ValidationError) as e:
        ADAPTER.validate_python(spec)
    assert fragment in str(e.value)
