"""`sculpt compare`: the paper-style table of several runs — rows grouped by preset, mean ± std over seeds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sculptcli.cli.common import console, is_tty, user_errors


@user_errors
def compare(
    runs: list[Path] = typer.Argument(..., help="run directories, or folders holding them (e.g. runs/)"),
    metrics: str = typer.Option(
        None, "--metrics", help="comma-separated columns by dotted path (default: the paper's: cov_ratio, lps.lgbm, …)"
    ),
    group_by: str = typer.Option("name", "--group-by", help="config key that groups runs into rows (default: name)"),
    csv_out: Path = typer.Option(None, "--csv", help="also write the table as CSV (mean and std columns)"),
    md_out: Path = typer.Option(None, "--md", help="also write the table as Markdown"),
    digits: int = typer.Option(3, "--digits", min=0, max=8, help="decimals shown"),
    plot: Path = typer.Option(
        None, "--plot", help="also draw LPS-lgbm against NMSE dB (one dot per run, mean ± std per group) to a PNG"
    ),
    show_timings: bool = typer.Option(
        False, "--timings", help="also show the seconds each metric took to score (settings.seconds), slowest first"
    ),
):
    """Compare scored runs: one row per preset (or --group-by key), mean ± std over its seeds."""
    from sculptcli.aggregate import aggregate, choose_columns, to_csv, to_markdown
    from sculptcli.io import atomic_write_text

    rows = aggregate(runs, group_by)
    cols = choose_columns(
        rows, [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None, with_timings=show_timings
    )
    if not is_tty():  # piped or logged: the whole Markdown table, never truncated to a terminal width
        print(to_markdown(rows, cols, digits), end="")
    else:
        _print_table(rows, cols, digits)
    if csv_out is not None:
        atomic_write_text(csv_out, to_csv(rows, cols))
        console.print(f"CSV written to {csv_out}")
    if md_out is not None:
        atomic_write_text(md_out, to_markdown(rows, cols, digits))
        console.print(f"Markdown written to {md_out}")
    if plot is not None:
        from sculptcli.viz.compare_plot import write_compare_plot

        write_compare_plot(rows, plot)
        console.print(f"plot written to {plot}")


def _print_table(rows, cols: list[str], digits: int) -> None:
    from sculptcli.aggregate import fmt, label

    table = Table(title=f"sculpt compare · {sum(len(r.runs) for r in rows)} runs", title_justify="left")
    table.add_column("run", style="bold")
    table.add_column("n", justify="right")
    for c in cols:
        table.add_column(label(c), justify="right")
    for row in rows:
        table.add_row(row.group, str(len(row.runs)), *[fmt(*row.stats(c), digits) for c in cols])
    console.print(table)
