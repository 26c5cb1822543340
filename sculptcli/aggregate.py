"""Tables across runs: read each run's scores.json, group runs by config name, mean ± std per metric column."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sculptcli.errors import UserError
from sculptcli.rundir import is_run_dir

# The paper's columns (Tables 4–10), in its order; a column no run has is left out.
PAPER_COLUMNS = [
    "cov_ratio",
    "lps.lgbm",
    "lps.mlp",
    "mig",
    "nmse_db",
    "nmse",
    "sap",
    "dci.c",
    "dci.d",
    "dci.i",
]
LABELS = {
    "nmse_db": "NMSE dB",
    "nmse": "NMSE",
    "cov_ratio": "CovRatio",
    "lps.lgbm": "LPS-lgbm",
    "lps.mlp": "LPS-mlp",
    "lps.linear": "LPS-linear",
    "mig": "MIG",
    "sap": "SAP",
    "dci.c": "DCI-C",
    "dci.d": "DCI-D",
    "dci.i": "DCI-I",
}


def label(col: str) -> str:
    """A column's header: the paper's name, 'NAME s' for a metric's seconds, else the dotted path."""
    if col in LABELS:
        return LABELS[col]
    return f"{col.removeprefix('seconds.')} s" if col.startswith("seconds.") else col


SKIP = ("settings", "lps.per_dim", "ks.per_dim", "prior_test")


def flatten(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a score report by dotted path ('dci.d', 'lps.lgbm'); settings and lists left out."""
    out: dict[str, float] = {}
    for k, v in report.items():
        key = f"{prefix}{k}"
        if key in SKIP:
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int | float):
            out[key] = float(v)
    return out


@dataclass
class Run:
    path: Path
    group: str
    seed: int
    scores: dict[str, float]


@dataclass
class Row:
    group: str
    runs: list[Run] = field(default_factory=list)

    def stats(self, key: str) -> tuple[float, float, int]:
        """(mean, sample std, count) of a column over this group's runs that have it (nan when none)."""
        vals = [r.scores[key] for r in self.runs if key in r.scores and math.isfinite(r.scores[key])]
        if not vals:
            return math.nan, math.nan, 0
        return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals)


def expand(paths: list[Path]) -> list[Path]:
    """Run directories from the arguments: a run directory itself, or every run directory below a folder."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise UserError(f"no such run directory: {p}", fix="give run directories or a folder holding them")
        if is_run_dir(p):
            found.append(p)
            continue
        below = sorted({c.parent for c in p.rglob("config.yaml") if not c.parent.is_symlink()})
        if not below:
            raise UserError(f"{p} holds no runs (no config.yaml below it)", fix="give run directories")
        found += below
    seen, unique = set(), []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_run(path: Path, group_by: str = "name") -> Run:
    scores_path, cfg_path = path / "scores.json", path / "config.yaml"
    if not scores_path.is_file():
        raise UserError(
            f"{path} has no scores.json",
            fix=f"score it first: `sculpt score {path} --save` (or train without --no-score)",
        )
    try:
        report = json.loads(scores_path.read_text())
        cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the run's scores or config ({e})", where=str(path)) from None
    if group_by == "name":
        group = str(cfg.get("name") or path.parent.name)
    else:
        cur: Any = cfg
        for part in group_by.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        group = f"{group_by}={cur}"
    return Run(path, group, int(cfg.get("seed", 0) or 0), {**flatten(report), **timings(report)})


def timings(report: dict[str, Any]) -> dict[str, float]:
    """The seconds each metric took (`settings.seconds`) as columns 'seconds.NAME', and their sum 'seconds.total'."""
    secs = (report.get("settings") or {}).get("seconds") or {}
    out = {f"seconds.{k}": float(v) for k, v in secs.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if out:
        out["seconds.total"] = sum(out.values())
    return out


def aggregate(paths: list[Path], group_by: str = "name") -> list[Row]:
    rows: dict[str, Row] = {}
    for p in expand(paths):
        run = load_run(p, group_by)
        rows.setdefault(run.group, Row(run.group)).runs.append(run)
    return list(rows.values())


def choose_columns(rows: list[Row], metrics: list[str] | None, with_timings: bool = False) -> list[str]:
    """The named columns, else the paper's (else every score column); `with_timings` appends every metric's
    seconds, slowest first by mean, and their total."""
    have = {k for row in rows for r in row.runs for k in r.scores}
    secs = sorted(
        (k for k in have if k.startswith("seconds.") and k != "seconds.total"),
        key=lambda k: -statistics.fmean([r.scores[k] for row in rows for r in row.runs if k in r.scores]),
    )
    extra = [*secs, "seconds.total"] if with_timings and secs else []
    if metrics:
        missing = [m for m in metrics if m not in have]
        if missing:
            raise UserError(
                f"no run has the column(s): {', '.join(missing)}",
                fix=f"available: {', '.join(sorted(have))}",
            )
        return metrics + [c for c in extra if c not in metrics]
    cols = [c for c in PAPER_COLUMNS if c in have]
    return (cols or sorted(k for k in have if not k.startswith("seconds."))) + extra


def fmt(mean: float, std: float, n: int, digits: int = 3) -> str:
    if n == 0:
        return "–"
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f}±{std:.{digits}f}"


def to_csv(rows: list[Row], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["group", "runs"] + [x for c in cols for x in (f"{c}.mean", f"{c}.std")])
    for row in rows:
        cells: list[Any] = [row.group, len(row.runs)]
        for c in cols:
            m, s, n = row.stats(c)
            cells += ["" if n == 0 else repr(m), "" if n == 0 else repr(s)]
        w.writerow(cells)
    return buf.getvalue()


def to_markdown(rows: list[Row], cols: list[str], digits: int = 3) -> str:
    head = ["run", "n"] + [label(c) for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.group, str(len(row.runs))] + [fmt(*row.stats(c), digits) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
