"""Intervention-based disentanglement scores (FactorVAE, β-VAE) on batches of observations sharing a factor value.

Both scores need observations drawn *conditionally* on a factor value, so they take a :class:`FactorPool`: the
discrete factor codes of M observations plus a callback ``codes_of(rows)`` returning the codes of the given rows.
The pool may hold already-encoded codes (:meth:`FactorPool.from_codes`) or stand for a ground-truth generator
whose callback renders and encodes the requested rows (the disentanglement_lib setting, where the pool is the
whole factor grid, e.g. dSprites' 737,280 rows).

Sampling (documented, and reproduced by the loop implementations in the tests). All randomness comes from one
``numpy.random.default_rng(seed)``; every choice is made from uniform doubles ``u`` as ``floor(u · n)``:

* a factor is chosen uniformly among the *varying* factors (a factor with a single value in the pool is never
  chosen — holding it fixed is no intervention; a pool whose factors are all constant is rejected);
* ``fixed_factor_rows``: the value of factor k is drawn uniformly among the values present in the pool, then
  the n rows uniformly, *with replacement*, among the rows having that value (on a full factor grid this is
  disentanglement_lib's "sample factors, then overwrite factor k with one shared value");
* ``paired_rows``: the first row of each pair uniformly over the pool, its partner uniformly (with replacement)
  among the rows sharing the first row's value of factor k.

Uniforms are drawn per vote, in vote order: FactorVAE uses ``2 + batch`` per vote (factor, value, rows), β-VAE
``1 + 2·batch`` per point (factor, then per pair first/partner), so chunked draws equal one draw per vote.
Codes are requested in chunks of about ``rows_per_call`` rows (whole votes per call), never one call per vote.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn import linear_model
from sklearn.exceptions import ConvergenceWarning

from sculptcli.metrics.supervised import BINS, MAX_CLASSES, _np, factor_codes

ROWS_PER_CALL = 6400  # 100 FactorVAE votes of 64 rows per codes_of call
SAMPLING = (
    "numpy default_rng(seed) uniforms u, index floor(u*n); factor uniform over varying factors; value uniform "
    "over present values; rows uniform with replacement among rows with that value"
)


def _index(u: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """floor(u · n) for uniforms u in [0, 1), clipped to n − 1 against rounding."""
    n_arr = np.asarray(n, dtype=np.int64)
    return np.minimum(np.floor(u * n_arr).astype(np.int64), n_arr - 1)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class FactorPool:
    """Observations indexed by row, with integer factor codes ``factor_idx`` (M, K) and a code callback.

    ``codes_of(rows)`` takes an int64 array of row indices (n,) and returns their codes (n, d) (numpy or torch).
    Per factor the rows are grouped by value once (a stable argsort), so sampling is vectorised for any M.
    """

    def __init__(
        self,
        factor_idx: Any,
        codes_of: Callable[[np.ndarray], Any],
        rows_per_call: int = ROWS_PER_CALL,
    ) -> None:
        f = _to_numpy(factor_idx)
        if f.ndim == 1:
            f = f[:, None]
        if f.ndim != 2 or f.shape[0] < 1 or f.shape[1] < 1:
            raise ValueError(f"factor_idx must be a (M, K) array with M, K >= 1, got shape {f.shape}")
        integral = np.issubdtype(f.dtype, np.integer) or (np.isfinite(f).all() and np.all(f == np.round(f)))
        if not integral:
            raise ValueError("factor_idx must hold integer factor codes (use factor_codes to discretise)")
        if rows_per_call < 1:
            raise ValueError(f"rows_per_call must be >= 1, got {rows_per_call}")
        self.factor_idx = f.astype(np.int64)
        self.codes_of = codes_of
        self.rows_per_call = int(rows_per_call)
        self.n_rows, self.n_factors = self.factor_idx.shape
        self.extra_settings: dict[str, Any] = {}
        inv_dtype = np.int32 if self.n_rows < 2**31 else np.int64
        self._order = np.empty((self.n_factors, self.n_rows), dtype=np.int64)  # rows sorted by value (stable)
        self._inverse = np.empty((self.n_factors, self.n_rows), dtype=inv_dtype)  # value index of each row
        self._values: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []
        for k in range(self.n_factors):
            values, inverse, counts = np.unique(self.factor_idx[:, k], return_inverse=True, return_counts=True)
            inverse = inverse.reshape(-1)
            self._order[k] = np.argsort(inverse, kind="stable")
            self._inverse[k] = inverse
            self._values.append(values)
            self._counts.append(counts.astype(np.int64))
            self._starts.append(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64))
        self.varying = np.array([k for k in range(self.n_factors) if len(self._values[k]) > 1], dtype=np.int64)
        if len(self.varying) == 0:
            raise ValueError("every factor in the pool is constant: no factor can be intervened on")
        self.n_calls = 0  # codes_of calls made through encode()

    @classmethod
    def from_codes(
        cls,
        codes: Any,
        factors: Any,
        bins: int = BINS,
        max_classes: int = MAX_CLASSES,
        rows_per_call: int = ROWS_PER_CALL,
    ) -> FactorPool:
        """A pool of already-encoded ``codes`` (N, d) with factor values (N, K), discretised with ``factor_codes``."""
        z = _np(codes, "codes")
        fd, s_v = factor_codes(factors, bins, max_classes)
        if fd.shape[0] != z.shape[0]:
            raise ValueError(f"codes and factors need the same number of rows, got {z.shape[0]} and {fd.shape[0]}")
        pool = cls(fd, lambda rows: z[rows], rows_per_call=rows_per_call)
        pool.extra_settings = {"pool": "encoded codes", **s_v}
        return pool

    # ---------------------------------------------------------------------------------------------------------
    # sampling

    def values(self, k: int) -> np.ndarray:
        """The values of factor k present in the pool, sorted."""
        return self._values[k]

    def _check_factor(self, k: int) -> None:
        if not 0 <= k < self.n_factors:
            raise ValueError(f"factor index {k} out of range for {self.n_factors} factors")
        if len(self._values[k]) < 2:
            raise ValueError(f"factor {k} is constant in the pool: it cannot be intervened on")

    def choose_factors(self, u: np.ndarray) -> np.ndarray:
        """Factors chosen uniformly among the varying ones from uniforms ``u``."""
        return self.varying[_index(u, len(self.varying))]

    def fixed_from_uniforms(self, ks: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Rows (V, n) for V votes: vote i fixes factor ks[i]; u[i, 0] picks the value, u[i, 1:] the rows."""
        rows = np.empty((len(ks), u.shape[1] - 1), dtype=np.int64)
        for k in np.unique(ks):
            m = ks == k
            uk = u[m]
            v = _index(uk[:, 0], len(self._values[k]))
            cnt = self._counts[k][v]
            pos = self._starts[k][v][:, None] + _index(uk[:, 1:], cnt[:, None])
            rows[m] = self._order[k][pos]
        return rows

    def paired_from_uniforms(self, ks: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row pairs (V, n) twice: u[i, b, 0] picks the first row of pair b, u[i, b, 1] its partner sharing ks[i]."""
        first = _index(u[..., 0], self.n_rows)
        second = np.empty_like(first)
        for k in np.unique(ks):
            m = ks == k
            v = self._inverse[k][first[m]].astype(np.int64)
            pos = self._starts[k][v] + _index(u[m][..., 1], self._counts[k][v])
            second[m] = self._order[k][pos]
        return first, second

    def fixed_factor_rows(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n rows sharing one value of factor k: value uniform over present values, rows uniform with replacement.

        Draws ``rng.random(1 + n)``.
        """
        self._check_factor(k)
        u = rng.random(1 + n)
        return self.fixed_from_uniforms(np.array([k]), u[None])[0]

    def paired_rows(self, k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two row arrays (n,): pair b shares its value of factor k (first uniform, partner uniform among matches).

        Draws ``rng.random((n, 2))``.
        """
        self._check_factor(k)
        u = rng.random((n, 2))
        first, second = self.paired_from_uniforms(np.array([k]), u[None])
        return first[0], second[0]

    # ---------------------------------------------------------------------------------------------------------
    # encoding

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """Codes (n, d) float64 of ``rows`` in one ``codes_of`` call, shape- and finiteness-checked."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        z = np.asarray(_to_numpy(self.codes_of(rows)), dtype=np.float64)
        self.n_calls += 1
        if z.ndim == 1:
            z = z[:, None]
        if z.ndim != 2 or z.shape[0] != len(rows):
            raise ValueError(f"codes_of returned shape {z.shape} for {len(rows)} rows; expected ({len(rows)}, d)")
        if not np.isfinite(z).all():
            raise ValueError("codes_of returned NaN or infinite values")
        return z

    def encode_chunked(self, rows: np.ndarray) -> np.ndarray:
        """Codes of many rows, ``rows_per_call`` rows per ``codes_of`` call."""
        parts = [self.encode(rows[i : i + self.rows_per_call]) for i in range(0, len(rows), self.rows_per_call)]
        return np.concatenate(parts, axis=0)

    def votes_per_call(self, rows_per_vote: int) -> int:
        return max(1, self.rows_per_call // max(1, rows_per_vote))

    def settings(self) -> dict[str, Any]:
        return {
            "pool_rows": self.n_rows,
            "pool_factors": self.n_factors,
            "factor_values": [len(v) for v in self._values],
            "constant_factors": [k for k in range(self.n_factors) if len(self._values[k]) < 2],
            "rows_per_call": self.rows_per_call,
            "sampling": SAMPLING,
            **self.extra_settings,
        }


def _check_sizes(batch_size: int, **counts: int) -> None:
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    for name, n in counts.items():
        if n < 1:
            raise ValueError(f"{name} must be >= 1, got {n}")


def _factorvae_votes(
    pool: FactorPool,
    n_votes: int,
    batch_size: int,
    rng: np.random.Generator,
    global_var: np.ndarray,
    active_idx: np.ndarray,
) -> np.ndarray:
    """Vote matrix (K, d): votes[k, j] = how often dimension j had the least relative variance with k fixed."""
    d = len(global_var)
    votes = np.zeros((pool.n_factors, d), dtype=np.int64)
    chunk = pool.votes_per_call(batch_size)
    for start in range(0, n_votes, chunk):
        c = min(chunk, n_votes - start)
        u = rng.random((c, 2 + batch_size))
        ks = pool.choose_factors(u[:, 0])
        rows = pool.fixed_from_uniforms(ks, u[:, 1:])
        z = pool.encode(rows.reshape(-1))
        if z.shape[1] != d:
            raise ValueError(f"codes_of returned {z.shape[1]} dimensions, expected {d}")
        local_var = z.reshape(c, batch_size, d).var(axis=1, ddof=1)
        ratio = local_var[:, active_idx] / global_var[active_idx]
        best = active_idx[np.argmin(ratio, axis=1)]  # mapped back to the original dimension (the fixed bug)
        np.add.at(votes, (ks, best), 1)
    return votes


def factorvae_score(
    pool: FactorPool,
    batch_size: int = 64,
    n_train: int = 10_000,
    n_eval: int = 5_000,
    n_var: int = 10_000,
    prune_threshold: float = 0.05,
    seed: int = 0,
) -> tuple[float, dict[str, Any]]:
    """FactorVAE score (Kim & Mnih 2018), disentanglement_lib protocol with the pruned-index bug fixed.

    Global variances σ_j² (ddof=1) from ``n_var`` uniform rows; dimension j is active if σ_j >= prune_threshold.
    Each vote fixes a factor k, encodes ``batch_size`` rows sharing its value and votes (argmin over *active*
    j of Var_j/σ_j², mapped back to the original dimension index, k). A majority-vote classifier (dimension →
    factor it voted for most; a dimension without training votes maps to factor 0, as in disentanglement_lib)
    is built from ``n_train`` votes; the score is its accuracy on ``n_eval`` fresh votes. 0.0 if no dimension
    is active.

    The bug: disentanglement_lib stores the argmin's position *within the active dimensions* as if it were a
    dimension index. Train and eval votes share that relabelling, so the accuracy itself is unchanged, but its
    vote matrix and dimension → factor classifier name the wrong dimensions (a pruned dimension can get votes).
    Here ``settings["train_votes"]``/``["classifier"]`` use the true dimension indices.
    """
    _check_sizes(batch_size, n_train=n_train, n_eval=n_eval, n_var=n_var)
    if n_var < 2:
        raise ValueError(f"n_var must be >= 2, got {n_var}")
    rng = np.random.default_rng(seed)
    calls0 = pool.n_calls
    var_rows = rng.integers(0, pool.n_rows, n_var)
    z_var = pool.encode_chunked(var_rows)
    global_var = z_var.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    active_idx = np.flatnonzero(active)
    d = z_var.shape[1]
    settings: dict[str, Any] = {
        "metric": "factorvae_score",
        "batch_size": batch_size,
        "n_train": n_train,
        "n_eval": n_eval,
        "n_var": n_var,
        "prune_threshold": prune_threshold,
        "prune_rule": "active if sqrt(global variance, ddof=1) >= prune_threshold",
        "seed": seed,
        "rng": "numpy default_rng(seed): variance rows (integers), then train votes, then eval votes",
        "argmin": "over active dimensions, mapped back to original indices (disentanglement_lib bug fixed)",
        "global_variances": global_var.tolist(),
        "active_dims": active_idx.tolist(),
        "num_active_dims": len(active_idx),
        "vote_matrix_shape": [pool.n_factors, d],  # (factors, dimensions), as disentanglement_lib
        **pool.settings(),
    }
    if len(active_idx) == 0:
        settings.update(note="no active dimension: score 0", train_accuracy=0.0, codes_of_calls=pool.n_calls - calls0)
        return 0.0, settings
    train_votes = _factorvae_votes(pool, n_train, batch_size, rng, global_var, active_idx)
    eval_votes = _factorvae_votes(pool, n_eval, batch_size, rng, global_var, active_idx)
    classifier = np.argmax(train_votes, axis=0)  # dimension -> factor
    dims = np.arange(d)
    train_acc = float(train_votes[classifier, dims].sum() / train_votes.sum())
    eval_acc = float(eval_votes[classifier, dims].sum() / eval_votes.sum())
    settings.update(
        train_accuracy=train_acc,
        classifier=classifier.tolist(),
        train_votes=train_votes.tolist(),
        eval_votes=eval_votes.tolist(),
        codes_of_calls=pool.n_calls - calls0,
    )
    return eval_acc, settings


def _betavae_points(
    pool: FactorPool, n_points: int, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, d) = mean over pairs of |z1 − z2| with factor k shared within each pair; labels k."""
    feats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    d: int | None = None
    chunk = pool.votes_per_call(2 * batch_size)
    for start in range(0, n_points, chunk):
        c = min(chunk, n_points - start)
        u = rng.random((c, 1 + 2 * batch_size))
        ks = pool.choose_factors(u[:, 0])
        first, second = pool.paired_from_uniforms(ks, u[:, 1:].reshape(c, batch_size, 2))
        z = pool.encode(np.concatenate([first, second], axis=1).reshape(-1))
        if d is not None and z.shape[1] != d:
            raise ValueError(f"codes_of returned {z.shape[1]} dimensions, expected {d}")
        d = z.shape[1]
        z = z.reshape(c, 2 * batch_size, d)
        feats.append(np.abs(z[:, :batch_size] - z[:, batch_size:]).mean(axis=1))
        labels.append(ks)
    return np.concatenate(feats), np.concatenate(labels)


def betavae_score(
    pool: FactorPool,
    batch_size: int = 64,
    n_train: int = 10_000,
    n_eval: int = 5_000,
    seed: int = 0,
    max_iter: int = 1000,
) -> tuple[float, dict[str, Any]]:
    """β-VAE score (Higgins et al. 2017), disentanglement_lib protocol: eval accuracy of a factor classifier.

    Each point picks a factor k (uniform over varying factors) and ``batch_size`` row pairs sharing their value
    of k; the feature is mean_b |z1_b − z2_b| and the label k. ``LogisticRegression(random_state=seed)`` with
    sklearn defaults except ``max_iter`` (1000 instead of 100, so the fit converges; recorded) is trained on
    ``n_train`` points and scored on ``n_eval``. With a single varying factor every label is the same and the
    score is 1.0 (noted).
    """
    _check_sizes(batch_size, n_train=n_train, n_eval=n_eval)
    rng = np.random.default_rng(seed)
    calls0 = pool.n_calls
    x_tr, y_tr = _betavae_points(pool, n_train, batch_size, rng)
    x_ev, y_ev = _betavae_points(pool, n_eval, batch_size, rng)
    settings: dict[str, Any] = {
        "metric": "betavae_score",
        "batch_size": batch_size,
        "n_train": n_train,
        "n_eval": n_eval,
        "seed": seed,
        "rng": "numpy default_rng(seed): train points, then eval points",
        "feature": "mean over pairs of |z1 - z2|, factor k shared within each pair",
        "classifier": {"name": "LogisticRegression", "random_state": seed, "max_iter": max_iter, "other": "defaults"},
        **pool.settings(),
    }
    if len(np.unique(y_tr)) < 2:
        train_acc, eval_acc = 1.0, float(np.mean(y_ev == y_tr[0]))
        settings["note"] = "a single varying factor: every label is the same"
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = linear_model.LogisticRegression(random_state=seed, max_iter=max_iter).fit(x_tr, y_tr)
        settings["converged"] = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:  # pass on anything but the convergence warning (recorded instead)
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        settings["n_iter"] = int(np.max(model.n_iter_))
        train_acc = float(model.score(x_tr, y_tr))
        eval_acc = float(model.score(x_ev, y_ev))
    settings.update(train_accuracy=train_acc, codes_of_calls=pool.n_calls - calls0)
    return eval_acc, settings
