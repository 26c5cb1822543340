"""`sculpt prior list|validate|sample|show|plot|mmd`: priors as data you can inspect, draw from and compare."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from sculptcli.cli.common import console, user_errors
from sculptcli.errors import UserError

if TYPE_CHECKING:
    from sculptcli.priors import PriorSpec

app = typer.Typer(help="List, validate, sample, show, plot and compare priors.", no_args_is_help=True)

SAMPLE_FORMATS = (".safetensors", ".npy")
MMD_MAX_N = 10_000  # the test holds a (2n)² kernel matrix

TARGET_HELP = "a prior YAML file, a packaged prior name (sculpt prior list), a run preset or a run config file"
DIM_HELP = "latent dimensions (required for a 1-D prior with no `dims`; must match a prior that fixes its own)"


# ---------------------------------------------------------------- helpers


def _load(target: str, resolve: bool = True) -> PriorSpec:
    """The prior of `target`; with `resolve`, a checkpoint's codes (empirical prior) encoded, ready to sample.
    A prior file or packaged prior loads without the run config's modules (start-up time); a run preset's name
    falls back to them."""
    from sculptcli.priors.files import load_prior

    try:
        prior = load_prior(target)
    except UserError:
        from sculptcli.config import load_prior_or_preset

        prior = load_prior_or_preset(target)
    if resolve and any(getattr(p, "needs_codes", lambda: False)() for p in prior.walk()):
        from sculptcli.build import resolve_prior_codes

        prior = resolve_prior_codes(prior)
    return prior


def _constraints(meta: list[Any]) -> str:
    out = []
    for m in meta:
        for attr, sym in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            v = getattr(m, attr, None)
            if v is not None and type(m).__name__.lower() == attr:
                out.append(f"{sym}{v}")
        if type(m).__name__ == "MinLen":
            out.append(f"len≥{m.min_length}")
        if type(m).__name__ == "MaxLen":
            out.append(f"len≤{m.max_length}")
    return f" ({', '.join(out)})" if out else ""


def type_name(ann: Any) -> str:
    """A readable name for a field annotation: 'float (>0)', 'list[float] | null', 'list[prior]'."""
    origin = get_origin(ann)
    if origin is Annotated:
        base, *meta = get_args(ann)
        return type_name(base) + _constraints(meta)
    if origin in (Union, types.UnionType):
        from sculptcli.priors import PriorSpec

        args = get_args(ann)
        if all(isinstance(a, type) and issubclass(a, PriorSpec) for a in args):
            return "prior"
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(ann))
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in get_args(ann))}]"
    if ann is type(None):
        return "null"
    return ann.__name__ if isinstance(ann, type) else str(ann)


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "(computed)"
    from pydantic_core import PydanticUndefined

    if field.default is None or field.default is PydanticUndefined:
        return "null"
    return json.dumps(field.default) if isinstance(field.default, int | float | str | list) else str(field.default)


def _param_lines(cls: type[PriorSpec]) -> str:
    lines = []
    for name, field in cls.model_fields.items():
        if name == "type":
            continue
        kind = escape(f"{type_name(field.annotation)}{_constraints(field.metadata)} = {_default(field)}")
        text = f"[bold]{name}[/]: {kind}"
        if field.description:
            text += f"\n  [dim]{escape(field.description)}[/]"
        lines.append(text)
    return "\n".join(lines)


def _doc(obj) -> str:
    return " ".join((obj.__doc__ or "").split())


def _file_summary(path: Path) -> str:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _dims_text(prior: PriorSpec) -> str:
    from sculptcli.priors.summary import own_dim

    own = own_dim(prior)
    if own is None:
        return "1-D: i.i.d. over any number of dimensions"
    return f"{own} dimension{'s' if own != 1 else ''}"


def _write(out: Path, write) -> None:
    from sculptcli.io import atomic_write

    if out.is_dir():
        raise UserError(f"{out} is a directory", fix="give a file path for --out")
    try:
        atomic_write(out, write)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}", fix="check the path and its permissions") from None


def _tree(block, label: str | None = None) -> Tree:
    spec = block.spec
    params = escape(", ".join(f"{k}={v}" for k, v in block.params.items()))
    iid = spec.event_dim() is None and block.stop - block.start > 1
    text = f"[bold]{spec.type}[/] [cyan]{block.span()}[/]"
    if params:
        text += f"  {params}"
    if iid:
        text += f"  [dim](i.i.d. ×{block.stop - block.start})[/]"
    tree = Tree(label + text if label else text)
    for i, child in enumerate(block.children):
        tree.add(_tree(child, f"[dim]{escape(f'blocks[{i}]')}[/] "))
    return tree


# ---------------------------------------------------------------- commands


@app.command("list")
@user_errors
def list_priors():
    """The prior types (with their parameters) and the packaged prior files."""
    from sculptcli.priors import PRIORS
    from sculptcli.priors.files import prior_preset_names, prior_presets_dir

    table = Table(title="prior types", title_justify="left", show_lines=True)
    table.add_column("type", style="bold")
    table.add_column("what")
    table.add_column("parameters")
    for name, cls in PRIORS.items():
        table.add_row(name, escape(_doc(cls)), _param_lines(cls))
    console.print(table)

    files = Table(title=f"packaged priors ({prior_presets_dir()})", title_justify="left")
    files.add_column("name", style="bold")
    files.add_column("spec")
    files.add_column("what")
    for name in prior_preset_names():
        path = prior_presets_dir() / f"{name}.yaml"
        try:
            spec = escape(_load(str(path)).describe())
        except UserError as e:
            spec = f"[red]invalid[/]: {escape(e.what.splitlines()[0])}"
        files.add_row(name, spec, escape(_file_summary(path)))
    console.print(files)
    console.print(
        "use one in a run config as [bold]prior: NAME[/] (or a path to your own YAML file); "
        "inspect it with [bold]sculpt prior show NAME[/]"
    )


@app.command("validate")
@user_errors
def validate(target: str = typer.Argument(..., help=TARGET_HELP)):
    """Check a prior spec; print each problem with its key path, or 'ok' with what it is."""
    prior = _load(target, resolve=False)
    text = escape(f"{target}: {prior.describe()} ({_dims_text(prior)})")
    console.print(f"[green]ok[/]: {text}", highlight=False, soft_wrap=True)


@app.command("sample")
@user_errors
def sample(
    target: str = typer.Argument(..., help=TARGET_HELP),
    n: int = typer.Option(..., "-n", "--n", min=1, help="number of samples"),
    out: Path = typer.Option(..., "--out", "-o", help="output file: .safetensors (tensor 'samples') or .npy"),
    dim: int = typer.Option(None, "--dim", min=1, help=DIM_HELP),
    seed: int = typer.Option(0, "--seed", min=0, help="random seed"),
):
    """Draw N samples from a prior and write them as an (N, D) float32 array."""
    suffix = out.suffix.lower()
    if suffix not in SAMPLE_FORMATS:
        raise UserError(
            f"unsupported output format '{out.suffix or '(none)'}' for {out}",
            fix=f"name the file with one of: {', '.join(SAMPLE_FORMATS)}",
        )
    from sculptcli.priors.summary import draw, resolve_dim

    prior = _load(target)
    d = resolve_dim(prior, dim)
    x = draw(prior, n, d, seed).contiguous()
    if suffix == ".npy":
        import numpy as np

        arr = x.numpy()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a handle: np.save would append .npy to the temporary name
                np.save(f, arr, allow_pickle=False)
    else:
        from safetensors.torch import save_file

        def write(tmp: Path) -> None:
            save_file({"samples": x}, str(tmp), metadata={"prior": prior.describe(), "seed": str(seed)})

    _write(out, write)
    console.print(escape(f"wrote {n}×{d} samples of {prior.describe()} to {out}"), highlight=False, soft_wrap=True)


@app.command("show")
@user_errors
def show(
    target: str = typer.Argument(..., help=TARGET_HELP),
    dim: int = typer.Option(None, "--dim", min=1, help=DIM_HELP + " (default for a 1-D prior: 1)"),
    n: int = typer.Option(100_000, "-n", "--n", min=2, help="samples drawn for the statistics"),
    seed: int = typer.Option(0, "--seed", min=0, help="random seed"),
):
    """The spec as a tree (which dims each block covers) and per-dimension statistics of a sample."""
    from sculptcli.priors.summary import QUANTILES, dim_stats, draw, layout, resolve_dim

    prior = _load(target)
    d = resolve_dim(prior, dim, default=1)
    root = layout(prior, d)
    console.print(_tree(root), highlight=False)

    owner = {}
    stack = [root]
    while stack:
        b = stack.pop()
        if not b.children:
            owner.update({j: b.spec.type for j in range(b.start, b.stop)})
        stack.extend(b.children)
    stats = dim_stats(draw(prior, n, d, seed))
    table = Table(
        title=f"per-dimension statistics (n={n}, seed={seed})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("dim", justify="right", overflow="fold")
    table.add_column("prior", overflow="fold")
    for name in ("mean", "std", *(f"q{q * 100:g}%" for q in QUANTILES)):
        table.add_column(name, justify="right", overflow="fold")
    for s in stats:
        values = [s.mean, s.std, *(s.quantiles[q] for q in QUANTILES)]
        table.add_row(str(s.dim), owner.get(s.dim, prior.type), *(f"{v:.3f}" for v in values))
    console.print(table)


@app.command("plot")
@user_errors
def plot(
    target: str = typer.Argument(..., help=TARGET_HELP),
    out: Path = typer.Option(Path("prior.png"), "--out", "-o", help="figure file: .png, .pdf or .svg"),
    dim: int = typer.Option(None, "--dim", min=1, help=DIM_HELP + " (default for a 1-D prior: 1)"),
    n: int = typer.Option(20_000, "-n", "--n", min=2, help="samples drawn for the histograms"),
    seed: int = typer.Option(0, "--seed", min=0, help="random seed"),
):
    """Histograms per dimension (diagonal) and pairwise scatter plots (off-diagonal) of the first 8 dims."""
    from sculptcli.viz.prior_plot import FORMATS, prior_figure

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UserError(
            f"unsupported figure format '{out.suffix or '(none)'}' for {out}",
            fix=f"name the file with one of: {', '.join('.' + f for f in FORMATS)}",
        )
    from sculptcli.priors.summary import draw, resolve_dim

    prior = _load(target)
    d = resolve_dim(prior, dim, default=1)
    fig = prior_figure(draw(prior, n, d, seed), title=prior.describe())
    _write(out, lambda tmp: fig.savefig(tmp, format=fmt))
    console.print(escape(f"wrote {out} ({d} dim{'s' if d != 1 else ''}, n={n})"), highlight=False, soft_wrap=True)


@app.command("mmd")
@user_errors
def mmd(
    a: str = typer.Argument(..., help="the first prior (" + TARGET_HELP + ")"),
    b: str = typer.Argument(..., help="the second prior"),
    n: int = typer.Option(2000, "-n", "--n", min=2, help=f"samples per prior (at most {MMD_MAX_N})"),
    permutations: int = typer.Option(200, "--permutations", min=1, max=10_000, help="permutations of the test"),
    dim: int = typer.Option(None, "--dim", min=1, help=DIM_HELP),
    seed: int = typer.Option(0, "--seed", min=0, help="random seed (samples and permutations)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """MMD² between samples of two priors (the paper's kernel, biased) and a permutation-test p-value."""
    if n > MMD_MAX_N:
        raise UserError(f"-n {n} is too large for the MMD test", fix=f"use -n {MMD_MAX_N} or less")
    import torch

    from sculptcli.priors.summary import draw, own_dim, resolve_dim
    from sculptcli.stats.mmd import mmd_permutation_test

    pa, pb = _load(a), _load(b)
    da, db = own_dim(pa), own_dim(pb)
    if dim is None and da is not None and db is not None and da != db:
        raise UserError(
            f"the priors differ in dimension: {a} covers {da} dims, {b} covers {db}",
            fix="compare priors of the same dimension",
        )
    d = dim or da or db or 1
    for target, prior in ((a, pa), (b, pb)):
        try:
            resolve_dim(prior, d)
        except UserError as e:
            raise UserError(f"{target}: {e.what}", fix="compare priors of the same dimension") from None
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x, y = draw(pa, n, d, generator=gen), draw(pb, n, d, generator=gen)
    stat, p = mmd_permutation_test(x, y, permutations=permutations, seed=seed)
    if as_json:
        typer.echo(json.dumps({"mmd2": stat, "p_value": p, "n": n, "permutations": permutations, "seed": seed}))
        return
    verdict = "differ (p < 0.05)" if p < 0.05 else "are consistent with one distribution (p ≥ 0.05)"
    console.print(
        f"MMD² = {stat:.6g}   p = {p:.4g}\n"
        f"[dim]{escape(pa.describe())} vs {escape(pb.describe())}: d={d}, n={n} per side, {permutations} permutations, "
        f"seed {seed}; RBF at 0.5/1/2× the median distance, biased estimator[/]\n"
        f"the samples {verdict}",
        highlight=False,
        soft_wrap=True,
    )
