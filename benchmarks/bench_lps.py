"""Benchmark `sculptcli.metrics.lps` against naive per-dimension loops, for every probe, in one run.

    python benchmarks/bench_lps.py [--n 10000 --d 64 --seed 0 --json out.json --probes linear,mlp,lgbm]

Latents with known structure: the first half are independent N(0, 1) (a quarter of all dims are "parents",
a quarter are independent of everything); the other half are each a function of two parents plus 0.1·noise,
cycling through sin(a)·b, a·b, tanh(2a) + 0.5·b² (nonlinear) and 0.6a - 0.8b (linear). Both sides use the
same seeded 80/20 split (`split_indices`) and score held-out R² per dimension.

Naive baselines (what one would write by hand, full library defaults otherwise):
  linear  sklearn LinearRegression per dimension on np.delete(X, i, 1)
  mlp     sklearn MLPRegressor(early_stopping=True) per dimension, with our recipe's hyper-parameters
          (hidden_layer_sizes, learning_rate_init, batch_size, alpha, tol, n_iter_no_change, max_iter,
          validation_fraction) on the training-split-standardised latents
  lgbm    LGBMRegressor() per dimension (default threads), same tree hyper-parameters as ours

Each naive loop is timed twice: with the libraries' default threads (the baseline the targets refer to) and
limited to 1 thread (threadpoolctl for BLAS/OpenMP, n_jobs=1 for LightGBM). On shared cores multi-threaded
BLAS/OpenMP can slow down by 10x or more, which would flatter our speed-ups; the 1-thread row shows that.

Timings are wall-clock of the whole call (ours: `lps(...)`; naive: the loop including np.delete and
scoring); linear is the best of 3 runs (it is milliseconds), mlp and lgbm one run each. The machine's load
average is recorded with every timing: shared cores distort timings, so read them together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sculptcli.metrics.lps import LGBM_DEFAULTS, MLP_DEFAULTS, lps, split_indices  # noqa: E402

TARGETS = {"linear": 50.0, "mlp": 3.0, "lgbm": 3.0}  # required speed-ups
VALUE_TOL = 0.01


def make_latents(n: int, d: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Half independent N(0,1) (the first quarter are parents, the second quarter are never used again);
    the other half are functions of two parents plus 0.1·noise."""
    rng = np.random.default_rng(seed)
    n_ind = max(2, d // 2)
    n_par = max(2, n_ind // 2)
    z = rng.standard_normal((n, d))
    desc = [f"z{i} ~ N(0,1)" + ("" if i < n_par else ", independent of all others") for i in range(n_ind)]
    kinds = [
        ("sin({a})*{b}", lambda a, b: np.sin(a) * b),
        ("{a}*{b}", lambda a, b: a * b),
        ("tanh(2{a})+0.5{b}^2", lambda a, b: np.tanh(2 * a) + 0.5 * b**2),
        ("0.6{a}-0.8{b}", lambda a, b: 0.6 * a - 0.8 * b),
    ]
    for j, i in enumerate(range(n_ind, d)):
        a, b = j % n_par, (j + 1 + j // n_par) % n_par
        name, f = kinds[j % len(kinds)]
        z[:, i] = f(z[:, a], z[:, b]) + 0.1 * rng.standard_normal(n)
        desc.append(f"z{i} = {name.format(a=f'z{a}', b=f'z{b}')} + 0.1 eps")
    return z, desc


def naive_loop(z: np.ndarray, make_model, seed: int, standardise: bool = False) -> list[float]:
    from sklearn.metrics import r2_score

    tr, te = split_indices(len(z), seed=seed)
    if standardise:
        mu, sd = z[tr].mean(0), z[tr].std(0)
        z = (z - mu) / sd
    out = []
    for i in range(z.shape[1]):
        xtr, xte = np.delete(z[tr], i, 1), np.delete(z[te], i, 1)
        model = make_model().fit(xtr, z[tr, i])
        out.append(float(r2_score(z[te, i], model.predict(xte))))
    return out


def timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    load0 = os.getloadavg()[0]
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best, (load0, os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probes", default="linear,mlp,lgbm")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--no-naive-1thread",
        dest="naive_1thread",
        action="store_false",
        help="skip the extra timing of the naive loops limited to 1 thread",
    )
    args = ap.parse_args(argv)

    import lightgbm
    import sklearn
    import torch
    from lightgbm import LGBMRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    z, desc = make_latents(args.n, args.d, args.seed)
    m = MLP_DEFAULTS
    naive = {
        "linear": (lambda: LinearRegression(), False),
        "mlp": (
            lambda: MLPRegressor(
                hidden_layer_sizes=tuple(m["hidden"]),
                learning_rate_init=m["lr"],
                batch_size=m["batch_size"],
                alpha=m["alpha"],
                tol=m["tol"],
                n_iter_no_change=m["patience"],
                max_iter=m["max_epochs"],
                validation_fraction=m["val_frac"],
                early_stopping=True,
                random_state=args.seed,
            ),
            True,
        ),
        "lgbm": (
            lambda: LGBMRegressor(
                n_estimators=LGBM_DEFAULTS["n_estimators"],
                learning_rate=LGBM_DEFAULTS["learning_rate"],
                num_leaves=LGBM_DEFAULTS["num_leaves"],
                random_state=args.seed,
                verbose=-1,
            ),
            False,
        ),
    }

    naive_1thread = {
        "lgbm": lambda: LGBMRegressor(
            n_estimators=LGBM_DEFAULTS["n_estimators"],
            learning_rate=LGBM_DEFAULTS["learning_rate"],
            num_leaves=LGBM_DEFAULTS["num_leaves"],
            random_state=args.seed,
            verbose=-1,
            n_jobs=1,
        )
    }

    env = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
        "machine": platform.platform(),
    }
    print(f"LPS benchmark: N={args.n}, d={args.d}, seed={args.seed}, 80/20 split")
    print("  env: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    n_ind = max(2, args.d // 2)
    n_par = max(2, n_ind // 2)
    print(
        f"  latents: {n_ind} independent N(0,1) (z0..z{n_par - 1} are parents, z{n_par}..z{n_ind - 1} independent "
        f"of all), {args.d - n_ind} = f(two parents) + 0.1 noise, e.g."
    )
    for line in desc[n_ind : n_ind + 4]:
        print(f"    {line}")

    results = {}
    for probe in [p.strip() for p in args.probes.split(",") if p.strip()]:
        repeat = 3 if probe == "linear" else 1
        r, t_ours, load_ours = timed(lambda probe=probe: lps(z, probe, seed=args.seed), repeat)
        make, std = naive[probe]
        ref, t_naive, load_naive = timed(lambda make=make, std=std: naive_loop(z, make, args.seed, std), repeat)
        t_naive1 = load_naive1 = None
        if args.naive_1thread:
            with threadpool_limits(limits=1):
                make1 = naive_1thread.get(probe, make)
                _, t_naive1, load_naive1 = timed(
                    lambda make=make1, std=std: naive_loop(z, make, args.seed, std), repeat
                )
        ref_mean = float(np.mean(ref))
        diff = abs(r.mean - ref_mean)
        per_dim_diff = float(np.max(np.abs(np.array(r.per_dim) - np.array(ref))))
        speed = t_naive / t_ours
        ok_value, ok_speed = diff <= VALUE_TOL, speed >= TARGETS[probe]
        results[probe] = {
            "lps_ours": r.mean,
            "lps_naive": ref_mean,
            "abs_diff": diff,
            "max_abs_diff_per_dim": per_dim_diff,
            "time_ours_s": t_ours,
            "time_naive_s": t_naive,
            "speedup": speed,
            "time_naive_1thread_s": t_naive1,
            "speedup_vs_naive_1thread": None if t_naive1 is None else t_naive1 / t_ours,
            "loadavg_naive_1thread": load_naive1,
            "target_speedup": TARGETS[probe],
            "value_ok": ok_value,
            "speed_ok": ok_speed,
            "repeats": repeat,
            "loadavg_ours": load_ours,
            "loadavg_naive": load_naive,
            "per_dim_ours": r.per_dim,
            "per_dim_naive": ref,
            "settings": r.settings,
        }
        print(
            f"[{probe:6s}] LPS ours {r.mean:+.4f}  naive {ref_mean:+.4f}  |diff| {diff:.4f} "
            f"(max per-dim {per_dim_diff:.4f}) {'OK' if ok_value else 'FAIL'}  |  "
            f"time ours {t_ours:8.3f}s  naive {t_naive:8.3f}s  speed-up {speed:7.1f}x "
            f"(target {TARGETS[probe]:.0f}x) {'OK' if ok_speed else 'MISSED'}  |  "
            f"load {load_ours[0]:.1f}/{load_naive[0]:.1f}",
            flush=True,
        )
        if t_naive1 is not None:
            print(
                f"{'':8s} naive limited to 1 thread: {t_naive1:8.3f}s  speed-up {t_naive1 / t_ours:7.1f}x  "
                f"(load {load_naive1[0]:.1f})",
                flush=True,
            )

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"n": args.n, "d": args.d, "seed": args.seed, "env": env, "latents": desc, "results": results}
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
