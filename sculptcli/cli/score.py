"""`sculpt score`: LPS, reconstruction, distance to the prior and the factor metrics of a model or of codes."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.panel import Panel
from rich.table import Table

from sculptcli.cli.common import console, user_errors
from sculptcli.metric_catalog import METRIC_NAMES, SETS

FACTOR_ROWS = [
    ("mig", "MIG", "mutual information gap (20 bins) · higher = more disentangled"),
    ("sap", "SAP", "gap between the two best single-latent predictors"),
    ("dci.d", "DCI disentanglement", "each latent explains one factor (gradient-boosted trees)"),
    ("dci.c", "DCI completeness", "each factor lives in one latent"),
    ("dci.i", "DCI informativeness", "held-out accuracy of the factor classifiers"),
    ("factorvae", "FactorVAE score", "majority-vote accuracy (index bug of disentanglement_lib fixed)"),
    ("betavae", "β-VAE score", "logistic-regression accuracy on |Δz| of factor-sharing pairs"),
    ("modularity", "modularity", "each latent depends on one factor (binned MI)"),
    ("explicitness", "explicitness", "ROC-AUC of a logistic regression from all latents"),
    ("infomec.m", "InfoM", "modularity, k-NN normalised MI, chance-rescaled"),
    ("infomec.c", "InfoC", "compactness"),
    ("infomec.e", "InfoE", "explicitness: linear predictive information"),
    ("lds", "LDS", "linear disentanglement score (|Pearson| share)"),
    ("tc_gauss", "TC (Gaussian)", "total correlation of a Gaussian fit · 0 = independent"),
    ("tc_mmd", "TC (MMD)", "MMD² of codes vs column-permuted codes · 0 = independent"),
]

CONTEXT_ROWS = [
    ("swd_concept", "SWD concepts", "generated vs held-out images, mean over the training contexts · lower is better"),
    ("swd_composition", "SWD compositions", "the same for the held-out pairs never trained on (out of distribution)"),
    ("bpd", "BPD", "−ELBO in bits per dimension, held-out images of the training contexts"),
    ("bpd_ood", "BPD compositions", "the same for the held-out compositions"),
    ("recon_bpd", "recon BPD", "Σ BCE alone in bits per dimension (defined without an ELBO too)"),
    ("bpd_pixel", "BPD per pixel", "−ELBO / (H·W·ln 2): the release's normaliser (published 0.519 CM, 0.444 base)"),
]


def render_report(report: dict, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("meaning", style="dim")
    for w in report.get("warnings", []):
        console.print(Panel(w, title="warning", border_style="bold red", style="bold red"))
    lps = report.get("lps") or {}
    from sculptcli.metrics.lps import PROBE_REGISTRY

    meaning = {name: probe.meaning for name, probe in PROBE_REGISTRY.items()}
    na = report.get("not_applicable") or {}
    skipped = report.get("skipped") or {}

    def not_applicable(key: str, label: str) -> None:
        if key in na:
            table.add_row(label, "[yellow]n/a[/]", f"[yellow]{na[key]}[/]")

    probes = [p for p in PROBE_REGISTRY if p in lps] or (["lgbm"] if "lps" in report else [])
    for probe in probes:
        if f"lps.{probe}" in skipped:
            table.add_row(f"LPS-{probe}", "[yellow]skipped[/]", skipped[f"lps.{probe}"])
            continue
        if lps.get(probe) is None and (f"lps.{probe}" in na or "lps" in na):
            not_applicable(f"lps.{probe}" if f"lps.{probe}" in na else "lps", f"LPS-{probe}")
            continue
        value = f"{lps[probe]:.4f}" if lps.get(probe) is not None else "[bold red]null[/]"
        table.add_row(f"LPS-{probe}", value, meaning[probe] + " · lower = more independent")

    def row(key, label, fmt, text):
        if report.get(key) is not None:
            table.add_row(label, fmt.format(report[key]), text)
        else:
            not_applicable(key, label)

    row("nmse_db", "NMSE dB", "{:.2f}", "reconstruction, Σ‖x−x̂‖²/Σ‖x‖² · lower is better")
    row("nmse", "NMSE", "{:.4f}", "linear")
    row("mmd2_prior", "MMD² to prior", "{:.5f}", "aggregate posterior vs prior · 0 = matched")
    row("cov_ratio", "covariance ratio", "{:.2f}", "Σ diag / Σ |off-diag| · higher = more diagonal")
    pt = report.get("prior_test")
    if pt is not None:
        table.add_row(
            "prior test p",
            f"{pt['p_value']:.3f}",
            f"MMD² permutation test vs prior, n={pt['n']} · p < 0.05: distinguishable",
        )
    ks = report.get("ks")
    if ks is not None:
        table.add_row("KS max", f"{ks['max']:.4f}", "largest per-dim two-sample KS vs prior marginal · 0 = matched")
    from sculptcli.aggregate import flatten

    flat = flatten(report)
    for key, label, text in FACTOR_ROWS:
        if key in flat:
            table.add_row(label, f"{flat[key]:.4f}", text)
        else:
            not_applicable(key, label)
    for key, label, text in CONTEXT_ROWS:
        row(key, label, "{:.4f}", text)
    for name, reason in skipped.items():
        if not name.startswith("lps."):
            table.add_row(name, "[yellow]skipped[/]", reason)
    console.print(table)
    if report.get("swd"):
        parts = " ".join(f"{name} {v:.3f}" for name, v in report["swd"].items())
        console.print(f"[dim]SWD per context:[/] {parts}", highlight=False)
    for probe, per in lps.get("per_dim", {}).items():
        vals = " ".join("—" if v is None else f"{v:.3f}" for v in per)
        console.print(f"[dim]per-dimension R² ({probe}):[/] {vals}", highlight=False)
    if report.get("collapsed_dims"):
        console.print(f"[bold red]collapsed dims:[/] {', '.join(map(str, report['collapsed_dims']))}")
    if ks is not None:
        console.print("[dim]per-dimension KS:[/] " + " ".join(f"{v:.3f}" for v in ks["per_dim"]), highlight=False)
    s = report.get("settings", {})
    console.print(f"[dim]N={s.get('n')} d={s.get('d')} seed={s.get('seed')} test_frac={s.get('test_frac')}[/]")


@user_errors
def score(
    target: Path = typer.Argument(None, help="a checkpoint (.safetensors) or run directory (default: runs/latest)"),
    latents: Path = typer.Option(None, "--latents", help="score a .safetensors/.npz holding 'latents' instead"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a table"),
    n: int = typer.Option(None, "--n", min=20, help="held-out images to encode (default: the config's score.n)"),
    probes: str = typer.Option("lgbm,mlp,linear", "--probes", help="comma-separated LPS probes"),
    test_frac: float = typer.Option(0.2, "--test-frac", min=0.01, max=0.99, help="held-out fraction for probes"),
    seed: int = typer.Option(0, "--seed", min=0, help="seed of the probe split and fits"),
    which: str = typer.Option("last", "--checkpoint", help="in a run directory: last or best"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    export_latents: Path = typer.Option(
        None, "--export-latents", help="write latents (and factors) to a .safetensors file"
    ),
    plots: Path = typer.Option(
        None, "--plots", help="write marginals.png, covariance.png and lps.png (the paper's Fig. 1 views) to DIR"
    ),
    metrics: str = typer.Option(
        "all",
        "--metrics",
        "-m",
        help=f"comma-separated metrics or sets: {', '.join(SETS)}; or {', '.join(METRIC_NAMES)}",
    ),
    dci_model: str = typer.Option(
        "lgbm",
        "--dci-model",
        help="DCI importance model: lgbm (LightGBM, sklearn's importance at its splits, default), gbt (sklearn's "
        "GradientBoostingClassifier, the disentanglement_lib protocol; slow on large codes) or rf (random forest)",
    ),
    bins: int = typer.Option(20, "--bins", min=2, help="histogram bins for MIG, SAP and modularity"),
    votes: int = typer.Option(
        None, "--votes", min=3, help="FactorVAE/β-VAE votes, split 2:1 train/eval (default 10,000 + 5,000)"
    ),
    intervene: str = typer.Option(
        "codes",
        "--intervene",
        help="FactorVAE/β-VAE batches: codes (drawn from the scored codes) or render (fresh renders of a generated "
        "dataset's factor grid, the disentanglement_lib protocol; slow without a GPU)",
    ),
    save: bool = typer.Option(False, "--save", help="also write the report to the run directory's scores.json"),
    trust_code: bool = typer.Option(
        False, "--trust-code", help="import the custom model code a checkpoint names (model.type: custom)"
    ),
):
    """Score a trained model on held-out data, or any model's codes given with --latents."""
    from sculptcli.errors import UserError, did_you_mean
    from sculptcli.metrics import METRICS, ScoreInput
    from sculptcli.metrics.lps import PROBES
    from sculptcli.run import check_which, checkpoint_input
    from sculptcli.scoring import read_latents_file, run_metrics

    probe_list = [p.strip() for p in probes.split(",") if p.strip()]
    for p in probe_list:
        if p not in PROBES:
            raise UserError(
                f"unknown probe '{p}'.{did_you_mean(p, PROBES)}",
                fix=f"--probes takes a comma-separated subset of {','.join(PROBES)}",
            )
    check_which(which)
    if plots is not None and plots.exists() and not plots.is_dir():
        raise UserError(f"--plots {plots} is a file", fix="give a directory for the figures")
    from sculptcli.metrics.supervised import DCI_MODELS

    if dci_model not in DCI_MODELS:
        raise UserError(
            f"--dci-model must be one of {', '.join(DCI_MODELS)}, not '{dci_model}'."
            + did_you_mean(dci_model, DCI_MODELS),
            fix="; ".join(f"{k}: {v}" for k, v in DCI_MODELS.items()),
        )
    METRICS.resolve([m.strip() for m in metrics.split(",") if m.strip()])  # unknown names: exit 2 before any work
    options = {"probes": probe_list, "test_frac": test_frac, "dci_model": dci_model, "bins": bins}
    if votes is not None:
        options["votes"] = votes
    if intervene not in ("codes", "render"):
        raise UserError(f"--intervene must be codes or render, not '{intervene}'")
    options["intervene"] = intervene
    if latents is not None:
        if target is not None:
            raise UserError("give a checkpoint/run directory or --latents, not both")
        if save:
            raise UserError("--save writes into a run directory", fix="with --latents, use --json > FILE")
        z, factors = read_latents_file(latents)
        inp = ScoreInput(latents=z, factors=factors, seed=seed, options=options)
        source = {"latents_file": str(latents)}
    else:
        from sculptcli.run import checkpoint_source, open_run

        run = open_run(target, which, device, trust_code)
        inp = checkpoint_input(run, n, seed, options)
        source = checkpoint_source(run.checkpoint)
    if export_latents is not None:
        from safetensors.torch import save_file

        from sculptcli.io import atomic_write

        tensors = {"latents": inp.latents.contiguous()}
        if inp.factors is not None:
            tensors["factors"] = inp.factors.contiguous()
        atomic_write(export_latents, lambda p: save_file(tensors, str(p), metadata={"source": json.dumps(source)}))
    from sculptcli.scoring import ProgressLine

    report = run_metrics(inp, [m.strip() for m in metrics.split(",") if m.strip()], progress=ProgressLine())
    report["settings"].update(source)
    if save:
        from sculptcli.io import atomic_write_text, json_text

        atomic_write_text(run.path.parent / "scores.json", json_text(report, indent=2))
    if plots is not None:
        _write_plots(plots, inp, report, title=str(next(iter(source.values()))))
        report["settings"]["plots"] = str(plots)
    if as_json:
        from sculptcli.io import json_text

        print(json_text(report))
    else:
        render_report(report, title=f"sculpt score · {next(iter(source.values()))}")
        if export_latents is not None:
            console.print(f"latents written to {export_latents}")
        if plots is not None:
            console.print(f"figures written to {plots}/ (marginals.png, covariance.png, lps.png)")


def _write_plots(out_dir: Path, inp, report: dict, title: str) -> None:
    """The diagnostic figures; the prior overlay is a seeded prior sample (none for a --latents file)."""
    import torch

    from sculptcli.viz.diagnostics import write_diagnostics

    prior_samples = None
    if inp.prior is not None:
        prior_samples = inp.prior.sample(max(len(inp.latents), 20_000), torch.Generator().manual_seed(inp.seed + 4))
    per_dim = (report.get("lps") or {}).get("per_dim", {})
    write_diagnostics(out_dir, inp.latents, prior_samples, per_dim, title=title)
