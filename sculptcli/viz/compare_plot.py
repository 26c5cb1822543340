"""`sculpt compare RUNS --plot OUT.png`: the paper's trade-off view — LPS-lgbm (lower: more disentangled) against
NMSE in dB (lower: better reconstruction), one small point per run and the mean ± std of each group (preset) with
error bars in both directions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

X_KEY, Y_KEY = "nmse_db", "lps.lgbm"


def compare_series(rows) -> dict[str, dict[str, Any]]:
    """Per group: its runs' (NMSE dB, LPS-lgbm) points and the mean and sample std of each axis (the numbers of
    `sculpt compare`'s table). Runs missing either score are left out; a group with none is left out."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        pts = [
            (r.scores[X_KEY], r.scores[Y_KEY])
            for r in row.runs
            if all(k in r.scores and math.isfinite(r.scores[k]) for k in (X_KEY, Y_KEY))
        ]
        if not pts:
            continue
        xm, xs, _ = row.stats(X_KEY)
        ym, ys, _ = row.stats(Y_KEY)
        out[row.group] = {"points": pts, "x_mean": xm, "x_std": xs, "y_mean": ym, "y_std": ys}
    return out


def compare_figure(series: dict[str, dict[str, Any]], title: str = ""):
    from sculptcli.viz.diagnostics import _figure

    fig = _figure(8.0, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    for i, (group, s) in enumerate(series.items()):
        color = f"C{i % 10}"
        xs, ys = zip(*s["points"], strict=True)
        ax.scatter(xs, ys, s=14, color=color, alpha=0.45, linewidths=0)
        n = len(s["points"])
        ax.errorbar(
            s["x_mean"], s["y_mean"], xerr=s["x_std"], yerr=s["y_std"], fmt="o", ms=7, color=color, capsize=4,
            label=f"{group} (n={n})",
        )  # fmt: skip
    ax.set_xlabel("NMSE (dB) — lower: better reconstruction")
    ax.set_ylabel("LPS-lgbm — lower: more disentangled")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="best", title="mean ± std per group; dots: runs", title_fontsize=8)
    ax.set_title(title or "LPS-lgbm against NMSE")
    return fig


def write_compare_plot(rows, out: Path) -> dict[str, dict[str, Any]]:
    """Draw `rows` (from `sculptcli.aggregate.aggregate`) into `out` (PNG, atomically); returns the plotted data."""
    from sculptcli.errors import UserError
    from sculptcli.io import atomic_write

    series = compare_series(rows)
    if not series:
        raise UserError(
            "no run has both lps.lgbm and nmse_db to plot",
            fix="score the runs with the lgbm probe (sculpt score RUN --probes lgbm)",
        )
    n = sum(len(s["points"]) for s in series.values())
    fig = compare_figure(series, f"sculpt compare · {n} runs")
    atomic_write(Path(out), lambda tmp: fig.savefig(tmp, format="png"))
    return series
