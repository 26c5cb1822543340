"""`sculpt presets list|show|copy|validate`: the packaged presets, first-class."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sculptcli.cli.common import console, user_errors
from sculptcli.errors import UserError
from sculptcli.presetfiles import preset_names, preset_path, presets_dir

app = typer.Typer(help="List, show, copy and validate the packaged presets.", no_args_is_help=True)


def _summary(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


@app.command("list")
@user_errors
def list_presets():
    """The packaged presets and what each is."""
    table = Table(title=f"presets ({presets_dir()})")
    table.add_column("name", style="bold")
    table.add_column("what")
    for name in preset_names():
        table.add_row(name, _summary(preset_path(name)))
    console.print(table)
    console.print(
        "run one with [bold]sculpt train --preset NAME[/]; edit a copy with "
        "[bold]sculpt presets copy NAME my.yaml[/] then [bold]sculpt train --config my.yaml[/]"
    )


@app.command("show")
@user_errors
def show(name: str = typer.Argument(..., help="preset name")):
    """Print a preset's YAML (with its header saying how to run it)."""
    console.print(preset_path(name).read_text(encoding="utf-8"), markup=False, highlight=False)


@app.command("copy")
@user_errors
def copy(
    name: str = typer.Argument(..., help="preset name"),
    dest: Path = typer.Argument(..., help="where to write the copy"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
):
    """Copy a preset to a file you can edit, then run it with `sculpt train --config FILE`."""
    src = preset_path(name)
    if dest.is_dir():
        dest = dest / src.name
    if dest.exists() and not force:
        raise UserError(f"{dest} exists", fix="choose another path or add --force")
    from sculptcli.io import atomic_write_text

    atomic_write_text(dest, src.read_text(encoding="utf-8"))
    console.print(f"wrote {dest}; run it with: sculpt train --config {dest}")


@app.command("validate")
@user_errors
def validate(target: str = typer.Argument(..., help="a preset name or a YAML config file")):
    """Check a preset or config file against the schema without running it."""
    from sculptcli.config import load_config

    path = Path(target)
    is_file = path.suffix in (".yaml", ".yml") or path.exists()
    cfg = load_config(preset=None if is_file else target, config=path if is_file else None)
    console.print(
        f"[green]ok[/]: {target} ({cfg.data.type}, {cfg.model.type} d={cfg.model.latent_dim}, "
        f"{cfg.objective.divergence.type} → {cfg.prior.describe()})"
    )
