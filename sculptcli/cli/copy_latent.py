"""`sculpt copy-latent`: train a fresh student against a teacher's codes (an empirical prior) and compare the two."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from sculptcli.cli.common import console, is_tty, overrides_from, user_errors

MIN_EVAL = 20


def _versions() -> dict:
    from sculptcli import provenance

    return provenance.versions()


def _check_out(out: Path) -> None:
    """Refuse an --out that is a file, a training run, or already holds a copy (before anything is written)."""
    from sculptcli.copying import OUTPUTS
    from sculptcli.errors import UserError
    from sculptcli.rundir import is_run_dir

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file", fix="give a directory for the copy")
    held = [name for name in OUTPUTS if (out / name).exists()]
    if held:
        raise UserError(
            f"{out} already holds a copy ({', '.join(held)})",
            fix="choose another --out, or delete that directory to redo the copy",
        )
    if is_run_dir(out):
        raise UserError(f"{out} holds a training run", fix="give a new directory for the copy")


def render_report(report: dict, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("student", justify="right")
    table.add_column("untrained", justify="right")
    table.add_column("meaning", style="dim")
    u = report["untrained"]
    s = report["settings"]
    table.add_row(
        "MMD² to teacher",
        f"{report['mmd2']['statistic']:.5f}",
        f"{u['mmd2']['statistic']:.5f}",
        f"aggregate posteriors on {s['n_eval']} held-out images · 0 = matched",
    )
    table.add_row(
        "  permutation p",
        f"{report['mmd2']['p_value']:.3f}",
        f"{u['mmd2']['p_value']:.3f}",
        f"{s['permutations']} permutations · p < 0.05: distinguishable from the teacher",
    )
    table.add_row(
        "cov. error",
        f"{report['cov_rel_frobenius']:.3f}",
        f"{u['cov_rel_frobenius']:.3f}",
        "‖C_s − C_t‖_F / ‖C_t‖_F · the co-dependent geometry",
    )
    table.add_row(
        "KS max / mean",
        f"{report['ks']['max']:.3f} / {report['ks']['mean']:.3f}",
        f"{u['ks']['max']:.3f} / {u['ks']['mean']:.3f}",
        "per-dimension two-sample KS vs the teacher's marginals",
    )
    table.add_row(
        "NMSE dB",
        f"{report['nmse_db']['student']:.2f}",
        f"{u['nmse_db']:.2f}",
        f"reconstruction · teacher {report['nmse_db']['teacher']:.2f} dB",
    )
    table.add_row(
        "covariance ratio",
        f"{report['cov_ratio']['student']:.2f}",
        f"{u['cov_ratio']:.2f}",
        f"Σ diag / Σ |off-diag| · teacher {report['cov_ratio']['teacher']:.2f}",
    )
    console.print(table)
    console.print(
        "[dim]per-dimension KS (student):[/] " + " ".join(f"{v:.3f}" for v in report["ks"]["per_dim"]),
        highlight=False,
    )
    for note in report.get("notes", []):
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)


@user_errors
def copy_latent(
    ctx: typer.Context,
    teacher: Path = typer.Argument(
        None, help="the teacher: a checkpoint (.safetensors) or run directory (default: runs/latest)"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="the copy's directory (must not hold a copy yet)"),
    preset: str = typer.Option(None, "--preset", "-p", help="student config from a preset (default: the teacher's)"),
    config: Path = typer.Option(None, "--config", "-c", help="student config from a YAML file"),
    n_codes: int = typer.Option(
        20_000, "--n-codes", min=1, help="teacher codes: posterior means of the first N images of its training stream"
    ),
    n_eval: int = typer.Option(
        2000, "--n-eval", min=MIN_EVAL, help="held-out images for the comparison (capped at the held-out split)"
    ),
    permutations: int = typer.Option(200, "--permutations", min=1, max=10_000, help="permutations of the MMD test"),
    bandwidth: float = typer.Option(0.0, "--bandwidth", min=0.0, help="Gaussian jitter (std) on the resampled codes"),
    which: str = typer.Option("last", "--checkpoint", help="in the teacher's run directory: last or best"),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="student optimizer steps (overrides the budget)"),
    seed: int = typer.Option(None, "--seed", min=0, help="the student's seed (default: the teacher's + 1)"),
    budget: str = typer.Option(None, "--budget", help="with --preset/--config: quick or full"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no dashboard, table or log lines"),
    trust_code: bool = typer.Option(
        False, "--trust-code", help="import the custom model code the teacher's checkpoint names (model.type: custom)"
    ),
):
    """Latent space copying: a fresh student learns to match a teacher's aggregate posterior by MMD.

    OUT/teacher_latents.safetensors: the teacher's codes of the first --n-codes images of its training stream.

    OUT/student: a run trained like the teacher (or --preset/--config) against an empirical prior on those codes.

    OUT/copy_report.json, OUT/traversals.png: teacher vs student on held-out data (MMD², covariance, KS, NMSE).

    Extra arguments are key=value overrides of the student's config, e.g. `objective.divergence.weight=1`.
    """
    from sculptcli.errors import UserError
    from sculptcli.run import check_which
    from sculptcli.training.latent_copy import copy_latent_run
    from sculptcli.training.report import make_reporter

    overrides = overrides_from(ctx, "copy-latent")
    check_which(which)
    if not math.isfinite(bandwidth):
        raise UserError("--bandwidth must be finite")
    _check_out(out)
    copy = copy_latent_run(
        teacher, out, which=which, device=device, trust_code=trust_code, preset=preset, config=config,
        overrides=overrides, seed=seed, max_steps=max_steps, budget=budget, n_codes=n_codes, n_eval=n_eval,
        bandwidth=bandwidth, permutations=permutations, reporter=make_reporter(quiet), versions=_versions(),
    )  # fmt: skip
    if copy.report is None:
        console.print(f"the comparison was skipped; continue the student with `sculpt train --out {copy.run_dir} "
                      "--resume`")  # fmt: skip
        raise typer.Exit(130)
    if not quiet:
        teacher_path = copy.report["teacher"]["checkpoint"]
        render_report(copy.report, title=f"latent copy · teacher {teacher_path} → student {copy.run_dir}")
        console.print(f"copy directory: [bold]{out}[/]" if is_tty() else f"copy directory: {out}")
