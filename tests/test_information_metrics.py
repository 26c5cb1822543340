"""InfoMEC and LDS: known answers, edge cases, and cross-checks against plain loop implementations.

The references below share no code with ``sculptcli.metrics.information``: entropies by counting, standardisation
by hand, the NMI one (factor, latent) pair at a time, correlations with ``np.corrcoef``, ratios in Python loops.
They use the same sklearn estimators (``mutual_info_classif`` per single latent, ``LogisticRegression``).

Timing at N=10,000, d=10, K=5 (2 shared CPU cores): InfoMEC ≈ 5–9 s (mostly the k-NN MI), LDS < 0.01 s.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from sculptcli.metrics.information import infomec, lds

SIZES = (3, 4, 5)


def _factors(repeat: int = 10) -> np.ndarray:
    """The full factor grid (factors exactly uncorrelated), repeated: 600 rows."""
    grid = np.array(list(itertools.product(*[range(s) for s in SIZES])), dtype=float)
    return np.tile(grid, (repeat, 1)) * 0.5


def _clean(f: np.ndarray) -> np.ndarray:
    return f[:, [2, 0, 1]] * np.array([1.0, -3.0, 0.2]) + np.array([5.0, 0.0, -1.0])


def _noise(n: int, d: int = 3, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def _entangled(f: np.ndarray, seed: int = 3) -> np.ndarray:
    """z0 = f0 + 10·f1 (one latent, two factors), z1 = f2, z2 noise."""
    return np.stack([f[:, 0] + 10 * f[:, 1], f[:, 2], np.random.default_rng(seed).standard_normal(len(f))], 1)


# ---------------------------------------------------------------------------------------------------------------
# plain reference implementations


def ref_entropy(col: list) -> float:
    n = len(col)
    return -sum(c / n * math.log(c / n) for c in Counter(col).values())


def ref_infomec(z: np.ndarray, f: np.ndarray, seed: int = 0) -> dict[str, float]:
    n, n_lat = z.shape
    labels = []
    for k in range(f.shape[1]):
        index = {v: i for i, v in enumerate(sorted(set(f[:, k].tolist())))}
        labels.append(np.array([index[x] for x in f[:, k].tolist()]))
    labels = [y for y in labels if len(set(y.tolist())) > 1]
    zs = np.zeros_like(z)
    for j in range(n_lat):
        mean = sum(z[:, j]) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in z[:, j]) / n)
        zs[:, j] = (z[:, j] - mean) / (std if std > 0 else 1.0)
    nmi = [[0.0] * n_lat for _ in labels]
    for k, y in enumerate(labels):
        h = ref_entropy(y.tolist())
        for j in range(n_lat):
            mi = mutual_info_classif(zs[:, j : j + 1], y, discrete_features=False, n_neighbors=10, random_state=seed)
            nmi[k][j] = mi[0] / h
    ranges = [max(z[:, j]) - min(z[:, j]) for j in range(n_lat)]
    active = [j for j in range(n_lat) if ranges[j] > max(ranges) / 20]
    n_fac, n_act = len(labels), len(active)
    m_ratios = []
    for j in active:
        col = [nmi[k][j] for k in range(n_fac)]
        m_ratios.append(max(col) / sum(col) if sum(col) > 0 else 1 / n_fac)
    c_ratios = []
    for k in range(n_fac):
        row = [nmi[k][j] for j in active]
        c_ratios.append(max(row) / sum(row) if sum(row) > 0 else 1 / n_act)
    infom = (sum(m_ratios) / n_act - 1 / n_fac) / (1 - 1 / n_fac)
    infoc = (sum(c_ratios) / n_fac - 1 / n_act) / (1 - 1 / n_act)
    per_e = []
    for y in labels:
        ces = []
        for x in (zs, np.zeros_like(zs)):
            model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=100, class_weight="balanced").fit(x, y)
            ces.append(log_loss(y, model.predict_proba(x)))
        per_e.append((ces[1] - ces[0]) / ces[1])
    return {"m": infom, "c": infoc, "e": sum(per_e) / len(per_e)}


def ref_lds(z: np.ndarray, u: np.ndarray) -> float:
    ratios = []
    for k in range(u.shape[1]):
        if u[:, k].min() == u[:, k].max():
            continue
        col = []
        for j in range(z.shape[1]):
            col.append(0.0 if z[:, j].min() == z[:, j].max() else abs(np.corrcoef(z[:, j], u[:, k])[0, 1]))
        ratios.append(max(col) / sum(col))
    return sum(ratios) / len(ratios)


# ---------------------------------------------------------------------------------------------------------------
# InfoMEC


def test_infomec_clean_latents():
    f = _factors()
    v, s = infomec(_clean(f), f)
    assert v["m"] == pytest.approx(1.0, abs=0.02)
    assert v["c"] == pytest.approx(1.0, abs=0.02)
    assert v["e"] > 0.99
    nmi = np.array(s["nmi"])
    for k, j in [(0, 1), (1, 2), (2, 0)]:  # factor k lives in latent j
        assert nmi[k, j] == pytest.approx(1.0, abs=0.01)
    assert s["active_latents"] == [0, 1, 2] and s["constant_factors"] == []


def test_infomec_noise_latents():
    """Noise: every NMI and InfoE near 0. InfoM/InfoC are max/sum ratios of those near-zero NMIs, scale-free,
    so they are *not* small for pure noise (documented property of the metric, seen below across seeds)."""
    f = _factors()
    v, s = infomec(_noise(len(f)), f)
    assert np.max(s["nmi"]) < 0.05
    assert abs(v["e"]) < 0.02
    ms = [infomec(_noise(len(f), seed=i), f, seed=i)[0]["m"] for i in range(3)]
    assert max(ms) - min(ms) > 0.1  # high variance, unlike the clean case


def test_infomec_two_factors_in_one_latent_lowers_infom():
    f = _factors()
    clean, _ = infomec(_clean(f), f)
    ent, s = infomec(_entangled(f), f)
    assert ent["m"] < clean["m"] - 0.15
    nmi = np.array(s["nmi"])
    assert nmi[0, 0] > 0.9 and nmi[1, 0] > 0.9  # latent 0 carries factors 0 and 1
    assert ent["c"] > 0.95  # each factor still lives in one latent


def test_infomec_matches_loop_reference():
    """Continuous latents (no ties), so per-latent MI calls and the module's all-latent call draw noise that
    cannot change any neighbour count: the two agree to rounding."""
    f = _factors()
    rng = np.random.default_rng(4)
    z = _entangled(f) @ rng.standard_normal((3, 4)) + 0.5 * _noise(len(f), d=4, seed=5)
    z[:, 3] *= 0.04  # an inactive latent (range below 1/20 of the largest)
    v, s = infomec(z, f, seed=7)
    assert 3 not in s["active_latents"] and s["infoe_not_converged"] == []
    ref = ref_infomec(z, f, seed=7)
    for key in "mce":
        assert v[key] == pytest.approx(ref[key], abs=1e-9)


def test_infomec_edge_cases():
    f = _factors()
    # a constant factor is skipped and recorded
    fc = np.concatenate([f, np.full((len(f), 1), 2.0)], axis=1)
    v, s = infomec(_clean(f), fc)
    assert s["constant_factors"] == [3] and s["factors_used"] == [0, 1, 2]
    assert v == pytest.approx(infomec(_clean(f), f)[0], abs=1e-12)
    # one factor: InfoM undefined (chance 1/K = 1)
    v, s = infomec(_clean(f), f[:, :1])
    assert math.isnan(v["m"]) and v["c"] > 0.9 and v["e"] > 0.99
    # one active latent: InfoC undefined
    z = _clean(f) * np.array([1.0, 1e-3, 1e-3])
    v, s = infomec(z, f)
    assert s["active_latents"] == [0] and math.isnan(v["c"]) and not math.isnan(v["m"])
    # every factor constant: all parts undefined
    v, _ = infomec(_clean(f), np.ones((len(f), 2)))
    assert all(math.isnan(x) for x in v.values())


# ---------------------------------------------------------------------------------------------------------------
# LDS


def test_lds_known_answers():
    f = _factors()
    assert lds(_clean(f), f)[0] == pytest.approx(1.0, abs=1e-12)
    val, s = lds(_clean(f), f, normalised=True)
    assert val == pytest.approx(1.0, abs=1e-12) and s["normalised"] and s["raw"] == pytest.approx(1.0)
    # both latents equally correlated with one factor: ratio 1/2
    z = np.stack([f[:, 0], -2 * f[:, 0]], 1)
    assert lds(z, f[:, :1])[0] == pytest.approx(0.5, abs=1e-12)
    assert lds(z, f[:, :1], normalised=True)[0] == pytest.approx(0.0, abs=1e-12)


def test_lds_noise_floor():
    """Noise latents: LDS near E[max/sum] of L iid |N(0, 1)| (correlations ≈ N(0, 1/n)), the noise floor."""
    f = _factors()
    n_lat = 8
    draws = np.abs(np.random.default_rng(0).standard_normal((20000, n_lat)))
    floor = float(np.mean(draws.max(1) / draws.sum(1)))
    vals = [lds(_noise(len(f), d=n_lat, seed=i), f)[0] for i in range(4)]
    assert np.mean(vals) == pytest.approx(floor, abs=0.06)
    assert max(vals) < 0.5 and min(vals) > 1 / n_lat


def test_lds_constant_columns():
    f = np.concatenate([_factors(), np.full((len(_factors()), 1), 1.0)], axis=1)
    z = np.concatenate([np.full((len(f), 1), 0.1), _clean(f[:, :3])], axis=1)  # constant latent first
    val, s = lds(z, f)
    assert val == pytest.approx(1.0, abs=1e-12)
    assert s["constant_factors"] == [3] and s["constant_latents"] == [0]
    assert np.isfinite(np.array(s["abs_corr"])).all() and np.array(s["abs_corr"])[0].max() == 0.0
    assert math.isnan(lds(z, np.ones((len(f), 2)))[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_lds_matches_corrcoef_reference(seed):
    f = _factors()
    rng = np.random.default_rng(seed)
    z = _entangled(f, seed) @ rng.standard_normal((3, 5)) + _noise(len(f), d=5, seed=seed)
    raw, _ = lds(z, f)
    assert raw == pytest.approx(ref_lds(z, f), abs=1e-12)
    norm, _ = lds(z, f, normalised=True)
    assert norm == pytest.approx((ref_lds(z, f) - 1 / 5) / (1 - 1 / 5), abs=1e-12)


def test_sorted_knn_mutual_information_equals_sklearns():
    """InfoMEC's default estimator (sorted 1-D arrays) gives sklearn's mutual_info_classif to rounding, classes of
    one sample and a constant column included, and InfoMEC is the same with either."""
    from sklearn.feature_selection import mutual_info_classif

    from sculptcli.metrics.information import infomec, mutual_info_knn

    rng = np.random.default_rng(5)
    n = 700
    labels = np.stack([rng.integers(0, 6, n), rng.integers(0, 3, n), np.r_[np.zeros(n - 1), 1]], 1)  # a singleton
    z = rng.standard_normal((n, 5))
    z[:, 0] += labels[:, 0]
    z[:, 1] = np.round(z[:, 1], 1)  # many ties (broken by the seeded jitter, as in sklearn)
    z[:, 4] = 1.0  # constant
    for seed in (0, 3):
        ours = mutual_info_knn(z, labels, n_neighbors=10, seed=seed)
        for k in range(labels.shape[1]):
            ref = mutual_info_classif(z, labels[:, k], discrete_features=False, n_neighbors=10, random_state=seed)
            np.testing.assert_allclose(ours[:, k], ref, rtol=0, atol=1e-9)
    a, s_a = infomec(z[:, :4], labels[:, :2])
    b, _ = infomec(z[:, :4], labels[:, :2], mi_estimator="sklearn")
    assert a == pytest.approx(b, abs=1e-9) and "mutual_info_knn" in s_a["mi_estimator"]
