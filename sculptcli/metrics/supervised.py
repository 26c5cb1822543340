"""Supervised disentanglement metrics (disentanglement_lib protocol) and total-correlation estimates.

Pure functions of ``codes`` (N, d) — the encoder means — and ``factors`` (N, k) factor values, as numpy
arrays or torch tensors. Each returns ``(value, settings)``: ``value`` a float or a dict of floats, and
``settings`` everything needed to reproduce it. Every setting is a keyword argument whose default is the
disentanglement_lib protocol's (seed paper digest §E).

Conventions (disentanglement_lib):

* Codes are discretised column by column into 20 equal-width bins over their empirical range:
  ``np.digitize(z, np.histogram(z, 20)[1][:-1])`` (``_histogram_discretize``), giving codes 1..bins.
* The protocol uses the discrete factor *indices*. Factor columns with at most ``max_classes`` unique
  values are mapped to the index of their value among the sorted unique values (exactly the protocol's
  indices for grid factors such as dSprites'); columns with more unique values (continuous factors) are
  discretised like the codes.
* Mutual information is ``sklearn.metrics.mutual_info_score`` (natural log).
* The protocol draws separate train (10,000) and test (5,000) samples; here one sample is split with a
  seeded permutation, ``test_frac`` = 1/3 by default (the same 2:1 ratio). MIG uses all rows.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from sklearn import ensemble, linear_model, metrics, preprocessing, svm

from sculptcli.stats.mmd import mmd2

BINS = 20
MAX_CLASSES = 64  # factor columns with at most this many unique values are categorical
TEST_FRAC = 1.0 / 3.0  # 10,000 train / 5,000 test in the protocol
ENTROPY_EPS = 1e-11  # added to importances before entropies (DCI)


def _np(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"{name} must be a (N, d) array with N >= 2, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _pair(codes: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    z, v = _np(codes, "codes"), _np(factors, "factors")
    if z.shape[0] != v.shape[0]:
        raise ValueError(f"codes and factors need the same number of rows, got {z.shape[0]} and {v.shape[0]}")
    return z, v


def discretize(x: Any, bins: int = BINS) -> tuple[np.ndarray, dict[str, Any]]:
    """Equal-width histogram discretisation per column: (N, d) -> int codes in 1..bins (``_histogram_discretize``)."""
    a = _np(x, "x")
    out = np.zeros(a.shape, dtype=np.int64)
    for j in range(a.shape[1]):
        out[:, j] = np.digitize(a[:, j], np.histogram(a[:, j], bins)[1][:-1])
    return out, {"discretizer": "histogram", "bins": bins}


def factor_codes(factors: Any, bins: int = BINS, max_classes: int = MAX_CLASSES) -> tuple[np.ndarray, dict[str, Any]]:
    """Discrete factor codes: unique-value indices for categorical columns, else histogram bins."""
    v = _np(factors, "factors")
    out = np.zeros(v.shape, dtype=np.int64)
    binned: list[int] = []
    for k in range(v.shape[1]):
        uniq, inv = np.unique(v[:, k], return_inverse=True)
        if len(uniq) <= max_classes:
            out[:, k] = inv.reshape(-1)
        else:
            out[:, k] = discretize(v[:, k], bins)[0][:, 0]
            binned.append(k)
    return out, {"factor_bins": bins, "max_classes": max_classes, "binned_factors": binned}


def mutual_info_matrix(zd: np.ndarray, vd: np.ndarray) -> np.ndarray:
    """m[j, k] = I(z_j; v_k) in nats between discrete columns (sklearn ``mutual_info_score``)."""
    m = np.zeros((zd.shape[1], vd.shape[1]))
    for j in range(zd.shape[1]):
        for k in range(vd.shape[1]):
            m[j, k] = metrics.mutual_info_score(zd[:, j], vd[:, k])
    return m


def entropies(vd: np.ndarray) -> np.ndarray:
    """H(v_k) in nats of each discrete column (``discrete_entropy``: mutual_info_score(v, v))."""
    return np.array([metrics.mutual_info_score(vd[:, k], vd[:, k]) for k in range(vd.shape[1])])


def split(n: int, test_frac: float = TEST_FRAC, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test row indices (numpy ``default_rng(seed).permutation``); test gets round(n·test_frac)."""
    n_test = int(round(n * test_frac))
    if not 1 <= n_test <= n - 2:
        raise ValueError(f"cannot split {n} rows with test_frac={test_frac}")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_test:], perm[:n_test]


def _split_settings(n: int, tr: np.ndarray, te: np.ndarray, test_frac: float, seed: int) -> dict[str, Any]:
    return {
        "n": n,
        "n_train": len(tr),
        "n_test": len(te),
        "test_frac": test_frac,
        "seed": seed,
        "split": "numpy default_rng(seed).permutation: first n_test rows test",
    }


def mig(codes: Any, factors: Any, bins: int = BINS, max_classes: int = MAX_CLASSES) -> tuple[float, dict[str, Any]]:
    """Mutual Information Gap: mean over factors of (top-1 − top-2 of I(z_j; v_k) over j) / H(v_k), in [0, 1].

    A factor with zero entropy (constant) is skipped and listed in ``settings["constant_factors"]``.
    """
    z, v = _pair(codes, factors)
    if z.shape[1] < 2:
        raise ValueError("MIG needs at least 2 latent dimensions")
    zd, s_z = discretize(z, bins)
    vd, s_v = factor_codes(v, bins, max_classes)
    m = mutual_info_matrix(zd, vd)
    h = entropies(vd)
    top = -np.sort(-m, axis=0)
    ok = h > 0
    gaps = np.zeros(v.shape[1])
    gaps[ok] = (top[0, ok] - top[1, ok]) / h[ok]
    value = float(np.clip(np.mean(gaps[ok]), 0.0, 1.0)) if ok.any() else float("nan")
    settings = {
        "metric": "mig",
        "n": z.shape[0],
        **s_z,
        **s_v,
        "mi": "sklearn mutual_info_score (nats)",
        "constant_factors": [int(k) for k in np.flatnonzero(~ok)],
        "per_factor": gaps.tolist(),
    }
    return value, settings


def sap(
    codes: Any,
    factors: Any,
    continuous_factors: bool = False,
    C: float = 0.01,
    test_frac: float = TEST_FRAC,
    seed: int = 0,
    bins: int = BINS,
    max_classes: int = MAX_CLASSES,
) -> tuple[float, dict[str, Any]]:
    """Separated Attribute Predictability: mean over factors of the gap between the two best single-latent scores.

    Discrete factors (default): score[j, k] = test accuracy of ``LinearSVC(C=0.01, class_weight="balanced")``
    trained on latent j alone to predict the factor code. Continuous factors: score[j, k] = Cov(z_j, v_k)² /
    (Var z_j · Var v_k) on the training split (ddof=1), 0 when Var z_j <= 1e-12.
    """
    z, v = _pair(codes, factors)
    if z.shape[1] < 2:
        raise ValueError("SAP needs at least 2 latent dimensions")
    tr, te = split(z.shape[0], test_frac, seed)
    d, k = z.shape[1], v.shape[1]
    score = np.zeros((d, k))
    settings: dict[str, Any] = {
        "metric": "sap",
        "continuous_factors": continuous_factors,
        **_split_settings(z.shape[0], tr, te, test_frac, seed),
    }
    if continuous_factors:
        zt, vt = z[tr], v[tr]
        zc, vc = zt - zt.mean(0), vt - vt.mean(0)
        denom = len(tr) - 1
        cov = zc.T @ vc / denom
        var_z = (zc * zc).sum(0) / denom
        var_v = (vc * vc).sum(0) / denom
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = cov**2 / (var_z[:, None] * var_v[None, :])
        score = np.where(var_z[:, None] > 1e-12, np.nan_to_num(r2), 0.0)
        settings["score"] = "squared Pearson correlation on the training split (ddof=1)"
    else:
        vd, s_v = factor_codes(v, bins, max_classes)
        settings.update(s_v)
        settings["classifier"] = {"name": "LinearSVC", "C": C, "class_weight": "balanced", "random_state": seed}
        for j in range(d):
            for f in range(k):
                if len(np.unique(vd[tr, f])) < 2:
                    continue  # a single class in training: accuracy 0 (cannot fit)
                clf = svm.LinearSVC(C=C, class_weight="balanced", random_state=seed)
                clf.fit(z[tr, j : j + 1], vd[tr, f])
                score[j, f] = np.mean(clf.predict(z[te, j : j + 1]) == vd[te, f])
    srt = np.sort(score, axis=0)
    value = float(np.mean(srt[-1] - srt[-2]))
    settings["score_matrix"] = score.tolist()
    return value, settings


def dci_from_importance(importance: Any) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(disentanglement, completeness, per-code D_j, per-factor C_k) from an importance matrix R (d codes, k factors).

    D_j = 1 − H_k(P_j·) with P = (R + 1e-11) normalised over factors, weighted by code importance; C_k likewise
    over codes (log base d), weighted by factor importance (disentanglement_lib). Uniform weights when R = 0.
    A score needing a log base of 1 (k = 1 for D, d = 1 for C) is NaN.
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    re = r + ENTROPY_EPS
    p_code = re / re.sum(1, keepdims=True)
    p_fac = re / re.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h_code = -(p_code * np.log(p_code)).sum(1) / math.log(k) if k > 1 else np.full(d, np.nan)
        h_fac = -(p_fac * np.log(p_fac)).sum(0) / math.log(d) if d > 1 else np.full(k, np.nan)
    per_code, per_factor = 1.0 - h_code, 1.0 - h_fac
    w = r if r.sum() > 0 else np.ones_like(r)
    dis = float(np.sum(per_code * w.sum(1) / w.sum()))
    com = float(np.sum(per_factor * w.sum(0) / w.sum()))
    return dis, com, per_code, per_factor


DCI_MODELS: dict[str, str] = {
    "lgbm": "LightGBM histogram gradient boosting, gain importances, factors fitted in parallel (default)",
    "gbt": "sklearn GradientBoostingClassifier() (the disentanglement_lib protocol; slow at large N·d)",
    "rf": "sklearn RandomForestClassifier() (the DCI paper's choice)",
}
# The lgbm backend mirrors GradientBoostingClassifier()'s defaults in LightGBM's names: 100 boosting rounds of
# learning rate 0.1, depth-3 trees (at most 8 leaves), leaves of one sample allowed, no row or column sampling;
# one tree per class per round (softmax) as sklearn's multinomial loss. Histograms: `dci_bins(d)`. The
# importance is sklearn's (the fall in squared error of the residuals at each split, `_residual_importance`), not
# LightGBM's Newton gain G²/H: that gain stays large for the noise-fitting splits of late rounds, where the
# residuals are small, and moved D and C 0.03–0.07 below gbt's on the benchmark's codes.
DCI_LGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "max_depth": 3,
    "num_leaves": 8,
    "min_data_in_leaf": 1,
    "min_sum_hessian_in_leaf": 1e-3,
    "lambda_l2": 0.0,
}
IMPORTANCE_TEXT = {
    "residual": "sklearn's impurity importance (fall in the residuals' squared error) at LightGBM's splits",
    "gain": "LightGBM's total split gain",
}
DCI_NARROW_D = 16  # codes this narrow get near-exact split search (see dci_bins)


def dci_bins(d: int) -> dict[str, int]:
    """LightGBM's histogram for d code dimensions. Narrow codes (d ≤ 16): up to 1,023 bins of single rows, which
    on 1,000 codes is every distinct value (sklearn's exact split search, at a small cost when d is small: D and C
    within 0.011 of gbt's at n = 1,000–10,000, d = 5, where 255 bins of 3+ rows were 0.028 off at n = 1,000).
    Wide codes: LightGBM's own 255 bins (1,023 doubled the time at d = 64 and moved C further from gbt's)."""
    return {"max_bin": 1023, "min_data_in_bin": 1} if d <= DCI_NARROW_D else {"max_bin": 255}
_DCI_LGBM_FIXED: dict[str, Any] = {"verbose": -1, "deterministic": True, "force_col_wise": True, "num_threads": 1}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _LgbmFactor:
    """One factor's LightGBM classifier with the interface `dci` reads: fit, predict, feature_importances_ (total
    split gain per feature, normalised to sum 1 like sklearn's impurity importances)."""

    def __init__(self, seed: int = 0, importance: str = "residual", **params: Any) -> None:
        if importance not in ("residual", "gain"):
            raise ValueError(f"unknown DCI importance {importance!r} (residual or gain)")
        self.params = {**DCI_LGBM_DEFAULTS, **params}
        self.seed, self.importance = seed, importance

    def fit(self, x: np.ndarray, y: np.ndarray) -> _LgbmFactor:
        import lightgbm as lgb

        self.classes_, yi = np.unique(y, return_inverse=True)
        params = dict(self.params)
        rounds = int(params.pop("n_estimators"))
        n_cls = len(self.classes_)
        obj = {"objective": "binary"} if n_cls == 2 else {"objective": "multiclass", "num_class": n_cls}
        ds = lgb.Dataset(x, label=yi.astype(np.float64), params={**params, **_DCI_LGBM_FIXED}, free_raw_data=True)
        self.booster_ = lgb.train({**params, **obj, **_DCI_LGBM_FIXED, "seed": self.seed}, ds, num_boost_round=rounds)
        if self.importance == "gain":
            imp = self.booster_.feature_importance("gain").astype(np.float64)
        else:
            lr, l2 = float(params["learning_rate"]), float(params.get("lambda_l2", 0.0))
            imp = _residual_importance(self.booster_.dump_model(), x.shape[1], lr, l2)
        self.feature_importances_ = imp / imp.sum() if imp.sum() > 0 else imp
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        p = self.booster_.predict(x, num_threads=1)
        idx = (p > 0.5).astype(np.int64) if p.ndim == 1 else p.argmax(1)
        return self.classes_[idx]


def _residual_importance(dump: dict[str, Any], n_features: int, lr: float, l2: float = 0.0) -> np.ndarray:
    """sklearn's impurity importance of LightGBM's trees: per split, G_L²/n_L + G_R²/n_R − G²/n, the fall in the
    squared error of the residuals (the gradients) that GradientBoostingClassifier's trees measure, summed over
    every tree. A leaf's gradient sum is G = −(value − bias)·(H + λ)/lr (its Newton step); the first round's trees
    carry the boost-from-average bias, found from ΣG = 0 at their root (a prior-initialised model's gradients
    sum to 0), later trees none."""
    imp = np.zeros(n_features)
    k = int(dump.get("num_tree_per_iteration", 1))

    def leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node] if "leaf_value" in node else leaves(node["left_child"]) + leaves(node["right_child"])

    def walk(node: dict[str, Any], bias: float) -> tuple[float, float]:
        """(G, n) of the node; adds each split's fall to `imp`."""
        if "leaf_value" in node:  # a tree of one leaf (no split) has no weight: nothing to add
            h = node.get("leaf_weight", 0.0)
            return -(node["leaf_value"] - bias) * (h + l2 * (h > 0)) / lr, float(node.get("leaf_count", 0))
        gl, nl = walk(node["left_child"], bias)
        gr, nr = walk(node["right_child"], bias)
        imp[node["split_feature"]] += gl * gl / nl + gr * gr / nr - (gl + gr) ** 2 / (nl + nr)
        return gl + gr, nl + nr

    for tree in dump["tree_info"]:
        root = tree["tree_structure"]
        bias = 0.0
        if tree["tree_index"] < k and "leaf_value" not in root:
            ls = leaves(root)
            h = sum(leaf["leaf_weight"] for leaf in ls)
            bias = sum(leaf["leaf_value"] * leaf["leaf_weight"] for leaf in ls) / h if h > 0 else 0.0
        walk(root, bias)
    return np.maximum(imp, 0.0)


def dci(
    codes: Any,
    factors: Any,
    model: str = "lgbm",
    model_params: dict[str, Any] | None = None,
    test_frac: float = TEST_FRAC,
    seed: int = 0,
    bins: int = BINS,
    max_classes: int = MAX_CLASSES,
    n_jobs: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """DCI: disentanglement, completeness and informativeness (train/test accuracy).

    Per factor a classifier on all codes predicts the factor code. ``model="lgbm"`` (default): LightGBM gradient
    boosting with GradientBoostingClassifier's defaults (``DCI_LGBM_DEFAULTS``), R[j, k] = total split gain of
    code j normalised per factor; the factors are fitted concurrently, one LightGBM thread each (``n_jobs`` at
    once, 0: one per core), deterministic and seeded, so the answer does not depend on ``n_jobs``.
    ``model="gbt"``: ``GradientBoostingClassifier()`` (sklearn defaults, the protocol); ``model="rf"``:
    ``RandomForestClassifier()`` (the paper's choice); both with ``random_state=seed``. ``model_params``
    overrides constructor arguments. R[j, k] = |feature_importances_[j]|. ``progress(done, k)`` after each factor.
    """
    z, v = _pair(codes, factors)
    if model == "lgbm":
        cls, params = _LgbmFactor, {"seed": seed, **dci_bins(z.shape[1])}
    elif model == "gbt":
        cls, params = ensemble.GradientBoostingClassifier, {"random_state": seed}
    elif model == "rf":
        cls, params = ensemble.RandomForestClassifier, {"random_state": seed, "n_jobs": 1}
    else:
        raise ValueError(f"unknown DCI model {model!r} ({', '.join(DCI_MODELS)})")
    params.update(model_params or {})
    tr, te = split(z.shape[0], test_frac, seed)
    vd, s_v = factor_codes(v, bins, max_classes)
    d, k = z.shape[1], v.shape[1]
    r = np.zeros((d, k))
    acc_tr, acc_te = np.zeros(k), np.zeros(k)
    ztr, zte = np.ascontiguousarray(z[tr]), np.ascontiguousarray(z[te])

    def fit(f: int) -> None:
        y_tr, y_te = vd[tr, f], vd[te, f]
        if len(np.unique(y_tr)) < 2:  # a constant factor: nothing to learn, no importance
            acc_tr[f], acc_te[f] = 1.0, float(np.mean(y_te == y_tr[0]))
        else:
            clf = cls(**params).fit(ztr, y_tr)
            r[:, f] = np.abs(clf.feature_importances_)
            acc_tr[f] = np.mean(clf.predict(ztr) == y_tr)
            acc_te[f] = np.mean(clf.predict(zte) == y_te)
        if progress is not None:
            with lock:
                done[0] += 1
                progress(done[0], k)

    lock, done = threading.Lock(), [0]
    jobs = 1 if model != "lgbm" else max(1, min(k, n_jobs if n_jobs > 0 else _cores()))
    if jobs == 1:
        for f in range(k):
            fit(f)
    else:  # LightGBM releases the GIL while it trains
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            for fut in [ex.submit(fit, f) for f in range(k)]:
                fut.result()
    dis, com, per_code, per_factor = dci_from_importance(r)
    value = {
        "disentanglement": dis,
        "completeness": com,
        "informativeness_train": float(acc_tr.mean()),
        "informativeness_test": float(acc_te.mean()),
    }
    settings = {
        "metric": "dci",
        "model": model,
        "model_class": "lightgbm.train" if model == "lgbm" else cls.__name__,
        "model_params": {**DCI_LGBM_DEFAULTS, **params, **_DCI_LGBM_FIXED} if model == "lgbm" else params,
        **({"importance_type": IMPORTANCE_TEXT[params.get("importance", "residual")], "n_jobs": jobs}
           if model == "lgbm" else {}),
        **_split_settings(z.shape[0], tr, te, test_frac, seed),
        **s_v,
        "entropy_eps": ENTROPY_EPS,
        "importance": r.tolist(),
        "per_code_disentanglement": per_code.tolist(),
        "per_factor_completeness": per_factor.tolist(),
    }
    return value, settings


def modularity_from_mi(mi: Any) -> tuple[float, np.ndarray]:
    """Ridgeway & Mozer modularity from m[j, k]: mean_j 1 − (Σ_k m² − θ²) / (θ²(k − 1)), θ = max_k m; 0 if θ = 0."""
    m2 = np.square(np.asarray(mi, dtype=np.float64))
    k = m2.shape[1]
    if k < 2:
        return float("nan"), np.full(m2.shape[0], np.nan)
    top = m2.max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = 1.0 - (m2.sum(1) - top) / (top * (k - 1))
    per = np.where(top == 0, 0.0, per)
    return float(per.mean()), per


def modularity_explicitness(
    codes: Any,
    factors: Any,
    bins: int = BINS,
    test_frac: float = TEST_FRAC,
    seed: int = 0,
    max_classes: int = MAX_CLASSES,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Modularity (binned MI on the training split) and explicitness (ROC-AUC of a logistic regression).

    Explicitness per factor: codes standardised with training mean/std, ``LogisticRegression()`` (sklearn
    defaults) on all codes, macro ROC-AUC of ``predict_proba`` against one-hot labels (classes from the
    training split; test labels absent from training are dropped from the AUC), averaged over factors.
    """
    z, v = _pair(codes, factors)
    tr, te = split(z.shape[0], test_frac, seed)
    vd, s_v = factor_codes(v, bins, max_classes)
    zd, s_z = discretize(z[tr], bins)
    mi = mutual_info_matrix(zd, vd[tr])
    mod, per_code = modularity_from_mi(mi)
    mean, std = z[tr].mean(0), z[tr].std(0)
    std = np.where(std > 0, std, 1.0)
    ztr, zte = (z[tr] - mean) / std, (z[te] - mean) / std
    k = v.shape[1]
    ex_tr, ex_te = np.full(k, np.nan), np.full(k, np.nan)
    for f in range(k):
        classes = np.unique(vd[tr, f])
        if len(classes) < 2:
            continue
        clf = linear_model.LogisticRegression().fit(ztr, vd[tr, f])
        ex_tr[f] = _auc(vd[tr, f], clf.predict_proba(ztr), classes)
        ex_te[f] = _auc(vd[te, f], clf.predict_proba(zte), classes)
    value = {"modularity": mod, "explicitness_train": _nanmean(ex_tr), "explicitness_test": _nanmean(ex_te)}
    settings = {
        "metric": "modularity_explicitness",
        **_split_settings(z.shape[0], tr, te, test_frac, seed),
        **s_z,
        **s_v,
        "explicitness_model": "LogisticRegression() on standardised codes, macro ROC-AUC",
        "mi": mi.tolist(),
        "per_code_modularity": per_code.tolist(),
        "per_factor_explicitness_test": ex_te.tolist(),
    }
    return value, settings


def _nanmean(a: np.ndarray) -> float:
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def _auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    onehot = preprocessing.label_binarize(y, classes=classes)
    if len(classes) == 2:  # label_binarize gives one column for two classes
        onehot = np.hstack([1 - onehot, onehot])
    keep = (onehot.sum(0) > 0) & (onehot.sum(0) < len(y))  # AUC needs both labels present per class
    if not keep.any():
        return float("nan")
    return float(metrics.roc_auc_score(onehot[:, keep], proba[:, keep], average="macro"))


def tc_gaussian(codes: Any, ddof: int = 1) -> tuple[float, dict[str, Any]]:
    """Gaussian total correlation 0.5·(Σ_j log Σ_jj − log det Σ) of the code covariance Σ (np.cov, ddof=1), nats."""
    z = _np(codes, "codes")
    cov = np.atleast_2d(np.cov(z, rowvar=False, ddof=ddof))
    sign, logdet = np.linalg.slogdet(cov)
    diag = np.diag(cov)
    singular = bool(sign <= 0 or (diag <= 0).any())  # infinite Gaussian TC
    value = float("inf") if singular else float(0.5 * (np.sum(np.log(diag)) - logdet))
    return value, {"metric": "tc_gaussian", "n": z.shape[0], "ddof": ddof, "singular": singular}


def tc_mmd(
    codes: Any,
    seed: int = 0,
    n: int = 2000,
    kernel: str = "rbf",
    scales: tuple[float, ...] = (0.5, 1.0, 2.0),
    estimator: str = "biased",
) -> tuple[float, dict[str, Any]]:
    """MMD²(q(z), Π_j q(z_j)): codes against a copy with every column permuted independently (seeded).

    Uses ``mmd2`` (the paper's kernel: RBFs at 0.5, 1, 2 × the pooled median distance) on a seeded subsample
    of at most ``n`` rows. Near 0 for independent coordinates.
    """
    z = _np(codes, "codes")
    rng = np.random.default_rng(seed)
    rows = rng.permutation(z.shape[0])[:n] if z.shape[0] > n else np.arange(z.shape[0])
    x = z[rows]
    y = np.stack([x[rng.permutation(len(x)), j] for j in range(x.shape[1])], axis=1)
    val = mmd2(torch.from_numpy(x), torch.from_numpy(y), kernel=kernel, scales=scales, estimator=estimator)
    settings = {
        "metric": "tc_mmd",
        "n": len(x),
        "max_n": n,
        "seed": seed,
        "kernel": kernel,
        "scales": list(scales),
        "bandwidth": "median",
        "estimator": estimator,
        "permutation": "numpy default_rng(seed): row subsample, then one permutation per column",
    }
    return float(val), settings
