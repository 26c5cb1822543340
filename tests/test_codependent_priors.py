"""The co-dependent priors: `empirical` (resampled codes), `ring`, `torus` and `transform` sample what they declare,
work as product blocks, and bad specs exit 2 with a message naming the problem."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import TypeAdapter, ValidationError
from safetensors.torch import save_file
from scipy.stats import kstest

from sculptcli.config import validate_config
from sculptcli.errors import UserError
from sculptcli.priors import PRIORS, prior_union
from tests.conftest import TINY, assert_user_error

ADAPTER = TypeAdapter(prior_union())
N = 100_000


def spec(d: dict):
    return ADAPTER.validate_python(d)


def draw(d: dict, dim: int, n: int = N, seed: int = 0) -> torch.Tensor:
    return spec(d).build(dim).sample(n, torch.Generator().manual_seed(seed))


@pytest.fixture
def codes(tmp_path: Path) -> np.ndarray:
    """1000 correlated 3-D codes (a non-factorised source), saved as codes.npy and codes.safetensors."""
    g = np.random.default_rng(0)
    a = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
    z = (g.standard_normal((1000, 3)) @ a.T + np.array([1.0, -2.0, 0.5])).astype(np.float32)
    np.save(tmp_path / "codes.npy", z, allow_pickle=False)
    save_file({"latents": torch.from_numpy(z)}, str(tmp_path / "codes.safetensors"))
    return z


def test_the_new_priors_are_registered():
    assert {"empirical", "ring", "torus", "transform"} <= set(PRIORS.names())


# ---------------------------------------------------------------- empirical


def test_empirical_preserves_mean_and_covariance(tmp_path, codes):
    s = draw({"type": "empirical", "source": str(tmp_path / "codes.npy")}, 3).double()
    mean, cov = codes.mean(0), np.cov(codes.T)
    np.testing.assert_allclose(s.mean(0).numpy(), mean, atol=0.02)
    np.testing.assert_allclose(np.cov(s.numpy().T), cov, atol=0.03)
    assert abs(cov[0, 1]) > 0.5  # the source is strongly co-dependent, and so are the draws
    # without jitter every draw is one of the source's rows
    rows = {tuple(r) for r in codes.tolist()}
    assert all(tuple(r) in rows for r in s[:500].float().tolist())


def test_empirical_jitter_adds_bandwidth_squared_to_the_variances(tmp_path, codes):
    b = 0.5
    s = draw({"type": "empirical", "source": str(tmp_path / "codes.npy"), "bandwidth": b}, 3).double().numpy()
    np.testing.assert_allclose(s.mean(0), codes.mean(0), atol=0.02)
    np.testing.assert_allclose(np.cov(s.T), np.cov(codes.T) + b**2 * np.eye(3), atol=0.03)


def test_empirical_safetensors_and_npy_draw_alike_and_seeded(tmp_path, codes):
    a = draw({"type": "empirical", "source": str(tmp_path / "codes.npy")}, 3, n=200, seed=3)
    b = draw({"type": "empirical", "source": str(tmp_path / "codes.safetensors")}, 3, n=200, seed=3)
    c = draw({"type": "empirical", "source": str(tmp_path / "codes.npy")}, 3, n=200, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_empirical_source_is_stored_absolute_and_fixes_the_dimension(tmp_path, codes, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = spec({"type": "empirical", "source": "codes.npy"})
    assert p.source == tmp_path / "codes.npy" and p.source.is_absolute()
    assert p.event_dim() == 3
    with pytest.raises(ValueError, match="have 3 dimensions but the latent size is 4"):
        p.build(4)
    cfg = {**TINY, "model": {**TINY["model"], "latent_dim": 4}, "prior": {"type": "empirical", "source": "codes.npy"}}
    with pytest.raises(UserError, match="3 dimensions but the latent size is 4"):
        validate_config(cfg, "test")
    ok = validate_config({**TINY, "prior": {"type": "empirical", "source": "codes.npy"}}, "test")
    assert ok.prior.type == "empirical"


def test_empirical_in_a_product_block(tmp_path, codes):
    p = {
        "type": "product",
        "blocks": [{"type": "ring", "radius": 2.0}, {"type": "empirical", "source": str(tmp_path / "codes.npy")}],
    }
    s = draw(p, 5, n=20_000)
    assert s.shape == (20_000, 5)
    assert s[:, :2].norm(dim=1).mean().item() == pytest.approx(2.0, abs=0.02)
    np.testing.assert_allclose(s[:, 2:].mean(0).numpy(), codes.mean(0), atol=0.05)


# ---------------------------------------------------------------- ring and torus


def _angle_is_uniform(x: torch.Tensor, y: torch.Tensor) -> None:
    theta = (torch.atan2(y, x) % (2 * math.pi)).double().numpy()
    assert kstest(theta / (2 * math.pi), "uniform").statistic < 0.01
    assert abs(np.cos(theta).mean()) < 0.01 and abs(np.sin(theta).mean()) < 0.01


def test_ring_radius_noise_and_uniform_angle():
    s = draw({"type": "ring", "radius": 3.0, "noise": 0.2}, 2).double()
    r = s.norm(dim=1)
    assert r.mean().item() == pytest.approx(3.0, abs=0.01)
    assert r.std().item() == pytest.approx(0.2, rel=0.03)
    _angle_is_uniform(s[:, 0], s[:, 1])
    assert abs(np.corrcoef(s.numpy().T)[0, 1]) < 0.01  # uncorrelated, yet dependent:
    assert abs(np.corrcoef((s**2).numpy().T)[0, 1]) > 0.5  # x² + y² ≈ r² ties the coordinates
    assert spec({"type": "ring"}).event_dim() == 2


def test_torus_rings_per_pair():
    s = draw({"type": "torus", "radius": [1.0, 4.0], "noise": 0.05}, 4).double()
    r1, r2 = s[:, :2].norm(dim=1), s[:, 2:].norm(dim=1)
    assert r1.mean().item() == pytest.approx(1.0, abs=0.01) and r2.mean().item() == pytest.approx(4.0, abs=0.01)
    assert r1.std().item() == pytest.approx(0.05, rel=0.03) and r2.std().item() == pytest.approx(0.05, rel=0.03)
    _angle_is_uniform(s[:, 0], s[:, 1])
    _angle_is_uniform(s[:, 2], s[:, 3])
    # independent rings: the two angles are uncorrelated
    a1, a2 = torch.atan2(s[:, 1], s[:, 0]), torch.atan2(s[:, 3], s[:, 2])
    assert abs(np.corrcoef(a1.numpy(), a2.numpy())[0, 1]) < 0.01
    assert spec({"type": "torus"}).event_dim() == 4  # default: two rings
    assert spec({"type": "torus", "dims": 6, "radius": 2.0}).event_dim() == 6


# ---------------------------------------------------------------- transform


def test_transform_equals_fn_of_the_base_samples():
    base = {"type": "laplace", "loc": 0.3, "scale": 1.5}
    fns = {"tanh": np.tanh, "exp": np.exp, "cube": lambda x: x**3, "square": np.square, "abs": np.abs}
    for name, fn in fns.items():
        t = draw({"type": "transform", "fn": name, "base": base}, 2, n=1000, seed=5)
        b = draw(base, 2, n=1000, seed=5)  # the same generator stream: the same base values
        np.testing.assert_allclose(t.double().numpy(), fn(b.double().numpy()), rtol=1e-5, atol=1e-6)


def test_transform_distributions():
    t = draw({"type": "transform", "fn": "tanh", "base": {"type": "gaussian", "mean": 0.5, "std": 1.0}}, 1)
    assert t.min() > -1 and t.max() < 1
    assert t.median().item() == pytest.approx(math.tanh(0.5), abs=0.02)  # monotone maps keep the median
    e = draw({"type": "transform", "fn": "exp", "base": {"type": "gaussian"}}, 1).double()
    assert e.min() > 0 and e.mean().item() == pytest.approx(math.exp(0.5), rel=0.02)  # log-normal mean
    sq = draw({"type": "transform", "fn": "square", "base": {"type": "gaussian"}}, 1).double()
    assert sq.mean().item() == pytest.approx(1.0, rel=0.02)  # χ²₁
    a = draw({"type": "transform", "fn": "abs", "base": {"type": "gaussian"}}, 1).double()
    assert a.mean().item() == pytest.approx(math.sqrt(2 / math.pi), rel=0.02)  # half-normal
    sg = draw({"type": "transform", "fn": "sigmoid", "base": {"type": "uniform", "low": -3, "high": 3}}, 1)
    assert sg.min() > 0 and sg.max() < 1 and sg.median().item() == pytest.approx(0.5, abs=0.01)
    sp = draw({"type": "transform", "fn": "softplus", "base": {"type": "gaussian"}}, 1)
    assert sp.min() > 0 and sp.median().item() == pytest.approx(math.log(2), abs=0.01)
    nested = spec(
        {"type": "transform", "fn": "exp", "base": {"type": "transform", "fn": "tanh", "base": {"type": "gaussian"}}}
    )
    assert (
        nested.describe() == "transform(fn=exp, base=transform(fn=tanh, base=gaussian(mean=0.0, std=1.0)))"
        and nested.event_dim() is None
    )


def test_transform_is_one_dimensional_like_its_base():
    s = draw({"type": "transform", "fn": "cube", "base": {"type": "gaussian"}}, 4, n=20_000)
    assert s.shape == (20_000, 4)
    assert abs(np.corrcoef(s.numpy().T)[0, 1]) < 0.03  # i.i.d. copies
    with pytest.raises(ValidationError, match="base must be a 1-D prior"):
        spec({"type": "transform", "fn": "exp", "base": {"type": "ring"}})


# ---------------------------------------------------------------- validation through the CLI


def _write(tmp_path: Path, content: dict) -> str:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(content))
    return "p.yaml"


BAD = [
    ("ring-radius-zero", {"type": "ring", "radius": 0}, ("prior.radius", "greater than 0")),
    ("ring-radius-negative", {"type": "ring", "radius": -2.0}, ("prior.radius", "greater than 0")),
    ("ring-noise-negative", {"type": "ring", "noise": -0.1}, ("prior.noise", "greater than or equal to 0")),
    ("ring-dims", {"type": "ring", "dims": 3}, ("a ring covers exactly 2 dims",)),
    ("ring-key-typo", {"type": "ring", "raduis": 2}, ("unknown key 'raduis'", "Did you mean 'radius'?")),
    ("torus-odd-dims", {"type": "torus", "dims": 3}, ("torus dims must be even", "got 3")),
    ("torus-radius-count", {"type": "torus", "dims": 4, "radius": [1, 2, 3]}, ("radius has 3 entries",)),
    ("torus-radius-empty", {"type": "torus", "radius": []}, ("at least one entry",)),
    ("transform-fn-typo", {"type": "transform", "fn": "tahn", "base": {"type": "gaussian"}}, ("Did you mean 'tanh'?",)),
    (
        "transform-fn-code",
        {"type": "transform", "fn": "__import__('os')", "base": {"type": "gaussian"}},
        ("unknown fn",),
    ),
    ("transform-no-base", {"type": "transform", "fn": "exp"}, ("prior.base", "required key is missing")),
    (
        "transform-base-typo",
        {"type": "transform", "fn": "exp", "base": {"type": "gausian"}},
        ("Did you mean 'gaussian'?",),
    ),
    (
        "transform-base-mvn",
        {"type": "transform", "fn": "exp", "base": {"type": "mvn", "mean": [0, 0], "cov": [[1, 0], [0, 1]]}},
        ("base must be a 1-D prior", "'mvn'"),
    ),
    ("empirical-missing", {"type": "empirical", "source": "nowhere.npy"}, ("no such file", "nowhere.npy")),
    ("empirical-neither", {"type": "empirical"}, ("exactly one of source",)),
    ("empirical-wrong-dim", {"type": "empirical", "source": "codes.npy", "dims": 4}, ("dims is 4", "3 dimensions")),
    ("empirical-rank", {"type": "empirical", "source": "rank1.npy"}, ("2-D array [N, d]", "[10]")),
    ("empirical-empty", {"type": "empirical", "source": "empty.npy"}, ("empty",)),
    ("empirical-nan", {"type": "empirical", "source": "nan.npy"}, ("non-finite", "row 7")),
    ("empirical-no-latents", {"type": "empirical", "source": "other.safetensors"}, ("no tensor named 'latents'",)),
    ("empirical-garbage", {"type": "empirical", "source": "junk.safetensors"}, ("cannot read the codes",)),
    ("empirical-pickle", {"type": "empirical", "source": "pickled.npy"}, ("cannot read the codes",)),
    ("empirical-suffix", {"type": "empirical", "source": "codes.csv"}, ("unsupported codes file type",)),
    ("empirical-bandwidth", {"type": "empirical", "source": "codes.npy", "bandwidth": -1}, ("prior.bandwidth",)),
    ("empirical-n-with-source", {"type": "empirical", "source": "codes.npy", "n": 5}, ("n applies to checkpoint",)),
    ("empirical-checkpoint-missing", {"type": "empirical", "checkpoint": "no-run"}, ("no such checkpoint",)),
    (
        "product-bad-new-block",
        {"type": "product", "blocks": [{"type": "gaussian"}, {"type": "torus", "dims": 5}]},
        ("prior.blocks[1]", "torus dims must be even"),
    ),
]


@pytest.mark.parametrize("content,fragments", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_codependent_prior_exits_2(cli, tmp_path, codes, content, fragments):
    g = np.random.default_rng(1)
    np.save(tmp_path / "rank1.npy", np.zeros(10, np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    bad = g.standard_normal((20, 3))
    bad[7, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    save_file({"other": torch.zeros(4, 3)}, str(tmp_path / "other.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x00garbage" * 10)
    (tmp_path / "codes.csv").write_text("1,2,3\n")
    assert_user_error(cli("prior", "validate", _write(tmp_path, content)), *fragments)


def test_yaml_nan_refused_in_ring(cli, tmp_path):
    (tmp_path / "p.yaml").write_text("type: ring\nradius: .nan\n")
    assert_user_error(cli("prior", "validate", "p.yaml"), "prior.radius", "finite")


def test_valid_new_priors_validate_list_and_sample(cli, tmp_path, codes):
    for content, what in (
        ({"type": "ring", "radius": 2}, "2 dimensions"),
        ({"type": "torus", "radius": [1, 2, 3]}, "6 dimensions"),
        ({"type": "transform", "fn": "tanh", "base": {"type": "gaussian"}}, "1-D"),
        ({"type": "empirical", "source": "codes.safetensors", "bandwidth": 0.1}, "3 dimensions"),
    ):
        code, out, err = cli("prior", "validate", _write(tmp_path, content))
        assert code == 0, err
        assert out.startswith("ok") and content["type"] in out and what in out
    code, out, err = cli("prior", "list")
    assert code == 0, err
    for name in ("empirical", "ring", "torus", "transform", "bandwidth", "fn"):
        assert name in out
    code, _, err = cli("prior", "sample", "p.yaml", "-n", 500, "--out", "s.npy")
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (500, 3)
    # a 1-D sample of the wrong size is refused with the dimension named
    assert_user_error(cli("prior", "sample", "p.yaml", "-n", 5, "--dim", 4, "--out", "t.npy"), "3 dimensions")
    assert not (tmp_path / "t.npy").exists()


def test_train_refuses_an_empirical_prior_of_the_wrong_size(cli, tmp_path, tiny_config, codes):
    assert_user_error(
        cli("train", "--config", tiny_config, "--out", "run", "prior={type: empirical, source: codes.npy}",
            "model.latent_dim=4"),
        "3 dimensions but the latent size is 4",
    )  # fmt: skip
    assert not (tmp_path / "run").exists()
