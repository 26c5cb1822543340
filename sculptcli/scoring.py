"""Scoring: encode held-out data (or read a latents file) and run the registered metrics into one report."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sculptcli.errors import UserError
from sculptcli.io import finite
from sculptcli.metrics import METRICS, SETS, ScoreInput
from sculptcli.metrics.collapse import COLLAPSE_RATIO, collapsed_dims
from sculptcli.provenance import versions

DEFAULT_METRICS = ["all"]  # `sculpt score`; training scores with the config's score.metrics (fast)


class ProgressLine:
    """One status line on stderr while a score runs: the metric, its targets done and an ETA.

    Silent for the first `after` seconds (a quick score prints nothing). On a terminal the line is redrawn in place
    (at most every 0.25 s) and erased at the end; otherwise (a log) a full line is written at most every `every`
    seconds. Never writes to stdout, so `--json` output stays one JSON object. Thread-safe (targets finish in
    worker threads)."""

    def __init__(self, stream: Any = None, after: float = 3.0, every: float = 10.0) -> None:
        import sys
        import threading

        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.after, self.every = after, every
        self.t0 = self.t_metric = time.perf_counter()
        self.last = -1e9
        self.metric, self.index, self.count = "", 0, 0
        self.shown = False
        self._lock = threading.Lock()

    def start(self, metric: str, index: int, count: int) -> None:
        """Metric `metric` (number `index` of `count`) begins."""
        with self._lock:
            self.metric, self.index, self.count = metric, index, count
            self.t_metric = time.perf_counter()
        self.update("", 0, 0)

    def update(self, what: str, done: int, total: int) -> None:
        now = time.perf_counter()
        with self._lock:
            if now - self.t0 < self.after or now - self.last < (0.25 if self.tty else self.every):
                return
            self.last = now
            line = f"scoring {self.index}/{self.count} {self.metric}"
            if total > 0:
                line += f" · {what} {done}/{total}"
                if done > 0:
                    eta = (now - self.t_metric) / done * (total - done)
                    line += f" · ETA {eta:.0f} s"
            elif what:
                line += f" · {what}"
            line += f" · {now - self.t0:.0f} s elapsed"
            if self.tty:
                self.stream.write("\r\x1b[2K" + line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        with self._lock:
            if self.shown and self.tty:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()


def run_metrics(inp: ScoreInput, names: list[str], progress: ProgressLine | None = None) -> dict[str, Any]:
    """Run each metric and merge its keys; `_settings` parts are gathered under `settings`.

    A metric reached through a set (not named on its own: `ScoreInput.asked` is False) may leave out a part whose
    cost explodes with the code's width (LPS's LightGBM probe beyond LPS_LGBM_MAX_D dimensions): its keys are null
    and `skipped` says why and how to ask for it. `progress` (a ProgressLine) shows the running metric and its
    targets on stderr.

    Every structure metric runs with BLAS and OpenMP limited to one thread (threadpoolctl): sklearn's logistic
    regressions and k-NN estimators gain nothing from two threads on small matrices and lose 5–20× when the cores
    are shared
    (explicitness: 30 s → 1.5 s at n = 10,000, d = 64 on 2 busy cores); metrics that parallelise do it
    themselves, over targets (LPS-lgbm, DCI).

    Collapsed dimensions (constant, or std below 1e-3 of the prior's) are listed under `collapsed_dims` and left
    out of every structure metric (LPS, factor metrics, TC, covariance ratio), which is null when fewer than two
    dimensions live; metrics of the whole code (NMSE, distances to the prior) see every dimension. Anything a
    reader must know before trusting the numbers is under `warnings`."""
    explicit = {n for n in names if n not in SETS}
    names = METRICS.resolve(names)
    d = int(inp.latents.shape[1])
    dead = collapsed_dims(inp.latents, inp.prior)
    active = [i for i in range(d) if i not in set(dead)]
    live = dataclasses.replace(inp, latents=inp.latents[:, active], dims=active, d_full=d) if dead else inp
    warnings = []
    if len(active) < 2:
        warnings.append(
            f"collapsed code: {len(dead)} of {d} dimensions are constant on held-out data (std < 1e-3 of the "
            "prior's); LPS and every structure metric are null: the model has not learned a representation"
        )
    elif dead:
        warnings.append(
            f"dims {', '.join(map(str, dead))} collapsed (constant on held-out data): LPS and the structure metrics "
            f"are over the {len(active)} live dimensions only"
        )
    report: dict[str, Any] = {"collapsed_dims": dead, "warnings": warnings}
    settings: dict[str, Any] = {
        "metrics": names,
        "n": int(inp.latents.shape[0]),
        "d": int(inp.latents.shape[1]),
        "seed": inp.seed,
        **{k: v for k, v in inp.options.items()},
    }
    timings = {}
    errors: dict[str, str] = {}
    not_applicable: dict[str, str] = {}
    skipped: dict[str, str] = {}
    if progress is not None:
        inp = dataclasses.replace(inp, progress=progress.update)
        live = dataclasses.replace(live, progress=progress.update)
    for i, name in enumerate(names):
        t0 = time.perf_counter()
        whole = METRICS.whole_code(name)
        if progress is not None:
            progress.start(name, i + 1, len(names))
        asked = name in explicit
        try:
            if not whole and len(active) < 2:
                part = dict.fromkeys(METRICS.keys(name))
                errors[name] = f"{len(dead)} of {d} dimensions collapsed: fewer than two live dimensions to score"
            elif whole:  # images through the model (NMSE, SSIM, context): torch's threads as they are
                part = METRICS.get(name)(dataclasses.replace(inp, asked=asked)) or {}
            else:
                with threadpool_limits(limits=1):  # see above: BLAS/OpenMP one thread per structure metric
                    part = METRICS.get(name)(dataclasses.replace(live, asked=asked)) or {}
        except (ValueError, np.linalg.LinAlgError) as e:  # a metric undefined on these codes: null, and why
            part = dict.fromkeys(METRICS.keys(name))
            errors[name] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        timings[name] = round(time.perf_counter() - t0, 3)
        settings.update(part.pop("_settings", {}))
        skipped.update(part.pop("_skipped", {}))
        not_applicable.update(part.pop("_reasons", {}))
        if name in errors:
            not_applicable.update(dict.fromkeys(METRICS.keys(name), errors[name]))
        why = f"undefined on these codes ({name} gave a non-finite value)"
        report.update(null_non_finite(part, not_applicable, why))
    if progress is not None:
        progress.close()
    settings["seconds"] = timings
    if skipped:
        report["skipped"] = skipped
    if errors:
        settings["errors"] = errors
    report["not_applicable"] = not_applicable
    settings["collapse_rule"] = f"std < {COLLAPSE_RATIO:g} × the prior's marginal std (1 without a prior), or constant"
    settings["versions"] = versions()
    report["settings"] = finite(settings)  # per-dimension details too: no reasons needed there
    return report


def null_non_finite(part: dict[str, Any], reasons: dict[str, str], why: str, prefix: str = "") -> dict[str, Any]:
    """`part` with every NaN or infinite number replaced by None (in nested dicts and lists): no non-finite number
    is ever written, and strict JSON parsers read every report. A nulled dict entry gets `why` in `reasons` under
    its dotted key unless the metric gave its own reason; list entries (per-dimension values) are nulled only."""

    def clean(v: Any, key: str | None) -> Any:
        if isinstance(v, dict):
            return {k: clean(x, None if key is None else f"{key}.{k}") for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x, None) for x in v]
        if isinstance(v, float | np.floating) and not math.isfinite(v):
            if key is not None:
                reasons.setdefault(key, why)
            return None
        return v

    return {k: clean(v, f"{prefix}{k}") for k, v in part.items()}


def read_latents_file(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`latents` [N, d] (and optional `factors` [N, k]) from a .safetensors or .npz file. No pickles."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}", fix="check the path")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: torch.from_numpy(np.asarray(f[k])) for k in f.files}
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            arrays = load_file(str(path))
        else:
            raise UserError(
                f"unsupported latents file type '{path.suffix}'",
                where=str(path),
                fix="give a .safetensors or .npz file holding a tensor named 'latents'",
            )
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        raise UserError(
            f"cannot read the file ({str(e).splitlines()[0][:100]})",
            where=str(path),
            fix="give a .safetensors or .npz (saved without pickle) holding 'latents'",
        ) from None
    if "latents" not in arrays:
        raise UserError(
            f"no tensor named 'latents' (found: {', '.join(sorted(arrays)) or 'none'})",
            where=str(path),
            fix="save the codes under the name 'latents'",
        )
    z = arrays["latents"]
    if z.ndim != 2 or z.shape[0] < 20 or z.shape[1] < 2:
        raise UserError(f"'latents' must be [N, d] with N ≥ 20 and d ≥ 2, got {list(z.shape)}", where=str(path))
    if not z.is_floating_point() or not torch.isfinite(z).all():
        raise UserError("'latents' must be finite floating-point values", where=str(path))
    f = arrays.get("factors")
    if f is not None and (f.ndim != 2 or f.shape[0] != z.shape[0]):
        raise UserError(f"'factors' must be [N, k] with N = {z.shape[0]}, got {list(f.shape)}", where=str(path))
    return z.float(), None if f is None else f.float()
