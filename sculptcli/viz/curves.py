"""`curves.png`: a run's history from its `metrics.jsonl` — the loss terms, every held-out LPS probe, NMSE (dB)
and MMD² to the prior against steps, with the steps whose evaluation raised a warning marked. Redrawn at each
held-out evaluation and at the end of training (the `results.png` of other trainers)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

CURVES = "curves.png"
NOT_TERMS = {"step", "img_per_s", "time", "split"}  # training-record keys that are not loss terms
EVAL_KEYS = {"nmse_db": "NMSE (dB)", "mmd2_prior": "MMD² to the prior"}

Series = dict[str, tuple[list[int], list[float]]]


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def curve_series(records: list[dict]) -> dict[str, Any]:
    """What the figure draws, from the records of a `metrics.jsonl`: {"loss": {term: (steps, values)},
    "lps": {probe: (steps, values)}, "nmse_db": (steps, values), "mmd2_prior": (steps, values),
    "warnings": [(step, text), …]}. Non-finite values (a null in the file) are left out."""
    loss: Series = {}
    lps: Series = {}
    evals: Series = {k: ([], []) for k in EVAL_KEYS}
    warnings: list[tuple[int, str]] = []
    for r in records:
        step = r.get("step")
        if not isinstance(step, int):
            continue
        if r.get("split") == "heldout":
            for k, v in r.items():
                if k.startswith("lps_") and k != "lps_seconds" and _num(v):
                    xs, ys = lps.setdefault(k[len("lps_") :], ([], []))
                    xs.append(step), ys.append(float(v))
                elif k in EVAL_KEYS and _num(v):
                    evals[k][0].append(step), evals[k][1].append(float(v))
            warnings += [(step, w) for w in r.get("warnings") or []]
        else:
            for k, v in r.items():
                if k not in NOT_TERMS and _num(v):
                    xs, ys = loss.setdefault(k, ([], []))
                    xs.append(step), ys.append(float(v))
    return {"loss": loss, "lps": lps, **evals, "warnings": warnings}


def curves_figure(series: dict[str, Any], title: str = ""):
    """A 2×2 figure of `curve_series`' output (Agg canvas, no pyplot state)."""
    from sculptcli.viz.diagnostics import _figure

    fig = _figure(11.0, 7.0)
    axes = fig.subplots(2, 2, sharex=True)
    (a_loss, a_lps), (a_nmse, a_mmd) = axes
    for name, (xs, ys) in series["loss"].items():
        a_loss.plot(xs, ys, lw=1.2, label=name, marker="o" if len(xs) < 3 else None, ms=3)  # one record: a dot
    values = [y for _, ys in series["loss"].values() for y in ys]
    if values and min(values) > 0:
        a_loss.set_yscale("log")
    elif values:
        a_loss.set_yscale("symlog", linthresh=1e-3)
    a_loss.set_title("training loss terms (window means)")
    for probe, (xs, ys) in series["lps"].items():
        a_lps.plot(xs, ys, marker="o", ms=3, lw=1.2, label=probe)
    a_lps.set_title("held-out LPS per probe (lower: more disentangled)")
    a_lps.set_ylabel("LPS")
    xs, ys = series["nmse_db"]
    a_nmse.plot(xs, ys, marker="o", ms=3, lw=1.2, color="C2")
    a_nmse.set_title("held-out reconstruction")
    a_nmse.set_ylabel("NMSE (dB, lower is better)")
    xs, ys = series["mmd2_prior"]
    a_mmd.plot(xs, ys, marker="o", ms=3, lw=1.2, color="C3")
    if ys and min(ys) > 0:
        a_mmd.set_yscale("log")
    a_mmd.set_title("held-out MMD² of the codes to the prior")
    a_mmd.set_ylabel("MMD²")
    warned = sorted({s for s, _ in series["warnings"]})
    for ax in axes.flat:
        for i, s in enumerate(warned):
            ax.axvline(s, color="red", ls=":", lw=1, alpha=0.7, label="warning" if i == 0 else None)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    for ax in axes[1]:
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    return fig


def write_curves(run_dir: Path, title: str | None = None) -> dict[str, Any]:
    """Draw `run_dir/metrics.jsonl` into `run_dir/curves.png` (atomically: a reader never sees half a PNG);
    returns the plotted series."""
    from sculptcli.io import atomic_write, read_jsonl

    run_dir = Path(run_dir)
    series = curve_series(read_jsonl(run_dir / "metrics.jsonl"))
    fig = curves_figure(series, title if title is not None else run_dir.name)
    atomic_write(run_dir / CURVES, lambda tmp: fig.savefig(tmp, format="png"))
    return series


def redraw_curves(run_dir: Path, warn=None) -> float | None:
    """`write_curves` for the trainer: never raises (a figure must not end a run); a failure is passed to `warn`
    once per process. Returns the seconds it took, or None when it failed."""
    import time

    t0 = time.perf_counter()
    try:
        write_curves(run_dir)
    except Exception as e:  # noqa: BLE001 - plotting is a by-product of training, never a reason to stop it
        if warn is not None and not _WARNED:
            _WARNED.append(True)
            warn(f"warning: could not draw {Path(run_dir) / CURVES} ({type(e).__name__}: {e}); training goes on")
        return None
    return time.perf_counter() - t0


_WARNED: list[bool] = []
