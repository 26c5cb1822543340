"""Latent Predictability Score (LPS): how well each latent coordinate is predicted by the others.

From "Sculpting Latent Spaces With MMD" (arXiv 2510.11953). Given latents Z (N, d), for every dimension i
a probe regresses z_i on the other d-1 coordinates z_{-i}. It is fit on a seeded training split and scored
by held-out R² = 1 - Σ(z - ẑ)² / Σ(z - mean_test(z))² on the test split (sklearn ``r2_score`` semantics:
not clipped, it can be negative). LPS is the mean over dimensions. Lower = more independent coordinates.

Probes (all d regressions are done together, not in a Python loop over d):

``linear``  Least squares with intercept for all targets from one matrix: with Σ the (ridge-stabilised)
            covariance of the standardised training split and P = Σ⁻¹, the coefficients for target i are
            β_ij = -P_ij / P_ii, so the test residuals are (Z P)_i / P_ii. float64.
``mlp``     d ReLU MLPs (one hidden layer of 64 by default) trained at once as one batched model in torch:
            model i never sees column i (its first-layer weights from input i are held at zero), so the first
            layer of all d models is a single GEMM; gradients are written out by hand. The recipe mirrors
            sklearn's ``MLPRegressor(early_stopping=True)`` so the two agree: Glorot-uniform init, squared
            loss, L2 penalty 1e-4, Adam (lr 3e-3), minibatch 200, validation R² on 10 % of the training
            split, a dimension stops after 10 epochs without a 1e-4 improvement and keeps its
            best-validation weights; at most 200 epochs. Stopped dimensions leave the batch. Seeded with a
            ``torch.Generator``; runs on the input tensor's device (CUDA if given CUDA), 1 CPU thread.
``lgbm``    LightGBM regressors with ``LGBMRegressor``'s defaults (100 trees, lr 0.1, 31 leaves, 255 histogram
            bins); on wide codes (d > 32) 127 bins (1.6× faster at d = 64; LPS within 0.004 of 255 bins on the
            benchmark's codes; 63 bins moved a trained model's LPS by 0.012, so fewer are not used). The
            training split is binned once; target i copies those bins and is kept out of its own model with
            ``feature_penalty[i] = 0`` (its split gain is multiplied by 0, so it is never chosen: the trees
            equal those of a model trained without the column). Targets run concurrently in a thread pool,
            one LightGBM thread each (LightGBM releases the GIL). Features are fed unstandardised: trees are
            invariant to per-column affine maps. ``early_stopping=R`` (off by default: it moves LPS by
            ~0.008, as the early-stopped trees no longer overfit independent dimensions) holds out a seeded
            ``val_frac`` of the training rows and stops a target after R rounds without a better validation L2.

A constant (zero-variance) dimension in the training or the test split has no defined R²: it is reported as
0.0, listed in ``settings["constant_dims"]``, and (when constant on the training split) not used as a feature.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from sculptcli.errors import UserError, did_you_mean

PROBES: tuple[str, ...] = ("lgbm", "mlp", "linear")  # the registered probes' names, in this order (PROBE_REGISTRY)

MIN_TRAIN = 4  # rows in the training split
MIN_TEST = 2  # rows in the test split (R² needs a variance)

LINEAR_DEFAULTS: dict[str, Any] = {"ridge": 1e-10}

MLP_DEFAULTS: dict[str, Any] = {
    "hidden": (64,),  # hidden layer widths (ReLU)
    "lr": 3e-3,  # Adam learning rate
    "batch_size": 200,
    "max_epochs": 200,
    "patience": 10,  # epochs without a `tol` improvement of validation R² before a dimension stops
    "tol": 1e-4,
    "alpha": 1e-4,  # L2 penalty on weights (sklearn convention: 0.5·alpha·||W||² / batch)
    "val_frac": 0.1,  # part of the training split held out for early stopping
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    # torch intra-op threads while training on CPU (restored afterwards; ignored on CUDA). The batched ops
    # are small, and multi-threaded OpenMP slows down by 10x or more when the cores are shared with other
    # work, so 1 is the robust default.
    "threads": 1,
}

# LGBMRegressor()'s defaults, in LightGBM's own parameter names, but for max_bin.
LGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "num_leaves": 31,
    "max_depth": -1,
    "min_data_in_leaf": 20,
    "min_sum_hessian_in_leaf": 1e-3,
    "min_gain_to_split": 0.0,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
    "feature_fraction": 1.0,
    "lambda_l1": 0.0,
    "lambda_l2": 0.0,
    "max_bin": None,  # None: LGBMRegressor's 255 up to d = LGBM_WIDE_D, 127 above (benchmarks/RESULTS.md §m)
    "bin_construct_sample_cnt": 200000,
}
LGBM_WIDE_D = 32  # above this many dimensions the default histogram has 127 bins instead of 255


def lgbm_bins(d: int) -> int:
    """The default histogram bins for d-dimensional codes: LightGBM's own 255, or 127 on wide codes (where the fits
    cost most; LPS within 0.004 of 255 bins at d = 64, 1.6× faster)."""
    return 255 if d <= LGBM_WIDE_D else 127


# Early stopping (0: off, the full n_estimators trees on the whole training split).
LGBM_STOPPING: dict[str, Any] = {"early_stopping": 0, "val_frac": 0.1}
# Fixed: they make the fit deterministic and single-threaded per target; not user-facing hyper-parameters.
_LGBM_FIXED: dict[str, Any] = {
    "objective": "regression",
    "boosting": "gbdt",
    "verbose": -1,
    "deterministic": True,
    "force_col_wise": True,
}


class LPSError(UserError, ValueError):
    """Bad input to `lps` (a ValueError, and a UserError so the CLI prints it as a short message)."""


@dataclass
class LPSResult:
    probe: str
    mean: float  # LPS = mean of per_dim
    per_dim: list[float]  # held-out R² per dimension
    settings: dict  # everything needed to reproduce the number

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_indices(
    n: int, *, seed: int = 0, test_frac: float = 0.2, max_n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The seeded (train, test) row indices `lps` uses: one permutation shared by all dimensions.

    With `max_n`, at most `max_n` rows are used (the first `max_n` of the permutation). Both index arrays
    are sorted, so rows keep their input order within each split.
    """
    perm = np.random.default_rng(seed).permutation(n)
    if max_n is not None and n > max_n:
        perm = perm[:max_n]
    n_test = int(round(test_frac * len(perm)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def lps(
    z: torch.Tensor | np.ndarray,
    probe: str = "lgbm",
    *,
    seed: int = 0,
    test_frac: float = 0.2,
    max_n: int | None = None,
    **probe_kwargs: Any,
) -> LPSResult:
    """Latent Predictability Score of latents `z` (N, d) with one probe ("lgbm", "mlp" or "linear").

    `probe_kwargs` override the probe's defaults (see LINEAR_DEFAULTS, MLP_DEFAULTS, LGBM_DEFAULTS; for
    lgbm any LightGBM parameter is passed through, plus `n_jobs`, the number of targets fitted at once).
    """
    if probe not in PROBES:
        raise LPSError(
            f"unknown LPS probe {probe!r}.{did_you_mean(probe, PROBES)}",
            fix=f"choose one of: {', '.join(PROBES)}",
        )
    Z = _as_matrix(z)
    n_all, d = Z.shape
    if d < 2:
        raise LPSError(
            f"LPS needs at least 2 latent dimensions (each is predicted from the others), got d={d}",
            fix="use latents with d >= 2",
        )
    if not (isinstance(test_frac, int | float) and 0.0 < test_frac < 1.0):
        raise LPSError(f"test_frac must be in (0, 1), got {test_frac!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise LPSError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    if max_n is not None and (not isinstance(max_n, int) or max_n < 1):
        raise LPSError(f"max_n must be a positive integer or None, got {max_n!r}")
    finite = torch.isfinite(Z)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        r, c = (int(v) for v in bad[0])
        raise LPSError(
            f"latents contain {len(bad)} non-finite value(s) (NaN or inf), first at row {r}, dim {c}",
            fix="remove or fix those rows before scoring",
        )
    tr, te = split_indices(n_all, seed=seed, test_frac=test_frac, max_n=max_n)
    if len(tr) < MIN_TRAIN or len(te) < MIN_TEST:
        raise LPSError(
            f"too few rows for LPS: {n_all} rows (max_n={max_n}) give {len(tr)} training and {len(te)} test rows",
            fix=f"need at least {MIN_TRAIN} training and {MIN_TEST} test rows",
        )

    # Constant dimensions: no R² (test) or no usable feature/target (train).
    ztr, zte = Z[tr], Z[te]
    const_tr = (ztr.amax(0) == ztr.amin(0)).cpu().numpy()
    const_te = (zte.amax(0) == zte.amin(0)).cpu().numpy()
    used = np.flatnonzero(~const_tr)

    per_dim = np.zeros(d)
    settings: dict[str, Any] = {
        "probe": probe,
        "seed": seed,
        "test_frac": test_frac,
        "max_n": max_n,
        "n_rows": int(len(tr) + len(te)),
        "n_train": int(len(tr)),
        "n_test": int(len(te)),
        "d": d,
        "constant_dims": [int(i) for i in np.flatnonzero(const_tr | const_te)],
        "r2": "held-out, sklearn r2_score semantics, not clipped; constant dims reported as 0.0",
    }
    if len(used) >= 2:
        zu = Z[:, torch.as_tensor(used, device=Z.device)]
        r2, info = PROBE_REGISTRY[probe].fit(zu, tr, te, seed, **probe_kwargs)
        per_dim[used] = r2
        settings.update(info)
    else:
        # Nothing to predict from: every probe reduces to predicting the training mean.
        _check_kwargs(probe, probe_kwargs)
        for i in used:
            y_tr = ztr[:, i].double().cpu().numpy()
            y_te = zte[:, i].double().cpu().numpy()
            per_dim[i] = 1.0 - ((y_te - y_tr.mean()) ** 2).sum() / ((y_te - y_te.mean()) ** 2).sum()
        settings["note"] = "fewer than 2 non-constant dimensions: predictions are the training mean"
    per_dim[const_tr | const_te] = 0.0
    settings["versions"] = _versions(probe)
    return LPSResult(probe=probe, mean=float(per_dim.mean()), per_dim=[float(v) for v in per_dim], settings=settings)


# ----------------------------------------------------------------------------------------------- helpers


def _as_matrix(z: Any) -> torch.Tensor:
    if isinstance(z, torch.Tensor):
        t = z.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(z))
        except (TypeError, ValueError) as e:
            raise LPSError(f"latents must be a numeric (N, d) array or tensor: {e}") from None
    if t.ndim != 2:
        raise LPSError(f"latents must be a 2-D (N, d) array, got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise LPSError(f"latents must be real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.double()
    return t


def _versions(probe: str) -> dict[str, str]:
    import sculptcli

    v = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "sculpt": sculptcli.__version__,
    }
    if probe == "lgbm":
        import lightgbm

        v["lightgbm"] = lightgbm.__version__
    return v


def _check_kwargs(probe: str, kwargs: dict[str, Any]) -> None:
    known = PROBE_REGISTRY[probe].options
    if known is None:
        return  # any LightGBM parameter is accepted
    for k in kwargs:
        if k not in known:
            raise LPSError(
                f"unknown option {k!r} for the {probe} LPS probe.{did_you_mean(k, known)}",
                fix=f"options: {', '.join(known)}",
            )


def _r2_cols(y: torch.Tensor, yhat: torch.Tensor) -> torch.Tensor:
    """Column-wise R² (float64), sklearn semantics except that a zero-variance column gives NaN."""
    y, yhat = y.double(), yhat.double()
    ss_res = ((y - yhat) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return 1.0 - ss_res / ss_tot


def _standardise(zu: torch.Tensor, tr: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    x = zu.double()
    xtr = x[torch.as_tensor(tr, device=x.device)]
    mu, sd = xtr.mean(0), xtr.std(0, unbiased=False)
    return ((x - mu) / sd).to(dtype)


# ------------------------------------------------------------------------------------------------ linear


def _linear(zu: torch.Tensor, tr: np.ndarray, te: np.ndarray, **kw: Any) -> tuple[np.ndarray, dict]:
    _check_kwargs("linear", kw)
    cfg = {**LINEAR_DEFAULTS, **kw}
    x = _standardise(zu, tr, torch.float64)
    xtr = x[torch.as_tensor(tr, device=x.device)]
    xte = x[torch.as_tensor(te, device=x.device)]
    k = x.shape[1]
    # Training covariance of standardised columns (a correlation matrix; the training mean is 0, so every
    # least-squares intercept is 0 in these coordinates) plus a tiny ridge.
    cov = xtr.T @ xtr / xtr.shape[0]
    cov.diagonal().add_(float(cfg["ridge"]))
    prec, info = torch.linalg.inv_ex(cov)
    if int(info) != 0 or not bool(torch.isfinite(prec).all()):  # singular (ridge=0 and collinear columns)
        prec = torch.linalg.pinv(cov, hermitian=True)
    # ẑ_i = Σ_{j≠i} -P_ij/P_ii z_j  =>  z_i - ẑ_i = (Z P)_i / P_ii, for all i at once.
    resid = (xte @ prec) / prec.diagonal()
    r2 = 1.0 - (resid**2).sum(0) / ((xte - xte.mean(0)) ** 2).sum(0)
    return r2.cpu().numpy(), {
        "linear": {**cfg, "method": "precision matrix of standardised training split, beta_ij = -P_ij/P_ii"},
        "standardize": "training-split mean/std",
        "device": str(zu.device),
        "dtype": "float64",
        "n_used_dims": k,
    }


# --------------------------------------------------------------------------------------------------- mlp


def _mlp(zu: torch.Tensor, tr: np.ndarray, te: np.ndarray, *, seed: int, **kw: Any) -> tuple[np.ndarray, dict]:
    _check_kwargs("mlp", kw)
    cfg = {**MLP_DEFAULTS, **kw}
    hidden = cfg["hidden"]
    hidden = (int(hidden),) if isinstance(hidden, int | float) else tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise LPSError(f"mlp hidden must be one or more positive layer widths, got {cfg['hidden']!r}")
    cfg["hidden"] = list(hidden)
    if (
        int(cfg["batch_size"]) < 1
        or int(cfg["max_epochs"]) < 1
        or int(cfg["patience"]) < 0
        or float(cfg["lr"]) <= 0
        or not 0.0 < float(cfg["val_frac"]) < 1.0
    ):
        raise LPSError(
            f"bad mlp options: {cfg}", fix="batch_size, max_epochs >= 1; patience >= 0; lr > 0; 0 < val_frac < 1"
        )

    threads = int(cfg["threads"])
    if zu.device.type != "cpu" or threads < 1:
        return _mlp_train(zu, tr, te, seed, cfg, hidden)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _mlp_train(zu, tr, te, seed, cfg, hidden)
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def _mlp_train(
    zu: torch.Tensor, tr: np.ndarray, te: np.ndarray, seed: int, cfg: dict, hidden: tuple[int, ...]
) -> tuple[np.ndarray, dict]:
    bs, max_epochs, patience = int(cfg["batch_size"]), int(cfg["max_epochs"]), int(cfg["patience"])
    lr, tol, alpha = float(cfg["lr"]), float(cfg["tol"]), float(cfg["alpha"])
    b1, b2, eps = float(cfg["beta1"]), float(cfg["beta2"]), float(cfg["eps"])
    dev = zu.device
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    x = _standardise(zu, tr, torch.float32)
    xtr = x[torch.as_tensor(tr, device=dev)]
    xte = x[torch.as_tensor(te, device=dev)]
    n_tr, k = xtr.shape
    n_val = min(max(1, math.ceil(float(cfg["val_frac"]) * n_tr)), n_tr - 1)
    perm = torch.randperm(n_tr, generator=gen, device=dev)
    xval, xfit = xtr[perm[:n_val]], xtr[perm[n_val:]]
    n_fit = xfit.shape[0]
    bs = min(bs, n_fit)

    net = _BatchedMLP(k, hidden, gen, dev)
    sst_val = ((xval - xval.mean(0)) ** 2).sum(0).double()
    best_score = torch.full((k,), -math.inf, dtype=torch.float64, device=dev)
    best_epoch = torch.zeros(k, dtype=torch.long, device=dev)
    stale = torch.zeros(k, dtype=torch.long, device=dev)
    epochs_run = torch.zeros(k, dtype=torch.long, device=dev)
    best = [p.detach().clone() for p in net.params]  # full-size (all k models) best-validation weights
    adam = _Adam(net.params, lr, b1, b2, eps)

    for epoch in range(1, max_epochs + 1):
        order = torch.randperm(n_fit, generator=gen, device=dev)
        for s in range(0, n_fit, bs):
            xb = xfit[order[s : s + bs]]
            adam.step(net.grads(xb, alpha))
        act = net.act
        pv = net.forward(xval)
        score = 1.0 - ((pv - xval[:, act]) ** 2).sum(0).double() / sst_val[act]
        # sklearn's rule: a stale epoch is one that does not beat the best by `tol`; the best weights are
        # kept whenever the score improves at all.
        epochs_run[act] = epoch
        no_gain = score < best_score[act] + tol
        stale[act] = torch.where(no_gain, stale[act] + 1, torch.zeros_like(stale[act]))
        improved = score > best_score[act]
        if bool(improved.any()):
            ids = act[improved]
            best_score[ids] = score[improved]
            best_epoch[ids] = epoch
            sel = improved.nonzero()[:, 0]
            for b, p, ax in zip(best, net.params, net.axes, strict=True):
                b.index_copy_(ax, ids, p.index_select(ax, sel))
        done = stale[act] > patience
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero()[:, 0]
            net.keep(keep)
            adam.keep(net, keep)

    net.load_all(best)
    pred = torch.cat([net.forward(xte[s : s + 2048]) for s in range(0, xte.shape[0], 2048)], 0)
    r2 = _r2_cols(xte, pred)
    return r2.cpu().numpy(), {
        "mlp": {
            **cfg,
            "activation": "relu",
            "init": "glorot-uniform (sklearn)",
            "loss": "0.5*MSE + L2",
            "optimizer": "adam (sklearn variant)",
            "n_fit": int(n_fit),
            "n_val": int(n_val),
            "early_stopping": "per-dim on validation R², best weights restored",
            "best_epoch": best_epoch.tolist(),
            "epochs_run": epochs_run.tolist(),
        },
        "standardize": "training-split mean/std (features and targets)",
        "device": str(dev),
        "dtype": "float32",
        "n_used_dims": k,
    }


class _BatchedMLP:
    """Independent ReLU MLPs; model a predicts column act[a] from all the other columns.

    First layer: W0 (k, A, H0) with W0[act[a], a, :] = 0, so model a ignores its own target; it runs as one
    GEMM (B, k) @ (k, A·H0). Further hidden layers: batched (A, H, H') matmuls. Output layer: (A, H), (A,).
    Only the A still-active models are held (see `keep`). Gradients are written out by hand (no autograd):
    loss per model = 0.5·mean_batch (out - y)² + 0.5·alpha/B·Σ W² (sklearn's squared loss and L2 penalty).
    """

    def __init__(self, k: int, hidden: tuple[int, ...], gen: torch.Generator, dev: torch.device):
        self.k, self.hidden = k, hidden
        self.act = torch.arange(k, device=dev)

        def unif(shape: tuple[int, ...], fan_in: int, fan_out: int) -> torch.Tensor:
            # sklearn's Glorot-uniform init (weights and biases), fan_in = inputs the model really sees.
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            return (torch.rand(shape, generator=gen, device=dev) * 2 - 1) * bound

        sizes = [k - 1, *hidden, 1]
        self.full_mask = 1.0 - torch.eye(k, device=dev)[:, :, None]  # (k_in, k, 1)
        self.mask = self.full_mask
        params = [unif((k, k, hidden[0]), sizes[0], sizes[1]) * self.mask, unif((k, hidden[0]), sizes[0], sizes[1])]
        for l in range(1, len(hidden)):
            params += [
                unif((k, hidden[l - 1], hidden[l]), sizes[l], sizes[l + 1]),
                unif((k, hidden[l]), sizes[l], sizes[l + 1]),
            ]
        params += [unif((k, hidden[-1]), sizes[-2], 1), unif((k,), sizes[-2], 1)]
        self.params = params
        self.axes = [1] + [0] * (len(params) - 1)  # which axis indexes the model

    def _hidden(self, xb: torch.Tensor) -> list[torch.Tensor]:
        """Activations: [(B, A, H0), then (A, B, H_l) for further layers]."""
        ps, n = self.params, xb.shape[0]
        h = torch.addmm(ps[1].reshape(-1), xb, ps[0].reshape(self.k, -1)).relu_().view(n, len(self.act), -1)
        hs = [h]
        for l in range(1, len(self.hidden)):
            prev = h.transpose(0, 1) if l == 1 else h
            h = torch.baddbmm(ps[2 * l + 1][:, None, :], prev, ps[2 * l]).relu_()
            hs.append(h)
        return hs

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        """Predictions (B, A)."""
        h = self._hidden(xb)[-1]
        w, b = self.params[-2], self.params[-1]
        if len(self.hidden) == 1:
            return torch.einsum("bah,ah->ba", h, w) + b
        return torch.einsum("abh,ah->ba", h, w) + b

    def grads(self, xb: torch.Tensor, alpha: float) -> list[torch.Tensor]:
        """Gradients of every model's loss on batch xb (targets are xb's own columns act)."""
        ps, n, L = self.params, xb.shape[0], len(self.hidden)
        hs = self._hidden(xb)
        w_out, b_out = ps[-2], ps[-1]
        decay = alpha / n
        if L == 1:
            h = hs[0]  # (B, A, H)
            err = (torch.einsum("bah,ah->ba", h, w_out) + b_out - xb[:, self.act]) / n  # (B, A)
            g_wout = torch.einsum("bah,ba->ah", h, err).add_(w_out, alpha=decay)
            g_bout = err.sum(0)
            dh = torch.ops.aten.threshold_backward(err[:, :, None] * w_out, h, 0.0)  # (B, A, H0)
            rest: list[torch.Tensor] = []
        else:
            h = hs[-1]  # (A, B, H)
            err = (torch.einsum("abh,ah->ab", h, w_out) + b_out[:, None] - xb[:, self.act].T) / n  # (A, B)
            g_wout = torch.einsum("abh,ab->ah", h, err).add_(w_out, alpha=decay)
            g_bout = err.sum(1)
            dh = torch.ops.aten.threshold_backward(err[:, :, None] * w_out[:, None, :], h, 0.0)  # (A, B, H)
            rest = []
            for l in range(L - 1, 0, -1):
                w = ps[2 * l]
                prev = hs[l - 1].transpose(0, 1) if l == 1 else hs[l - 1]  # (A, B, H_{l-1})
                rest = [torch.baddbmm(w, prev.transpose(1, 2), dh, beta=decay), dh.sum(1), *rest]
                dh = torch.ops.aten.threshold_backward(torch.bmm(dh, w.transpose(1, 2)), prev, 0.0)
            dh = dh.transpose(0, 1)  # (B, A, H0)
        dh0 = dh.reshape(n, -1)
        g_w0 = torch.addmm(ps[0].reshape(self.k, -1), xb.T, dh0, beta=decay).view_as(ps[0]).mul_(self.mask)
        return [g_w0, dh0.sum(0).view_as(ps[1]), *rest, g_wout, g_bout]

    def keep(self, keep: torch.Tensor) -> None:
        """Drop the models not in `keep` (positions among the active ones)."""
        self.params = [p.index_select(ax, keep) for p, ax in zip(self.params, self.axes, strict=True)]
        self.act = self.act[keep]
        self.mask = self.full_mask[:, self.act]

    def load_all(self, full: list[torch.Tensor]) -> None:
        self.params = full
        self.act = torch.arange(self.k, device=self.act.device)
        self.mask = self.full_mask


class _Adam:
    """Adam as sklearn's MLP does it (bias correction folded into the step size, eps not corrected).

    Every model's parameters are independent, so one Adam over the batched tensors is d separate Adams.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, b1: float, b2: float, eps: float):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.params = params

    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        step = self.lr * math.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        torch._foreach_lerp_(self.m, grads, 1 - self.b1)  # m = b1·m + (1-b1)·g
        torch._foreach_mul_(self.v, self.b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-step)

    def keep(self, net: _BatchedMLP, keep: torch.Tensor) -> None:
        self.m = [m.index_select(ax, keep) for m, ax in zip(self.m, net.axes, strict=True)]
        self.v = [v.index_select(ax, keep) for v, ax in zip(self.v, net.axes, strict=True)]
        self.params = net.params


# -------------------------------------------------------------------------------------------------- lgbm


def _n_jobs_default() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _lgbm_fit_predict(
    xtr: np.ndarray,
    xte: np.ndarray,
    params: dict[str, Any],
    rounds: int,
    n_jobs: int,
    *,
    early_stopping: int = 0,
    val_frac: float = 0.1,
    seed: int = 0,
    progress: Any = None,
) -> tuple[np.ndarray, list[int]]:
    """Test-split predictions (n_test, k) of column i from the others, for every column i, by LightGBM, and the
    number of trees each target kept.

    The training split is binned once (`base`); each target's Dataset is a copy of its binned matrix, and the
    target column stays in the feature matrix with feature_penalty 0 (gain × 0: never split on). With
    `early_stopping` > 0, a seeded `val_frac` of the training rows is held out (the same rows for every target),
    the trees are grown on the rest, and a target stops after `early_stopping` rounds without a better validation
    L2; it keeps its best round's trees. `progress(done, total)` is called after each target.
    """
    import threading

    import lightgbm as lgb

    k = xtr.shape[1]
    params = {**params, **_LGBM_FIXED}
    xval = None
    if early_stopping > 0:
        perm = np.random.default_rng(seed).permutation(len(xtr))
        n_val = min(max(1, int(round(val_frac * len(xtr)))), len(xtr) - 1)
        xval, xtr = xtr[np.sort(perm[:n_val])], np.ascontiguousarray(xtr[np.sort(perm[n_val:])])
    base = lgb.Dataset(xtr, params={**params, "num_threads": n_jobs}, free_raw_data=False).construct()
    rows = np.arange(len(xtr), dtype=np.int32)
    out = np.empty((xte.shape[0], k))
    kept = [rounds] * k
    lock = threading.Lock()
    done = [0]

    def fit(i: int) -> None:
        with lock:  # LightGBM's subset of one reference is not thread-safe (a segfault seen); it takes milliseconds
            ds = base.subset(rows, params=params).construct()  # copies the binned matrix: no re-binning per target
            ds.set_label(xtr[:, i])
        pen = [1.0] * k
        pen[i] = 0.0
        p = {**params, "num_threads": 1, "feature_penalty": pen}
        if xval is None:
            booster = lgb.train(p, ds, num_boost_round=rounds)
        else:
            val = lgb.Dataset(xval, label=xval[:, i], reference=ds, params=params)
            booster = lgb.train(
                {**p, "metric": "l2"},
                ds,
                num_boost_round=rounds,
                valid_sets=[val],
                callbacks=[lgb.early_stopping(early_stopping, first_metric_only=True, verbose=False)],
            )
            kept[i] = int(booster.best_iteration) or rounds
        out[:, i] = booster.predict(xte, num_threads=1, num_iteration=kept[i])
        if progress is not None:
            with lock:
                done[0] += 1
                progress(done[0], k)

    if n_jobs <= 1:
        for i in range(k):
            fit(i)
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as ex:
            for f in [ex.submit(fit, i) for i in range(k)]:
                f.result()
    return out, kept


def _lgbm(zu: torch.Tensor, tr: np.ndarray, te: np.ndarray, *, seed: int, **kw: Any) -> tuple[np.ndarray, dict]:
    kw = dict(kw)
    n_jobs = int(kw.pop("n_jobs", 0) or 0)
    progress = kw.pop("progress", None)
    stop = {k: kw.pop(k, v) for k, v in LGBM_STOPPING.items()}
    stopping, val_frac = int(stop["early_stopping"]), float(stop["val_frac"])
    if stopping < 0 or not 0.0 < val_frac < 1.0:
        raise LPSError(f"bad lgbm options: early_stopping={stopping}, val_frac={val_frac}",
                       fix="early_stopping >= 0 (0: off); 0 < val_frac < 1")  # fmt: skip
    params = {**LGBM_DEFAULTS, **kw}
    for alias in ("num_boost_round", "num_iterations", "num_trees", "n_iter"):
        if alias in params:
            params["n_estimators"] = params.pop(alias)
    rounds = int(params.pop("n_estimators"))
    params["seed"] = int(params.pop("random_state", params.get("seed", seed)))
    x = zu.detach().cpu().double().numpy()
    xtr, xte = np.ascontiguousarray(x[tr]), np.ascontiguousarray(x[te])
    k = x.shape[1]
    if params["max_bin"] is None:
        params["max_bin"] = lgbm_bins(k)
    n_jobs = max(1, min(k, n_jobs if n_jobs > 0 else _n_jobs_default()))
    pred, kept = _lgbm_fit_predict(
        xtr, xte, params, rounds, n_jobs, early_stopping=stopping, val_frac=val_frac, seed=seed, progress=progress
    )
    r2 = _r2_cols(torch.from_numpy(xte), torch.from_numpy(pred))
    return r2.numpy(), {
        "lgbm": {
            "n_estimators": rounds,
            **params,
            **_LGBM_FIXED,
            "exclusion": "target column kept with feature_penalty 0 (never split on)",
            "early_stopping": stopping,
            "val_frac": val_frac if stopping else None,
            "trees_kept": kept,
        },
        "n_jobs": n_jobs,
        "standardize": "none (trees are invariant to per-column affine maps)",
        "dtype": "float64",
        "n_used_dims": k,
    }


# ----------------------------------------------------------------------------------------------- the probes, by name


@dataclass(frozen=True)
class Probe:
    """An LPS probe: how it fits every dimension from the others (`fit(z, train_rows, test_rows, seed, **options)`
    → (R² per dimension, settings)), what the score table says of it, and its options (None: any)."""

    name: str
    fit: Any
    meaning: str
    options: dict[str, Any] | None


PROBE_REGISTRY: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe("lgbm", lambda z, tr, te, seed, **kw: _lgbm(z, tr, te, seed=seed, **kw),
              "LightGBM probe (paper's headline)", None),
        Probe("mlp", lambda z, tr, te, seed, **kw: _mlp(z, tr, te, seed=seed, **kw),
              "MLP probe, early-stopped", MLP_DEFAULTS),
        Probe("linear", lambda z, tr, te, seed, **kw: _linear(z, tr, te, **kw),
              "closed-form linear probe", LINEAR_DEFAULTS),
    )
}  # fmt: skip
assert tuple(PROBE_REGISTRY) == PROBES
