"""Latent space copying (arXiv 2510.11953 §3): a teacher's codes become an `empirical` prior for a fresh student,
and the two are compared on held-out data.

The engine behind `sculpt copy-latent`, no CLI:
- `teacher_codes` (`sculptcli.run.training_codes`): posterior means of the first n images of a model's own
  TRAINING stream —
  `data.train_batch(step, CODES_BATCH)` at steps 0, 1, … of the dataset built with the model's seed, i.e. the first
  n images of its epoch-0 order: a uniform sample without replacement of the training split, the images the
  teacher itself saw first, reproducible from the checkpoint alone (no held-out image is used);
- `student_config`: the student's run config (the teacher's by default, or a preset/config) with the prior
  replaced by `{type: empirical, source: <codes file>}`, validated before anything is written;
- `compare_codes` / `compare_models`: MMD² with a permutation p-value, relative Frobenius error of the covariance,
  per-dimension two-sample KS, NMSE — teacher vs student, and teacher vs the untrained student (step 0);
- `traversal_figure`: teacher and student decoding the SAME latent values side by side.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sculptcli.codes import CODES_BATCH as CODES_BATCH  # the engine's names, kept here
from sculptcli.codes import check_codes as check_codes
from sculptcli.codes import training_codes as training_codes
from sculptcli.errors import UserError

DEFAULT_N_CODES = 20_000
LATENTS_FILE = "teacher_latents.safetensors"
STUDENT_DIR = "student"
REPORT_FILE = "copy_report.json"
TRAVERSALS_FILE = "traversals.png"
OUTPUTS = (LATENTS_FILE, STUDENT_DIR, REPORT_FILE, TRAVERSALS_FILE)


# ---------------------------------------------------------------- the teacher's codes


def teacher_codes(run, n: int) -> Tensor:
    """The opened run's (`sculptcli.run.open_run`) posterior means over the first n images of its own training
    stream (checked)."""
    return run.training_codes(n)


def save_codes(path: Path, z: Tensor, metadata: dict[str, str]) -> None:
    """Write `z` as tensor 'latents' of a .safetensors file, atomically."""
    from safetensors.torch import save_file

    from sculptcli.io import atomic_write

    tensor = z.detach().float().contiguous().cpu()
    atomic_write(Path(path), lambda p: save_file({"latents": tensor}, str(p), metadata=metadata))


# ---------------------------------------------------------------- the student's config


def student_config(
    teacher_cfg,
    where: str,
    *,
    preset: str | None = None,
    config: Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
    max_steps: int | None = None,
    budget: str | None = None,
    device_is_cuda: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The student's raw config (a mapping, prior still a placeholder) and notes on what was changed.

    Default: the teacher's config (data, architecture, objective incl. λ, train budget) with seed = teacher's + 1
    (a fresh initialisation) and name '<teacher>-copy'; a non-MMD divergence (e.g. a VAE teacher's KL) becomes
    the default MMD. With `preset`/`config` that config instead (its prior is replaced). Everything is validated
    here: the latent size must equal the teacher's and the divergence must be MMD with a positive weight."""
    from sculptcli.checkpoint import data_shape
    from sculptcli.config import apply_overrides, load_config, parse_override, validate_config

    overrides = list(overrides or [])
    for arg in overrides:
        if parse_override(arg)[0][0] == "prior":
            raise UserError(
                f"override '{arg}': the student's prior is the teacher's codes",
                fix="drop the prior override (use --bandwidth for Gaussian jitter on the codes)",
            )
    extra = ([f"seed={seed}"] if seed is not None else []) + (
        [f"train.steps={max_steps}", "train.epochs=null"] if max_steps is not None else []
    )
    notes: list[str] = []
    if preset is not None or config is not None:
        # the config's own prior is replaced (last override), so it need not fit the latent size
        replace = ["prior={type: gaussian}"]
        cfg = load_config(preset, config, overrides + extra + replace, budget, device_is_cuda=device_is_cuda)
        raw = cfg.model_dump(mode="json", exclude={"budgets"})
        source = f"--preset {preset}" if preset else str(config)
    else:
        if budget is not None:
            raise UserError("--budget applies to --preset or --config", fix="drop --budget, or give --preset NAME")
        raw = teacher_cfg.model_dump(mode="json", exclude={"budgets"})
        raw["name"] = f"{teacher_cfg.name or 'teacher'}-copy"
        raw["seed"] = teacher_cfg.seed + 1
        raw["prior"] = {"type": "gaussian"}  # a placeholder (1-D: any latent size) while the rest is validated
        div = raw["objective"]["divergence"]
        if div.get("type") != "mmd":
            raw["objective"]["divergence"] = {"type": "mmd"}
            notes.append(f"the teacher's divergence '{div.get('type')}' was replaced by the default mmd (student)")
        raw = apply_overrides(raw, overrides + extra)
        source = f"student config (the teacher's, {where})"
        cfg = validate_config(raw, source)
        raw = cfg.model_dump(mode="json", exclude={"budgets"})
    d = teacher_cfg.model.latent_dim
    if cfg.model.latent_dim != d:
        raise UserError(
            f"latent size mismatch: the teacher encodes to {d} dimensions but the student's model.latent_dim is "
            f"{cfg.model.latent_dim}",
            where=source,
            fix=f"the student must have the teacher's latent size: set model.latent_dim={d}",
        )
    div = cfg.objective.divergence
    if div.type != "mmd" or div.weight <= 0:
        raise UserError(
            f"the student's divergence is {div.type} with weight {div.weight:g}; copying needs mmd with a positive "
            "weight (the student matches the teacher's codes by MMD)",
            where=source,
            fix="set objective.divergence.type=mmd (and a positive objective.divergence.weight)",
        )
    if data_shape(cfg) != data_shape(teacher_cfg):
        raise UserError(
            f"the student's images are {data_shape(cfg)} but the teacher's are {data_shape(teacher_cfg)}",
            where=source,
            fix="use the teacher's dataset for the student",
        )
    return raw, notes


def with_empirical_prior(raw: dict[str, Any], latents: Path, bandwidth: float, source: str):
    """The validated student RunConfig whose prior resamples the codes in `latents`."""
    from sculptcli.config import validate_config

    prior: dict[str, Any] = {"type": "empirical", "source": str(Path(latents).resolve())}
    if bandwidth:
        prior["bandwidth"] = bandwidth
    return validate_config({**raw, "prior": prior}, source)


# ---------------------------------------------------------------- comparing


def covariance_error(student: Tensor, teacher: Tensor) -> float:
    """‖C_s − C_t‖_F / ‖C_t‖_F of the two code sets' covariance matrices."""
    cs = torch.atleast_2d(torch.cov(student.double().T))
    ct = torch.atleast_2d(torch.cov(teacher.double().T))
    ref = torch.linalg.matrix_norm(ct)
    return float(torch.linalg.matrix_norm(cs - ct) / ref) if ref > 0 else float("inf")


def ks_per_dim(student: Tensor, teacher: Tensor) -> dict[str, Any]:
    """Two-sample Kolmogorov–Smirnov statistic (and p-value) of every dimension, student vs teacher codes."""
    from scipy.stats import ks_2samp

    s, t = student.double().numpy(), teacher.double().numpy()
    res = [ks_2samp(s[:, i], t[:, i], method="asymp") for i in range(t.shape[1])]
    stats = [float(r.statistic) for r in res]
    return {
        "per_dim": stats,
        "p_values": [float(r.pvalue) for r in res],
        "max": max(stats),
        "mean": sum(stats) / len(stats),
    }


def compare_codes(student: Tensor, teacher: Tensor, *, permutations: int = 200, seed: int = 0) -> dict[str, Any]:
    """How close the student's codes are to the teacher's on the same images: MMD² (the paper's kernel, biased)
    with a permutation p-value, relative Frobenius error of the covariance, and per-dimension KS."""
    from sculptcli.stats.mmd import mmd_permutation_test

    s, t = student.float().cpu(), teacher.float().cpu()
    stat, p = mmd_permutation_test(t, s, permutations=permutations, seed=seed)
    return {
        "mmd2": {"statistic": stat, "p_value": p},
        "cov_rel_frobenius": covariance_error(s, t),
        "ks": ks_per_dim(s, t),
    }


def describe_model(model, images: Tensor, where: str) -> tuple[Tensor, dict[str, float]]:
    """(held-out codes, {nmse, nmse_db, cov_ratio}) of a model on `images`; non-finite codes are a UserError."""
    from sculptcli.metrics.distribution import cov_ratio
    from sculptcli.metrics.recon import nmse

    z = model.embed(images).cpu()
    if not torch.isfinite(z).all():
        raise UserError("the model encodes held-out images to non-finite codes", where=where)
    lin, db = nmse(model, images)
    return z, {"nmse": lin, "nmse_db": db, "cov_ratio": cov_ratio(z)}


def untrained_model(cfg, shape: tuple[int, int, int], device: torch.device | str = "cpu", like=None):
    """The student at step 0: built exactly as the trainer builds it (torch.manual_seed(cfg.seed) first), with the
    input standardisation of the trained model `like` (fixed before its first step, never trained)."""
    state = torch.get_rng_state()
    try:
        torch.manual_seed(cfg.seed)
        model = cfg.model.build(shape)
    finally:
        torch.set_rng_state(state)
    if like is not None:
        model.in_shift.copy_(like.in_shift)
        model.in_scale.copy_(like.in_scale)
    return model.to(device).eval()


def compare_models(
    teacher, student, untrained, images: Tensor, *, permutations: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Teacher vs student (and vs the untrained student) on the same held-out images; also returns the codes."""
    zt, t_info = describe_model(teacher, images, "teacher")
    zs, s_info = describe_model(student, images, "student")
    zu, u_info = describe_model(untrained, images, "untrained student")
    main = compare_codes(zs, zt, permutations=permutations, seed=seed)
    base = compare_codes(zu, zt, permutations=permutations, seed=seed)
    return {
        **main,
        "nmse_db": {"teacher": t_info["nmse_db"], "student": s_info["nmse_db"]},
        "nmse": {"teacher": t_info["nmse"], "student": s_info["nmse"]},
        "cov_ratio": {"teacher": t_info["cov_ratio"], "student": s_info["cov_ratio"]},
        "untrained": {**base, "nmse_db": u_info["nmse_db"], "cov_ratio": u_info["cov_ratio"]},
        "_codes": {"teacher": zt, "student": zs},
    }


# ---------------------------------------------------------------- traversals


TRAVERSE_ROWS = 3
TRAVERSE_STEPS = 9
TRAVERSE_K = 2.0  # sweep each dimension over the teacher's held-out mean ± K std
TRAVERSE_MAX_DIMS = 12


def traversal_figure(teacher, student, codes: Tensor, title: str, rows: int = TRAVERSE_ROWS):
    """Teacher (left) and student (right) decoding the SAME latent values: each block of rows sweeps one
    coordinate of the first `rows` teacher codes over the teacher codes' mean ± TRAVERSE_K std, the other
    coordinates fixed. Returns a matplotlib Figure sized in pixels (save at viz.traverse.DPI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from sculptcli.viz import traverse as tv

    d = codes.shape[1]
    dims = list(range(min(d, TRAVERSE_MAX_DIMS)))
    values = tv.sweep_values(tv.RangeSpec("fit", k=TRAVERSE_K), TRAVERSE_STEPS, codes=codes)
    fixed = codes[: min(rows, len(codes))]
    shown_t = tv.traverse_images(teacher, fixed, dims, values)
    shown_s = tv.traverse_images(student, fixed, dims, values)
    scale = tv.display_scale(*shown_t.shape[-2:], target=48)
    gap = math.ceil(8 / scale)
    grid_t, layout = tv.latent_grid(shown_t, padding=2, gap=gap)
    grid_s, _ = tv.latent_grid(shown_s, padding=2, gap=gap)

    gw, gh = layout.grid_width * scale, layout.grid_height * scale
    left, middle, right, top, bottom = 48, 24, 110, 64, 12
    width, height = left + 2 * gw + middle + right, top + gh + bottom
    if max(width, height) > tv.MAX_FIGURE_PX:
        raise UserError(f"the traversal figure would be {width}×{height} pixels, too large to draw")
    fig = Figure(figsize=(width / tv.DPI, height / tv.DPI), dpi=tv.DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    for x0, grid, name in ((left, grid_t, "teacher"), (left + gw + middle, grid_s, "student")):
        ax.imshow(
            grid.permute(1, 2, 0).numpy(),
            extent=(x0, x0 + gw, top + gh, top),
            interpolation="nearest",
            aspect="auto",
            vmin=0.0,
            vmax=1.0,
        )
        ax.text(x0 + gw / 2, top - 4, name, ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.text(width / 2, 6, title, ha="center", va="top", fontsize=10, fontweight="bold")
    ax.text(
        width / 2,
        22,
        f"rows: {len(fixed)} held-out images' teacher codes · each block sweeps one coordinate over the teacher's "
        f"mean ± {TRAVERSE_K:g}σ · both decoders get the same codes",
        ha="center",
        va="top",
        fontsize=7,
        color="0.3",
    )
    for b, k in enumerate(dims):
        y = top + (layout.block_top(b) + layout.block_height / 2) * scale
        ax.text(left - 6, y, f"z{k}", ha="right", va="center", fontsize=10, fontweight="bold")
        lo, hi = float(values[k, 0]), float(values[k, -1])
        ax.text(left + 2 * gw + middle + 6, y, f"{lo:.3g} → {hi:.3g}", ha="left", va="center", fontsize=7)
    return fig
