"""How the default score's cost grows with the code's size: every metric's seconds at d × n, and the old backends.

    python -m benchmarks.bench_score_scale [--ns 1000,10000] [--ds 5,64,192] [--json out.json] [--figure out.png]
                                           [--old 1000x5,1000x64,1000x192,10000x5] [--naive-lps 10000x64]

Codes with known structure (`make_codes`): 4 grid factors of 3, 5, 8 and 12 values, each written into its own
latent (its centred index scaled to a range of 3.4, plus 0.15·N(0, 1) noise, so the 12-valued factor's classes
overlap); of the other d − 4 latents half are independent N(0, 1) and half are a function of two of those (sin(a)·b,
a·b or 0.6a − 0.8b) plus 0.1 noise. So DCI's and MIG's answer is known (one factor per latent) and LPS sees both
independent and predictable latents.

Per grid point the default metric set (`all`, as `sculpt score --latents` runs it: no model, so the image and
prior metrics are null at no cost) runs through `run_metrics`, with every metric named so none is skipped; each
metric's seconds come from the report (`settings.seconds`), LPS's per probe. How each cost grows: the least-squares
slope of log seconds on log n and log d over the grid (t ∝ n^a · d^b).

Old against new, side by side in this one run, at the `--old` points: DCI with sklearn's GradientBoostingClassifier
(`gbt`, the old default) against LightGBM (`lgbm`, the new default) — seconds and the differences of D, C, I; and
LPS-lgbm with 255 histogram bins against the default (255 up to d = 32, 127 above) — seconds and the LPS
difference. `--naive-lps`: LPS against the naive loop of `bench_lps` (`LGBMRegressor()` per dimension, default
threads) at that point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from sculptcli.metrics import SETS, ScoreInput
from sculptcli.metrics.lps import lps, split_indices
from sculptcli.metrics.supervised import dci
from sculptcli.scoring import run_metrics

SIZES = (3, 5, 8, 12)  # factor grid sizes
OPTIONS = {"probes": ["lgbm", "mlp", "linear"], "test_frac": 0.2, "dci_model": "lgbm", "bins": 20}


def make_codes(n: int, d: int, seed: int = 0, noise: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, d) float32, factors (n, 4) float32): factor j in latent j, the rest independent or predictable."""
    if d < len(SIZES) + 1:
        raise ValueError(f"d must be at least {len(SIZES) + 1}")
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, s, n) for s in SIZES], 1)
    z = rng.standard_normal((n, d))
    for j, s in enumerate(SIZES):
        z[:, j] = ((f[:, j] + 0.5) / s - 0.5) * 3.4 + noise * rng.standard_normal(n)
    rest = list(range(len(SIZES), d))
    parents = rest[: max(1, len(rest) // 2)]
    for j, i in enumerate(rest[len(parents) :]):
        a, b = z[:, parents[j % len(parents)]], z[:, parents[(j + 1) % len(parents)]]
        base = (np.sin(a) * b, a * b, 0.6 * a - 0.8 * b)[j % 3]
        z[:, i] = base + 0.1 * rng.standard_normal(n)
    return z.astype(np.float32), f.astype(np.float32)


def machine() -> dict[str, str]:
    model = platform.processor() or "cpu"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    import lightgbm
    import sklearn

    return {
        "cpu": model,
        "cores": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightgbm": lightgbm.__version__,
        "sklearn": sklearn.__version__,
    }


def _points(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (p.split("x") for p in text.split(",") if p.strip())]


def score_point(n: int, d: int) -> dict:
    z, f = make_codes(n, d)
    names = [m for m in SETS["all"]]  # named one by one: nothing is skipped, every cost is measured
    inp = ScoreInput(latents=torch.from_numpy(z), factors=torch.from_numpy(f), seed=0, options=dict(OPTIONS))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    report = run_metrics(inp, names)
    total = time.perf_counter() - t0
    secs = {k: v for k, v in report["settings"]["seconds"].items()}
    for probe in OPTIONS["probes"]:
        secs[f"lps-{probe}"] = report["settings"]["lps"][probe]["seconds"]
    return {"n": n, "d": d, "seconds": secs, "total": total, "load": [load0, os.getloadavg()[0]]}


def old_vs_new(n: int, d: int) -> dict:
    z, f = make_codes(n, d)
    out: dict = {"n": n, "d": d, "load": os.getloadavg()[0]}
    t0 = time.perf_counter()
    new, _ = dci(z, f, model="lgbm")
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    old, _ = dci(z, f, model="gbt")
    t_old = time.perf_counter() - t0
    keys = {"D": "disentanglement", "C": "completeness", "I": "informativeness_test"}
    out["dci"] = {
        "seconds_gbt": t_old,
        "seconds_lgbm": t_new,
        "speedup": t_old / t_new,
        "gbt": {k: old[v] for k, v in keys.items()},
        "lgbm": {k: new[v] for k, v in keys.items()},
        "diff": {k: new[v] - old[v] for k, v in keys.items()},
    }
    t0 = time.perf_counter()
    rdef = lps(z, "lgbm")  # the default bins: 255 up to d = 32, 127 above
    tdef = time.perf_counter() - t0
    t0 = time.perf_counter()
    r255 = lps(z, "lgbm", max_bin=255)
    t255 = time.perf_counter() - t0
    out["lps_lgbm"] = {
        "default_bins": rdef.settings["lgbm"]["max_bin"],
        "seconds_255_bins": t255,
        "seconds_default_bins": tdef,
        "speedup": t255 / tdef,
        "lps_255": r255.mean,
        "lps_default": rdef.mean,
        "diff": rdef.mean - r255.mean,
    }
    return out


def naive_lps(n: int, d: int) -> dict:
    """LPS-lgbm (ours) against LGBMRegressor() fitted per dimension with default threads (bench_lps's naive loop)."""
    from lightgbm import LGBMRegressor
    from sklearn.metrics import r2_score

    z, _ = make_codes(n, d)
    z = z.astype(np.float64)
    t0 = time.perf_counter()
    ours = lps(z, "lgbm")
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr, te = split_indices(n)
    ref = []
    for i in range(d):
        m = LGBMRegressor(random_state=0, verbose=-1).fit(np.delete(z[tr], i, 1), z[tr, i])
        ref.append(float(r2_score(z[te, i], m.predict(np.delete(z[te], i, 1)))))
    t_naive = time.perf_counter() - t0
    lps_naive = float(np.mean(ref))
    return {"n": n, "d": d, "seconds_ours": t_ours, "seconds_naive": t_naive, "speedup": t_naive / t_ours,
            "lps_ours": ours.mean, "lps_naive": lps_naive, "diff": ours.mean - lps_naive}  # fmt: skip


def growth(points: list[dict], metric: str) -> dict[str, float] | None:
    """Least-squares exponents (a, b) of t ≈ c·n^a·d^b over the grid points (timings under 5 ms left out)."""
    rows = [(p["n"], p["d"], p["seconds"][metric]) for p in points if p["seconds"].get(metric, 0) >= 0.005]
    if len(rows) < 3 or len({r[0] for r in rows}) < 2 or len({r[1] for r in rows}) < 2:
        return None
    a = np.array([[1.0, np.log(r[0]), np.log(r[1])] for r in rows])
    coef, *_ = np.linalg.lstsq(a, np.log([r[2] for r in rows]), rcond=None)
    return {"n": float(coef[1]), "d": float(coef[2])}


def figure(points: list[dict], path: Path, metrics: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({p["n"] for p in points})
    fig, axes = plt.subplots(1, len(ns), figsize=(5.5 * len(ns), 4.5), sharey=True, squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        pts = sorted((p for p in points if p["n"] == n), key=lambda p: p["d"])
        for m in metrics:
            ds = [p["d"] for p in pts if p["seconds"].get(m, 0) > 0]
            ts = [p["seconds"][m] for p in pts if p["seconds"].get(m, 0) > 0]
            if ts:
                ax.plot(ds, ts, marker="o", label=m)
        ax.plot([p["d"] for p in pts], [p["total"] for p in pts], "k--", marker="s", label="total")
        ax.axhline(60, color="red", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("code dimensions d")
        ax.set_title(f"n = {n:,}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("seconds (2 shared cores)")
    axes[0][-1].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle("sculpt score: seconds per metric (the default set, every metric named)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _save(path: Path | None, out: dict) -> None:
    """Write what is measured so far (a long run that dies keeps its finished points)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="1000,10000")
    ap.add_argument("--ds", default="5,64,192")
    ap.add_argument("--old", default="1000x5,1000x64,1000x192,10000x5", help="points (NxD) timing the old backends")
    ap.add_argument("--naive-lps", default="10000x64", help="points (NxD) timing the naive LPS-lgbm loop")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args(argv)
    out: dict = {"machine": machine(), "points": [], "old_vs_new": [], "naive_lps": []}
    print(json.dumps(out["machine"]), flush=True)
    for n in (int(x) for x in args.ns.split(",")):
        for d in (int(x) for x in args.ds.split(",")):
            p = score_point(n, d)
            out["points"].append(p)
            slow = ", ".join(f"{k} {v:.1f}" for k, v in sorted(p["seconds"].items(), key=lambda kv: -kv[1])[:6])
            _save(args.json, out)
            print(f"n={n} d={d}: total {p['total']:.1f} s (load {p['load'][0]:.1f}) · {slow}", flush=True)
    for n, d in _points(args.old):
        r = old_vs_new(n, d)
        out["old_vs_new"].append(r)
        _save(args.json, out)
        c, g = r["dci"], r["lps_lgbm"]
        print(f"old vs new n={n} d={d}: DCI gbt {c['seconds_gbt']:.1f} s lgbm {c['seconds_lgbm']:.2f} s "
              f"({c['speedup']:.1f}×) diff " + " ".join(f"{k} {v:+.4f}" for k, v in c["diff"].items())
              + f" · LPS-lgbm 255 bins {g['seconds_255_bins']:.1f} s, {g['default_bins']} bins "
              f"{g['seconds_default_bins']:.1f} s "
              f"({g['speedup']:.1f}×) diff {g['diff']:+.4f}", flush=True)  # fmt: skip
    for n, d in _points(args.naive_lps):
        r = naive_lps(n, d)
        out["naive_lps"].append(r)
        print(f"LPS-lgbm vs naive loop n={n} d={d}: ours {r['seconds_ours']:.1f} s naive {r['seconds_naive']:.1f} s "
              f"({r['speedup']:.1f}×) diff {r['diff']:+.4f}", flush=True)  # fmt: skip
    metrics = sorted({k for p in out["points"] for k in p["seconds"]})
    out["growth"] = {m: growth(out["points"], m) for m in metrics}
    for m, g in out["growth"].items():
        if g is not None:
            print(f"growth {m}: t ∝ n^{g['n']:.2f} · d^{g['d']:.2f}")
    _save(args.json, out)
    if args.figure is not None and out["points"]:
        shown = [m for m in metrics if m != "lps" and max(p["seconds"].get(m, 0) for p in out["points"]) >= 0.5]
        figure(out["points"], args.figure, shown)
    return out


if __name__ == "__main__":
    main()
