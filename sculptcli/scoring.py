"""Scoring: encode held-out data (or read a latents file) and run the registered metrics into one report."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sculptcli.errors import UserError
from sculptcli.metrics import METRICS, ScoreInput
from sculptcli.metrics.collapse import COLLAPSE_RATIO, collapsed_dims
from sculptcli.provenance import versions

DEFAULT_METRICS = ["all"]  # `sculpt score`; training scores with the config's score.metrics (fast)


def run_metrics(inp: ScoreInput, names: list[str]) -> dict[str, Any]:
    """Run each metric and merge its keys; `_settings` parts are gathered under `settings`.

    Collapsed dimensions (constant, or std below 1e-3 of the prior's) are listed under `collapsed_dims` and left
    out of every structure metric (LPS, factor metrics, TC, covariance ratio), which is null when fewer than two
    dimensions live; metrics of the whole code (NMSE, distances to the prior) see every dimension. Anything a
    reader must know before trusting the numbers is under `warnings`."""
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
    for name in names:
        t0 = time.perf_counter()
        whole = METRICS.whole_code(name)
        try:
            if not whole and len(active) < 2:
                part = dict.fromkeys(METRICS.keys(name))
                errors[name] = f"{len(dead)} of {d} dimensions collapsed: fewer than two live dimensions to score"
            else:
                part = METRICS.get(name)(inp if whole else live) or {}
        except (ValueError, np.linalg.LinAlgError) as e:  # a metric undefined on these codes: null, and why
            part = dict.fromkeys(METRICS.keys(name))
            errors[name] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        timings[name] = round(time.perf_counter() - t0, 3)
        settings.update(part.pop("_settings", {}))
        not_applicable.update(part.pop("_reasons", {}))
        if name in errors:
            not_applicable.update(dict.fromkeys(METRICS.keys(name), errors[name]))
        why = f"undefined on these codes ({name} gave a non-finite value)"
        report.update(null_non_finite(part, not_applicable, why))
    settings["seconds"] = timings
    if errors:
        settings["errors"] = errors
    report["not_applicable"] = not_applicable
    settings["collapse_rule"] = f"std < {COLLAPSE_RATIO:g} × the prior's marginal std (1 without a prior), or constant"
    settings["versions"] = versions()
    report["settings"] = null_non_finite(settings, {}, "", prefix="settings.")  # per-dimension details too
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
