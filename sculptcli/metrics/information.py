"""Information-based disentanglement scores: InfoMEC (Hsu et al. 2023, QLAE) and the linear disentanglement score.

Pure functions of ``codes`` (N, d) and ``factors`` (N, K), returning ``(value, settings)`` like
``sculptcli.metrics.supervised``. Undefined parts are ``float("nan")`` (documented per function); constant factor
columns are skipped and listed in ``settings["constant_factors"]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import feature_selection, linear_model, metrics, preprocessing
from sklearn.exceptions import ConvergenceWarning

from sculptcli.metrics.supervised import BINS, MAX_CLASSES, _pair, entropies, factor_codes

NAN = float("nan")
DISCRETE_MAX = 32  # latents taking at most this many values are scored as discrete (a quantised model's codes)


def _ratio_score(ratios: np.ndarray, n: int) -> float:
    """(mean ratio − 1/n) / (1 − 1/n): a max/sum ratio rescaled from chance; NaN when n < 2 or no ratios."""
    if n < 2 or len(ratios) == 0:
        return NAN
    return float((np.mean(ratios) - 1.0 / n) / (1.0 - 1.0 / n))


def _max_over_sum(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """max/sum of non-negative ``a`` along ``axis``; where the sum is 0 the ratio is chance, 1/len (flagged)."""
    total = a.sum(axis=axis)
    zero = total <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(zero, 1.0 / a.shape[axis], a.max(axis=axis, initial=0.0) / np.where(zero, 1.0, total))
    return ratio, zero


def _logistic_log_loss(x: np.ndarray, y: np.ndarray, max_iter: int) -> tuple[float, bool]:
    """In-sample log-loss of an unregularised multinomial logistic regression (QLAE's InfoE fit), converged flag."""
    model = linear_model.LogisticRegression(C=np.inf, solver="lbfgs", max_iter=max_iter, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    converged = bool(np.max(model.n_iter_) < max_iter)
    return float(metrics.log_loss(y, model.predict_proba(x), labels=model.classes_)), converged


def _kth_gap(v: np.ndarray, k: int) -> np.ndarray:
    """For sorted 1-D `v`: each point's distance to its k-th nearest other point (the k nearest lie among the k
    on either side)."""
    m = len(v)
    cand = np.full((m, 2 * k), np.inf)
    for j in range(1, k + 1):
        cand[j:, j - 1] = v[j:] - v[:-j]  # the j-th to the left
        cand[:-j, k + j - 1] = v[j:] - v[:-j]  # the j-th to the right
    return np.partition(cand, k - 1, axis=1)[:, k - 1]


def _count_within(s: np.ndarray, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """How many of sorted `s` lie within r of each x, by the test KDTree.query_radius makes: (s − x)² ≤ r²."""
    r2 = r * r
    pad = r * 1e-6 + 1e-300
    lo = np.searchsorted(s, x - r - pad, "left")
    hi = np.searchsorted(s, x + r + pad, "right")
    n = len(s)
    while True:  # the padded window may hold a boundary point or two that the exact test rejects
        out_lo = (lo < hi) & ((s[np.minimum(lo, n - 1)] - x) ** 2 > r2)
        out_hi = (lo < hi) & ((s[np.maximum(hi - 1, 0)] - x) ** 2 > r2)
        if not (out_lo.any() or out_hi.any()):
            return hi - lo
        lo = lo + out_lo
        hi = hi - out_hi


def mutual_info_knn(zs: np.ndarray, labels: np.ndarray, n_neighbors: int = 10, seed: int = 0) -> np.ndarray:
    """I(z_j; s_k) in nats for every latent column j and every factor column k: sklearn's
    ``mutual_info_classif(zs, labels[:, k], discrete_features=False, n_neighbors, random_state=seed)`` (Ross 2014,
    the same scaling, the same seeded 1e-10 noise, clipped at 0), computed with sorted 1-D arrays instead of a
    k-d tree per column and factor: each column is scaled, jittered and sorted once for all factors. (d, K)."""
    from scipy.special import digamma
    from sklearn.preprocessing import scale

    x = scale(np.asarray(zs, dtype=np.float64), with_mean=False)
    rng = np.random.RandomState(seed)  # sklearn's check_random_state(seed): the same draw for every factor
    x += 1e-10 * np.maximum(1, np.mean(np.abs(x), axis=0)) * rng.standard_normal(size=x.shape)
    n, d = x.shape
    out = np.zeros((d, labels.shape[1]))
    classes = [np.unique(labels[:, k], return_inverse=True) for k in range(labels.shape[1])]
    for j in range(d):
        order = np.argsort(x[:, j], kind="stable")
        col = x[order, j]
        for k, (uniq, inv) in enumerate(classes):
            lab = inv[order]
            radius, k_all, counts = np.empty(n), np.zeros(n), np.empty(n)
            for c in range(len(uniq)):
                idx = np.flatnonzero(lab == c)  # positions in `col`, sorted values of class c
                counts[idx] = len(idx)
                if len(idx) > 1:
                    kk = min(n_neighbors, len(idx) - 1)
                    radius[idx] = np.nextafter(_kth_gap(col[idx], kk), 0)
                    k_all[idx] = kk
            keep = counts > 1
            s = col[keep]
            m_all = _count_within(s, s, radius[keep])
            mi = digamma(len(s)) + np.mean(digamma(k_all[keep])) - np.mean(digamma(counts[keep]))
            out[j, k] = max(0.0, float(mi - np.mean(digamma(m_all))))
    return out


def infomec(
    codes: Any,
    factors: Any,
    n_neighbors: int = 10,
    active_frac: float = 1.0 / 20.0,
    max_classes: int = MAX_CLASSES,
    bins: int = BINS,
    seed: int = 0,
    max_iter: int = 100,
    discrete: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    mi_estimator: str = "sorted",
) -> tuple[dict[str, float], dict[str, Any]]:
    """InfoM, InfoC, InfoE (modularity, compactness, explicitness), per QLAE's infomec.py.

    Discrete latents (`discrete`; None: when every latent takes at most DISCRETE_MAX values, as a quantised model's
    codebook values do) follow QLAE's discrete path: latents label-encoded, NMI[k, j] = I(z_j; s_k) / H(s_k) by the
    plug-in `mutual_info_score`, InfoE's inputs one-hot latents; the active rule below is the same for both.
    Continuous latents:

    * Factors → discrete codes with ``factor_codes``; H(s_k) plug-in entropy in nats; constant factors skipped.
    * Latents standardised (``StandardScaler``). NMI[k, j] = I(z_j; s_k) / H(s_k) with
      ``mutual_info_classif(Z, s_k, discrete_features=False, n_neighbors, random_state=seed)``, all latents in
      one call per factor (sklearn adds noise 1e-10·max(1, mean|z_j|)·N(0, 1), seeded; estimates clipped at 0).
      By default (``mi_estimator="sorted"``) the same estimate comes from ``mutual_info_knn`` (sorted 1-D arrays,
      equal to sklearn's to 1e-9, 10–20× faster at n = 10,000); ``mi_estimator="sklearn"`` calls sklearn.
    * Active latents: raw range max−min > active_frac · (largest range). L_a = number active.
    * InfoM = (mean_{j active} max_k NMI/Σ_k NMI − 1/K) / (1 − 1/K); InfoC = (mean_k max_j NMI/Σ_j NMI over
      active j − 1/L_a) / (1 − 1/L_a). A latent (factor) whose NMIs are all 0 gets the chance ratio 1/K (1/L_a).
      InfoM is NaN when K < 2 (one non-constant factor: the chance rescaling divides by zero), InfoC when
      L_a < 2, both when no latent is active.
    * InfoE = mean_k (H_k − CE_k) / H_k: CE_k the in-sample log-loss of ``LogisticRegression(C=inf`` (= the
      paper's ``penalty=None``, deprecated in sklearn 1.8) ``, solver="lbfgs", max_iter=100,
      class_weight="balanced")`` on all standardised latents, H_k the same fit on an all-zero input.

    ``progress(done, total)`` after each factor's MI estimate and each factor's InfoE fits (total 2 × factors).
    """
    z, v = _pair(codes, factors)
    s, s_v = factor_codes(v, bins, max_classes)
    h = entropies(s)
    used = np.flatnonzero(h > 0)
    constant = np.flatnonzero(h <= 0)
    n_lat = z.shape[1]
    if discrete is None:
        discrete = all(len(np.unique(z[:, j])) <= DISCRETE_MAX for j in range(n_lat))
    nmi = np.zeros((len(used), n_lat))
    ranges = z.max(0) - z.min(0)
    if discrete:
        labels = np.stack([np.unique(z[:, j], return_inverse=True)[1] for j in range(n_lat)], 1)
        for i, k in enumerate(used):
            nmi[i] = [metrics.mutual_info_score(s[:, k], labels[:, j]) / h[k] for j in range(n_lat)]
        zs = preprocessing.OneHotEncoder(sparse_output=False).fit_transform(labels)
    else:
        zs = preprocessing.StandardScaler().fit_transform(z)
        if mi_estimator == "sorted":
            nmi[:] = (mutual_info_knn(zs, s[:, used], n_neighbors, seed) / h[used]).T
        elif mi_estimator == "sklearn":
            for i, k in enumerate(used):
                mi = feature_selection.mutual_info_classif(
                    zs, s[:, k], discrete_features=False, n_neighbors=n_neighbors, random_state=seed
                )
                nmi[i] = mi / h[k]
                if progress is not None:
                    progress(i + 1, 2 * len(used))
        else:
            raise ValueError(f"unknown InfoMEC mi_estimator {mi_estimator!r} (sorted or sklearn)")
        if progress is not None:
            progress(len(used), 2 * len(used))
    active = ranges > ranges.max() * active_frac  # the seed rule for continuous and quantised codes alike
    pruned = nmi[:, active]
    n_fac, n_act = len(used), int(active.sum())
    if n_fac and n_act:
        ratio_m, zero_lat = _max_over_sum(pruned, axis=0)
        ratio_c, zero_fac = _max_over_sum(pruned, axis=1)
    else:
        ratio_m, zero_lat = np.zeros(0), np.zeros(0, dtype=bool)
        ratio_c, zero_fac = np.zeros(0), np.zeros(0, dtype=bool)
    infom = _ratio_score(ratio_m, n_fac)
    infoc = _ratio_score(ratio_c, n_act)
    per_e = np.zeros(n_fac)
    not_converged: list[int] = []
    zero_input = np.zeros_like(zs)
    for i, k in enumerate(used):
        ce, ok = _logistic_log_loss(zs, s[:, k], max_iter)
        marginal, ok0 = _logistic_log_loss(zero_input, s[:, k], max_iter)
        per_e[i] = (marginal - ce) / marginal
        if not (ok and ok0):
            not_converged.append(int(k))
        if progress is not None:
            progress(len(used) + i + 1, 2 * len(used))
    infoe = float(per_e.mean()) if n_fac else NAN
    active_idx = np.flatnonzero(active)
    settings = {
        "metric": "infomec",
        "n": z.shape[0],
        **s_v,
        "latents": "discrete (label-encoded)" if discrete else "continuous (standardised)",
        "mi_estimator": "plug-in mutual_info_score per latent"
        if discrete
        else "sklearn mutual_info_classif(discrete_features=False), standardised latents, all latents per call"
        + (" (computed by mutual_info_knn: sorted 1-D arrays)" if mi_estimator == "sorted" else ""),
        "n_neighbors": n_neighbors,
        "random_state": seed,
        "mi_noise": "sklearn adds 1e-10*max(1, mean|z|)*N(0,1) per latent (random_state=seed)",
        "entropy": "plug-in, nats",
        "active_frac": active_frac,
        "active_rule": "raw range max-min > active_frac * largest range",
        "latent_ranges": ranges.tolist(),
        "active_latents": active_idx.tolist(),
        "num_active_latents": n_act,
        "factors_used": used.tolist(),
        "constant_factors": constant.tolist(),
        "factor_entropies": h.tolist(),
        "nmi": nmi.tolist(),  # rows: factors_used, columns: all latents
        "infom_ratios": ratio_m.tolist(),
        "infoc_ratios": ratio_c.tolist(),
        "zero_nmi_latents": active_idx[zero_lat].tolist(),  # given the chance ratio 1/K
        "zero_nmi_factors": used[zero_fac].tolist() if n_act else [],  # given the chance ratio 1/L_a
        "infoe_model": {
            "name": "LogisticRegression",
            "C": "inf (no penalty)",
            "solver": "lbfgs",
            "max_iter": max_iter,
            "class_weight": "balanced",
            "inputs": ("one-hot latents" if discrete else "all standardised latents") + "; marginal: all-zero input",
            "score": "in-sample log-loss",
        },
        "per_factor_infoe": per_e.tolist(),
        "infoe_not_converged": not_converged,
        "undefined": "NaN: InfoM if < 2 factors, InfoC if < 2 active latents, all parts if none",
    }
    return {"m": infom, "c": infoc, "e": infoe}, settings


def lds(codes: Any, factors: Any, normalised: bool = False) -> tuple[float, dict[str, Any]]:
    """Linear disentanglement score: mean_k max_j A_jk / Σ_j A_jk with A_jk = |Pearson corr(z_j, u_k)|.

    Raw factor values (no discretisation). A constant latent has correlation 0 with everything; constant factors
    are skipped (listed); a factor uncorrelated with every latent gets the chance ratio 1/L (listed).
    Raw LDS lies in [1/L, 1] (L latents, the paper's form); ``normalised=True`` gives (LDS − 1/L)/(1 − 1/L)
    (NaN for L = 1). NaN when every factor is constant.
    """
    z, u = _pair(codes, factors)
    zc, uc = z - z.mean(0), u - u.mean(0)
    z_const = np.ptp(z, axis=0) == 0
    u_const = np.ptp(u, axis=0) == 0
    nz = np.where(z_const, 1.0, np.sqrt((zc * zc).sum(0)))
    nu = np.where(u_const, 1.0, np.sqrt((uc * uc).sum(0)))
    a = np.abs(zc.T @ uc) / (nz[:, None] * nu[None, :])
    a[z_const, :] = 0.0
    a[:, u_const] = 0.0
    a = np.clip(a, 0.0, 1.0)
    used = np.flatnonzero(~u_const)
    n_lat = z.shape[1]
    ratios, zero = _max_over_sum(a[:, used], axis=0)
    raw = float(np.mean(ratios)) if len(used) else NAN
    norm = (raw - 1.0 / n_lat) / (1.0 - 1.0 / n_lat) if n_lat > 1 else NAN
    value = norm if normalised else raw
    settings = {
        "metric": "lds",
        "n": z.shape[0],
        "normalised": normalised,
        "form": "(LDS - 1/L)/(1 - 1/L)" if normalised else "raw (paper)",
        "raw": raw,
        "num_latents": n_lat,
        "abs_corr": a.tolist(),
        "per_factor": ratios.tolist(),
        "factors_used": used.tolist(),
        "constant_factors": np.flatnonzero(u_const).tolist(),
        "constant_latents": np.flatnonzero(z_const).tolist(),
        "uncorrelated_factors": used[zero].tolist(),
    }
    return float(value), settings
