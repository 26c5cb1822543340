"""Latent Predictability Score: known answers, cross-checks against plain per-dimension loops, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from sculptcli.metrics.lps import PROBES, LPSResult, _lgbm_fit_predict, lps, split_indices


def _gauss(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def _nonlinear(n: int = 2000, seed: int = 0) -> np.ndarray:
    """z0 = sin(z1)·z2 + 0.05ε: z0 has no linear relation to z1, z2 but is almost determined by them."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    z[:, 0] = np.sin(z[:, 1]) * z[:, 2] + 0.05 * rng.standard_normal(n)
    return z


def _gauss_linear(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Gaussian latents with known R²: z0 = √.8·(z1+z2)/√2 + √.2·ε, so R²(z0) = 0.8; z3 independent (0)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    z[:, 0] = np.sqrt(0.8) * (z[:, 1] + z[:, 2]) / np.sqrt(2) + np.sqrt(0.2) * z[:, 0]
    return z


def _naive(z: np.ndarray, fit_predict, seed: int = 0, test_frac: float = 0.2) -> np.ndarray:
    """Plain per-dimension loop on the same split: held-out r2_score of fit_predict(Xtr, ytr, Xte)."""
    tr, te = split_indices(len(z), seed=seed, test_frac=test_frac)
    out = []
    for i in range(z.shape[1]):
        xtr, xte = np.delete(z[tr], i, 1), np.delete(z[te], i, 1)
        out.append(r2_score(z[te, i], fit_predict(xtr, z[tr, i], xte)))
    return np.array(out)


def _sk_linear(xtr, ytr, xte):
    return LinearRegression().fit(xtr, ytr).predict(xte)


def _sk_lgbm(xtr, ytr, xte):
    import lightgbm as lgb

    return lgb.LGBMRegressor(verbose=-1, n_jobs=1).fit(xtr, ytr).predict(xte)


# ------------------------------------------------------------------------------------------ known answers


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_independent_gaussians_score_near_zero(probe):
    r = lps(_gauss(2000, 6), probe)
    assert abs(r.mean) < 0.05, r.per_dim
    assert len(r.per_dim) == 6 and r.mean == pytest.approx(np.mean(r.per_dim))


def test_independent_gaussians_score_near_zero_lgbm():
    # LightGBM's default probe (100 trees, 31 leaves) overfits pure noise: at N=2000 its held-out R² is
    # about -0.17 per dimension, at N=20000 about -0.02. The known answer needs the larger sample.
    r = lps(_gauss(20000, 4), "lgbm")
    assert abs(r.mean) < 0.05, r.per_dim


def test_nonlinear_dependence_seen_by_lgbm_and_mlp_not_linear():
    z = _nonlinear()
    lin, mlp, gbm = (lps(z, p) for p in ("linear", "mlp", "lgbm"))
    assert gbm.per_dim[0] > 0.8 and mlp.per_dim[0] > 0.8, (gbm.per_dim, mlp.per_dim)
    assert lin.per_dim[0] < 0.1, lin.per_dim  # sin(z1)·z2 is uncorrelated with z1 and z2
    assert max(lin.per_dim) < 0.1
    # z3 is independent of everything: no probe should find it predictable.
    assert max(gbm.per_dim[3], mlp.per_dim[3], lin.per_dim[3]) < 0.05


def test_exact_linear_dependence_gives_r2_one():
    z = _gauss(2000, 5)
    z[:, 0] = z[:, 1] - 2.0 * z[:, 2] + 0.5 * z[:, 3]
    r = lps(z, "linear")
    assert r.per_dim[0] > 1 - 1e-9
    for i in (1, 2, 3):
        assert r.per_dim[i] > 1 - 1e-9  # each of them is also an exact linear function of the others
    assert abs(r.per_dim[4]) < 0.02


def test_r2_can_be_negative():
    # Pure noise, 48 training rows and 29 regressors: least squares overfits badly and the test R² is
    # far below zero; it is reported as is (not clipped), equal to sklearn's r2_score.
    z = _gauss(60, 30, seed=3)
    r = lps(z, "linear")
    assert r.mean < -0.3
    np.testing.assert_allclose(r.per_dim, _naive(z, _sk_linear), atol=1e-6)


def test_r2_negative_when_relation_flips_on_test_split():
    n = 400
    tr, te = split_indices(n)
    z = _gauss(n, 2, seed=1)
    z[tr, 0] = z[tr, 1] + 0.1 * z[tr, 0]
    z[te, 0] = -z[te, 1] + 0.1 * z[te, 0]
    r = lps(z, "linear")
    assert r.per_dim[0] < -2.0 and r.per_dim[1] < -2.0  # ẑ ≈ -z on the test split: R² ≈ -3


def test_d_equal_two_predicts_each_from_the_other():
    z = _gauss(1000, 2)
    z[:, 1] = 0.8 * z[:, 0] + 0.6 * z[:, 1]  # correlation 0.8 → R² ≈ 0.64 both ways
    for probe in PROBES:
        r = lps(z, probe)
        assert all(0.5 < v < 0.75 for v in r.per_dim), (probe, r.per_dim)


# ------------------------------------------------------------------------------------------- cross-checks


def test_linear_matches_sklearn_loop():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((500, 12)) @ rng.standard_normal((12, 12)) + rng.normal(size=12) * 3
    z = z * rng.uniform(0.1, 10, size=12)
    r = lps(z, "linear", seed=2)
    np.testing.assert_allclose(r.per_dim, _naive(z, _sk_linear, seed=2), atol=1e-6)


def test_lgbm_feature_penalty_excludes_the_target_column():
    # Our per-target models keep column i in the (shared, binned-once) feature matrix with
    # feature_penalty[i] = 0; their predictions must equal models trained without column i.
    import lightgbm as lgb

    z = _nonlinear(1500)
    z[:, 3] = z[:, 0] + 0.1 * z[:, 3]  # the target's near-copy exists: a leak would change everything
    tr, te = split_indices(len(z))
    params = {"learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20, "seed": 0}
    ours, kept = _lgbm_fit_predict(z[tr], z[te], params, rounds=30, n_jobs=2)
    assert kept == [30] * z.shape[1]
    for i in range(z.shape[1]):
        m = lgb.LGBMRegressor(n_estimators=30, verbose=-1, n_jobs=1).fit(np.delete(z[tr], i, 1), z[tr, i])
        np.testing.assert_allclose(ours[:, i], m.predict(np.delete(z[te], i, 1)), rtol=0, atol=1e-9)


def test_lgbm_matches_naive_loop():
    z = _nonlinear(2000, seed=1)
    ref = _naive(z, _sk_lgbm, seed=1)  # LGBMRegressor(): 255 bins
    same = lps(z, "lgbm", seed=1)  # the default on narrow codes: LightGBM's own 255 bins, the naive loop's answer
    assert same.settings["lgbm"]["max_bin"] == 255
    np.testing.assert_allclose(same.per_dim, ref, atol=1e-9)


def test_lgbm_wide_codes_use_127_bins_within_001_of_255():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(1500, 8))
    z = np.concatenate([base, np.tanh(base @ rng.normal(size=(8, 28))) + 0.3 * rng.normal(size=(1500, 28))], 1)
    assert z.shape[1] > 32
    r = lps(z, "lgbm", seed=1)
    assert r.settings["lgbm"]["max_bin"] == 127
    ref = lps(z, "lgbm", seed=1, max_bin=255)
    assert abs(r.mean - ref.mean) < 0.01 and r.mean > 0.3  # dependent codes: a real, not a floor, value


def test_lgbm_early_stopping_option_and_progress():
    z = _nonlinear(1500)
    seen = []
    r = lps(z, "lgbm", early_stopping=5, progress=lambda done, total: seen.append((done, total)))
    kept = r.settings["lgbm"]["trees_kept"]
    assert kept[0] > kept[3] and kept[3] < 40  # z3 is independent: its validation loss stops improving at once
    full = lps(z, "lgbm").per_dim[0]  # z0 depends on the others: stopped early, it is still predicted (R² 0.93/0.97)
    assert full > 0.9 and abs(r.per_dim[0] - full) < 0.05 and r.settings["lgbm"]["val_frac"] == 0.1
    assert sorted(seen) == [(i, 4) for i in range(1, 5)]
    assert lps(z, "lgbm", early_stopping=5).per_dim == r.per_dim  # seeded: reproducible
    assert lps(z, "lgbm").settings["lgbm"]["trees_kept"] == [100] * 4
    with pytest.raises(ValueError, match="early_stopping"):
        lps(z, "lgbm", early_stopping=-1)


def test_mlp_matches_sklearn_loop_on_known_r2():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    z = _gauss_linear()
    tr, _ = split_indices(len(z))
    z = (z - z[tr].mean(0)) / z[tr].std(0)  # the naive loop gets the same training-split standardisation

    def sk_mlp(xtr, ytr, xte):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m = MLPRegressor(hidden_layer_sizes=(64,), learning_rate_init=3e-3, early_stopping=True, random_state=0)
            return m.fit(xtr, ytr).predict(xte)

    r = lps(z, "mlp")
    ref = _naive(z, sk_mlp)
    assert abs(r.mean - ref.mean()) < 0.03, (r.per_dim, ref)
    np.testing.assert_allclose(r.per_dim, ref, atol=0.05)
    # and both are near the true values: R²(z0) = 0.8, R²(z3) = 0
    assert r.per_dim[0] == pytest.approx(0.8, abs=0.04)
    assert abs(r.per_dim[3]) < 0.05


# ----------------------------------------------------------------------------------- determinism, inputs


@pytest.mark.parametrize("probe", PROBES)
def test_deterministic_for_a_seed(probe):
    z = _nonlinear(1000)
    a, b = lps(z, probe, seed=7), lps(z, probe, seed=7)
    assert a.per_dim == b.per_dim
    c = lps(z, probe, seed=8)  # another split (and init): other numbers
    assert c.per_dim != a.per_dim


def test_numpy_and_torch_inputs_agree():
    z = _nonlinear(1000).astype(np.float32)
    for probe in ("linear", "mlp"):
        a, b = lps(z, probe), lps(torch.from_numpy(z), probe)
        np.testing.assert_allclose(a.per_dim, b.per_dim, atol=1e-12)
    ints = np.random.default_rng(0).integers(0, 10, size=(500, 3))
    assert np.isfinite(lps(ints, "linear").mean)


def test_split_and_max_n():
    tr, te = split_indices(1000, seed=3, test_frac=0.25)
    assert len(tr) == 750 and len(te) == 250 and not set(tr) & set(te)
    r = lps(_gauss(5000, 3), "linear", max_n=1000, test_frac=0.25)
    assert (r.settings["n_train"], r.settings["n_test"], r.settings["n_rows"]) == (750, 250, 1000)


def test_settings_are_complete_and_json_serialisable():
    z = _nonlinear(800)
    for probe in PROBES:
        r = lps(z, probe, seed=4)
        assert isinstance(r, LPSResult) and r.probe == probe
        s = r.settings
        for key in ("seed", "test_frac", "n_train", "n_test", "versions", "constant_dims", probe):
            assert key in s, (probe, key)
        assert s["seed"] == 4 and s["n_train"] + s["n_test"] == 800
        json.dumps(r.to_dict())
    assert "lightgbm" in lps(z, "lgbm").settings["versions"]
    assert lps(z, "mlp", hidden=16).settings["mlp"]["hidden"] == [16]


def test_constant_dimension_reported_as_zero():
    z = _gauss(1000, 4)
    z[:, 1] = z[:, 0] + 0.1 * z[:, 1]
    with_const = np.insert(z, 2, 3.5, axis=1)
    for probe in ("linear", "lgbm"):
        r, ref = lps(with_const, probe), lps(z, probe)
        assert r.settings["constant_dims"] == [2]
        assert r.per_dim[2] == 0.0
        # the constant carries no information: the other dims score as without it
        np.testing.assert_allclose(np.delete(r.per_dim, 2), ref.per_dim, atol=1e-9)
    assert lps(with_const, "mlp").per_dim[2] == 0.0
    # all constant but one: the remaining one is predicted by its training mean (R² ≤ 0 on test)
    only = np.zeros((200, 3))
    only[:, 0] = _gauss(200, 1)[:, 0]
    r = lps(only, "linear")
    assert r.settings["constant_dims"] == [1, 2] and r.per_dim[1:] == [0.0, 0.0] and r.per_dim[0] <= 0


# ------------------------------------------------------------------------------------------------ errors


def test_errors():
    z = _gauss(200, 3)
    with pytest.raises(ValueError, match="unknown LPS probe 'lgb'.*Did you mean 'lgbm'"):
        lps(z, "lgb")
    with pytest.raises(ValueError, match="at least 2 latent dimensions"):
        lps(z[:, :1], "linear")
    with pytest.raises(ValueError, match="2-D"):
        lps(z[:, 0], "linear")
    with pytest.raises(ValueError, match="too few rows"):
        lps(z[:4], "linear")
    bad = z.copy()
    bad[17, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite.*row 17, dim 2"):
        lps(bad, "mlp")
    bad[17, 2] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        lps(torch.from_numpy(bad), "lgbm")
    with pytest.raises(ValueError, match="test_frac"):
        lps(z, "linear", test_frac=1.0)
    with pytest.raises(ValueError, match="unknown option 'hiden'.*Did you mean 'hidden'"):
        lps(z, "mlp", hiden=32)


# --------------------------------------------------------------------------------------------------- gpu


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mlp_and_linear_run_on_cuda():
    z = torch.from_numpy(_nonlinear(2000)).float()
    for probe in ("linear", "mlp"):
        cpu, gpu = lps(z, probe), lps(z.cuda(), probe)
        assert gpu.settings["device"].startswith("cuda")
        tol = 1e-6 if probe == "linear" else 0.05  # same recipe; other RNG stream / kernels
        np.testing.assert_allclose(gpu.per_dim, cpu.per_dim, atol=tol)
