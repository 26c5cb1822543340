"""FactorVAE and β-VAE scores and FactorPool sampling: known answers, and cross-checks against loop implementations.

The reference implementations below share no code with ``sculptcli.metrics.intervention``: one vote at a time,
rows found by scanning the factor table, one ``codes_of`` call per vote, drawing the uniforms in the documented
order (per vote: factor, value, rows for FactorVAE; factor, then (first, partner) per pair for β-VAE).

Timing at N=10,000, d=10, K=5 (2 shared CPU cores, default sizes): FactorVAE ≈ 0.1 s, β-VAE ≈ 0.4–0.8 s.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sculptcli.metrics.intervention import FactorPool, betavae_score, factorvae_score

SIZES = (3, 4, 5)
REPEAT = 20  # the full grid repeated: 1,200 rows
SMALL = {"batch_size": 16, "n_train": 200, "n_eval": 100}


def _grid(sizes: tuple[int, ...] = SIZES) -> np.ndarray:
    return np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)


def _factors() -> np.ndarray:
    return np.tile(_grid(), (REPEAT, 1)).astype(float) * 0.5


def _clean(f: np.ndarray) -> np.ndarray:
    """Each latent one factor: permuted order, scaled and offset."""
    return f[:, [2, 0, 1]] * np.array([1.0, -3.0, 0.2]) + np.array([5.0, 0.0, -1.0])


def _noise(f: np.ndarray, d: int = 3, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((len(f), d))


def _codes(f: np.ndarray) -> np.ndarray:
    """Plain factor codes (index of the value among the sorted unique values), by dictionary lookup."""
    out = np.zeros(f.shape, dtype=np.int64)
    for k in range(f.shape[1]):
        index = {v: i for i, v in enumerate(sorted(set(f[:, k].tolist())))}
        out[:, k] = [index[x] for x in f[:, k].tolist()]
    return out


# ---------------------------------------------------------------------------------------------------------------
# plain reference implementations (one vote at a time)


def _members(fi: np.ndarray) -> tuple[list[int], dict[tuple[int, int], list[int]]]:
    """Varying factors, and for each (factor, value) the rows having it in ascending order."""
    varying = [k for k in range(fi.shape[1]) if len(set(fi[:, k].tolist())) > 1]
    members: dict[tuple[int, int], list[int]] = {}
    for r in range(fi.shape[0]):
        for k in range(fi.shape[1]):
            members.setdefault((k, int(fi[r, k])), []).append(r)
    return varying, members


def ref_factorvae(
    codes_of, fi, batch_size, n_train, n_eval, n_var, threshold=0.05, seed=0, buggy=False
) -> tuple[float, np.ndarray]:
    """Returns (eval accuracy, training vote matrix (K, d)); ``buggy`` keeps disentanglement_lib's indexing."""
    rng = np.random.default_rng(seed)
    m, n_fac = fi.shape
    varying, members = _members(fi)
    gvar = np.var(codes_of(rng.integers(0, m, n_var)), axis=0, ddof=1)
    d = len(gvar)
    active = [j for j in range(d) if math.sqrt(gvar[j]) >= threshold]

    def votes(n: int) -> np.ndarray:
        out = np.zeros((n_fac, d), dtype=np.int64)
        for _ in range(n):
            u = rng.random(2 + batch_size)
            k = varying[int(u[0] * len(varying))]
            values = sorted(set(fi[:, k].tolist()))
            rows_k = members[(k, values[int(u[1] * len(values))])]
            rows = [rows_k[int(x * len(rows_k))] for x in u[2:]]
            lv = np.var(codes_of(np.array(rows)), axis=0, ddof=1)
            ratios = [lv[j] / gvar[j] for j in active]
            pos = ratios.index(min(ratios))
            out[k, pos if buggy else active[pos]] += 1
        return out

    train, ev = votes(n_train), votes(n_eval)
    correct = sum(ev[max(range(n_fac), key=lambda k: (train[k, j], -k)), j] for j in range(d))
    return correct / ev.sum(), train


def ref_betavae(codes_of, fi, batch_size, n_train, n_eval, seed=0) -> tuple[float, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = fi.shape[0]
    varying, members = _members(fi)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(n):
            k = varying[int(rng.random() * len(varying))]
            first, second = [], []
            for _b in range(batch_size):
                u = rng.random(2)
                r1 = int(u[0] * m)
                same = members[(k, int(fi[r1, k]))]
                first.append(r1)
                second.append(same[int(u[1] * len(same))])
            z = codes_of(np.array(first + second))
            xs.append(np.abs(z[:batch_size] - z[batch_size:]).mean(axis=0))
            ys.append(k)
        return np.array(xs), np.array(ys)

    x_tr, y_tr = points(n_train)
    x_ev, y_ev = points(n_eval)
    model = LogisticRegression(random_state=seed, max_iter=1000).fit(x_tr, y_tr)
    return float(model.score(x_ev, y_ev)), x_tr


# ---------------------------------------------------------------------------------------------------------------
# known answers


def test_clean_latents_score_one():
    f = _factors()
    pool = FactorPool.from_codes(_clean(f), f)
    fv, s = factorvae_score(pool, **SMALL, n_var=500)
    assert fv == 1.0 and s["train_accuracy"] == 1.0
    assert s["classifier"] == [2, 0, 1]  # latent j carries factor [2, 0, 1][j]
    assert s["vote_matrix_shape"] == [3, 3] and s["num_active_dims"] == 3
    bv, sb = betavae_score(pool, **SMALL)
    assert bv >= 0.95 and sb["train_accuracy"] >= 0.95


def test_noise_latents_near_chance():
    f = _factors()
    pool = FactorPool.from_codes(_noise(f, d=6), f)
    fv, _ = factorvae_score(pool, batch_size=32, n_train=300, n_eval=300, n_var=500)
    assert fv < 0.5  # chance 1/3
    bv, _ = betavae_score(pool, batch_size=32, n_train=300, n_eval=300)
    assert bv < 0.5


def test_one_latent_two_factors_loses_a_factor():
    """z0 = f0 + 10·f1 (f1 dominates its variance), z1 = f2: f0 never gets the least relative variance."""
    f = _factors()
    z = np.stack([f[:, 0] + 10 * f[:, 1], f[:, 2]], 1)
    fv, s = factorvae_score(FactorPool.from_codes(z, f), batch_size=32, n_train=300, n_eval=300, n_var=500)
    assert fv < 0.8  # at most two of three factors can be classified
    assert s["classifier"] == [1, 2]


def test_factorvae_index_bug():
    """A constant (pruned) latent before the informative ones.

    disentanglement_lib's argmin indexes the *active* dimensions, so its votes land one column to the left: the
    pruned latent 0 gets votes and the dimension → factor map is shifted. Train and eval votes share the
    shift, so its accuracy is the same; only the fixed version names the right dimensions.
    """
    f = _factors()
    z = np.concatenate([np.full((len(f), 1), 3.0), _clean(f)], axis=1)
    pool = FactorPool.from_codes(z, f)
    args = {"batch_size": 16, "n_train": 150, "n_eval": 60, "n_var": 300}
    fv, s = factorvae_score(pool, **args)
    assert fv == 1.0
    assert s["active_dims"] == [1, 2, 3]
    votes = np.array(s["train_votes"])
    assert votes[:, 0].sum() == 0  # the pruned latent never votes
    assert s["classifier"][1:] == [2, 0, 1]

    codes_of = lambda rows: z[rows]  # noqa: E731
    fi = _codes(f)
    acc_bug, votes_bug = ref_factorvae(codes_of, fi, args["batch_size"], 150, 60, 300, buggy=True)
    acc_fix, votes_fix = ref_factorvae(codes_of, fi, args["batch_size"], 150, 60, 300, buggy=False)
    assert votes_bug[:, 0].sum() > 0  # the buggy indexing credits the pruned latent
    assert np.argmax(votes_bug[:, :3], axis=0).tolist() == [2, 0, 1]  # shifted one column left
    np.testing.assert_array_equal(votes_fix, votes)
    assert acc_fix == fv == acc_bug


def test_no_active_dimension_scores_zero():
    f = _factors()
    z = np.full((len(f), 2), 1.0) + 1e-4 * _noise(f, d=2)
    fv, s = factorvae_score(FactorPool.from_codes(z, f), **SMALL, n_var=200)
    assert fv == 0.0 and s["num_active_dims"] == 0 and "note" in s


def test_constant_factor_never_chosen_and_all_constant_rejected():
    f = np.concatenate([_factors(), np.full((len(_factors()), 1), 7.0)], axis=1)
    z = np.concatenate([_clean(f[:, :3]), _noise(f, d=1)], axis=1)
    pool = FactorPool.from_codes(z, f)
    assert pool.varying.tolist() == [0, 1, 2]
    fv, s = factorvae_score(pool, **SMALL, n_var=300)
    assert np.array(s["train_votes"])[3].sum() == 0 and s["constant_factors"] == [3]
    assert fv == 1.0
    with pytest.raises(ValueError, match="constant"):
        pool.fixed_factor_rows(3, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="constant"):
        FactorPool(np.zeros((10, 2), dtype=np.int64), lambda rows: np.zeros((len(rows), 1)))


def test_single_varying_factor():
    f = np.stack([np.arange(40) % 4, np.zeros(40)], 1)
    pool = FactorPool.from_codes(np.stack([f[:, 0], np.sin(np.arange(40.0))], 1), f)
    bv, s = betavae_score(pool, batch_size=4, n_train=10, n_eval=5)
    assert bv == 1.0 and "note" in s
    fv, _ = factorvae_score(pool, batch_size=4, n_train=10, n_eval=5, n_var=40)
    assert fv == 1.0


def test_bad_inputs():
    f = _factors()
    pool = FactorPool.from_codes(_clean(f), f)
    with pytest.raises(ValueError, match="batch_size"):
        factorvae_score(pool, batch_size=1)
    with pytest.raises(ValueError, match="n_train"):
        betavae_score(pool, n_train=0)
    with pytest.raises(ValueError, match="integer"):
        FactorPool(np.full((4, 1), 0.5), lambda rows: rows)
    bad = FactorPool(_codes(f), lambda rows: np.zeros((len(rows) + 1, 2)))
    with pytest.raises(ValueError, match="codes_of returned shape"):
        factorvae_score(bad, **SMALL)


# ---------------------------------------------------------------------------------------------------------------
# cross-checks against the loop implementations


@pytest.mark.parametrize("latents", ["clean", "mixed"])
def test_factorvae_matches_loop_reference(latents):
    f = _factors()
    rng = np.random.default_rng(5)
    z = _clean(f) if latents == "clean" else _clean(f) @ rng.standard_normal((3, 4)) + 0.3 * _noise(f, d=4)
    pool = FactorPool.from_codes(z, f)
    fv, s = factorvae_score(pool, batch_size=16, n_train=200, n_eval=100, n_var=300, seed=3)
    ref, ref_votes = ref_factorvae(lambda rows: z[rows], _codes(f), 16, 200, 100, 300, seed=3)
    assert fv == pytest.approx(ref, abs=1e-12)
    np.testing.assert_array_equal(np.array(s["train_votes"]), ref_votes)


@pytest.mark.parametrize("latents", ["clean", "mixed"])
def test_betavae_matches_loop_reference(latents):
    f = _factors()
    rng = np.random.default_rng(6)
    z = _clean(f) if latents == "clean" else _clean(f) @ rng.standard_normal((3, 4)) + 0.5 * _noise(f, d=4)
    pool = FactorPool.from_codes(z, f)
    bv, s = betavae_score(pool, batch_size=8, n_train=200, n_eval=100, seed=4)
    ref, _ = ref_betavae(lambda rows: z[rows], _codes(f), 8, 200, 100, seed=4)
    assert bv == pytest.approx(ref, abs=1e-12)
    assert s["codes_of_calls"] == 2  # 6400 rows per call: 400 points of 16 rows per call


# ---------------------------------------------------------------------------------------------------------------
# FactorPool with a ground-truth generator callback


class FakeGenerator:
    """A full factor grid; rendering + encoding is a fixed nonlinear function of the factor values (call-counted)."""

    def __init__(self) -> None:
        self.table = _grid((3, 4, 5, 2))
        self.calls: list[int] = []

    def codes_of(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(len(rows))
        v = self.table[rows].astype(float)
        return np.stack([np.sin(v[:, 1]) + 2.0, v[:, 3] * 4.0, np.exp(0.3 * v[:, 0]), v[:, 2] ** 2], 1)


def test_generator_pool_rows_share_values():
    gen = FakeGenerator()
    pool = FactorPool(gen.table, gen.codes_of)
    rng = np.random.default_rng(0)
    for k in range(4):
        rows = pool.fixed_factor_rows(k, 50, rng)
        assert len(set(gen.table[rows, k].tolist())) == 1
        assert len(set(rows.tolist())) > 10  # other factors vary
        a, b = pool.paired_rows(k, 50, rng)
        np.testing.assert_array_equal(gen.table[a, k], gen.table[b, k])
        assert (gen.table[a] != gen.table[b]).any()
    r1 = pool.fixed_factor_rows(2, 30, np.random.default_rng(9))
    r2 = pool.fixed_factor_rows(2, 30, np.random.default_rng(9))
    np.testing.assert_array_equal(r1, r2)
    # value uniform over the present values, rows uniform among them
    ks = np.full(4000, 1)
    rows = pool.fixed_from_uniforms(ks, np.random.default_rng(1).random((4000, 2)))[:, 0]
    assert np.bincount(gen.table[rows, 1], minlength=4).min() > 900
    assert np.bincount(gen.table[rows, 0], minlength=3).min() > 1200


def test_generator_pool_scores_and_chunked_calls():
    gen = FakeGenerator()
    pool = FactorPool(gen.table, gen.codes_of)  # 120 rows
    fv, s = factorvae_score(pool, batch_size=64, n_train=300, n_eval=150, n_var=1000, seed=1)
    assert fv == 1.0 and s["classifier"] == [1, 3, 0, 2]
    # variance rows in one call; 100 votes of 64 rows per call: 3 + 2 calls
    assert gen.calls == [1000, 6400, 6400, 6400, 6400, 3200]
    again = factorvae_score(
        FactorPool(gen.table, gen.codes_of), batch_size=64, n_train=300, n_eval=150, n_var=1000, seed=1
    )
    assert again[0] == fv and again[1]["train_votes"] == s["train_votes"]
    other = factorvae_score(pool, batch_size=64, n_train=300, n_eval=150, n_var=1000, seed=2)
    assert other[1]["train_votes"] != s["train_votes"]
    gen.calls.clear()
    bv, sb = betavae_score(pool, batch_size=64, n_train=120, n_eval=60, seed=1)
    assert bv >= 0.95
    assert gen.calls == [6400, 6400, 2560, 6400, 1280]  # 50 points of 2×64 rows per call
    assert sb["codes_of_calls"] == 5
    ref, _ = ref_betavae(gen.codes_of, gen.table, 64, 120, 60, seed=1)
    assert bv == pytest.approx(ref, abs=1e-12)
