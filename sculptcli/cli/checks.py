"""`sculpt checks`: what this machine will do with sculpt, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from sculptcli.cli.common import console, user_errors


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


@user_errors
def checks(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    runs: Path = typer.Option(Path("runs"), "--runs", help="where runs are written (its free disk is reported)"),
    data_dir: str = typer.Option(None, "--data-dir", help="the data directory to look in (default: as a run does)"),
):
    """Report versions, device and precision, threads, memory, disk, datasets found and optional extras."""
    from rich.table import Table

    from sculptcli.checks import collect

    r = collect(runs, data_dir)
    if as_json:
        print(json.dumps(r, indent=2))
        return
    t = Table(title="sculpt checks", title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    v = r["versions"]
    t.add_row("versions", ", ".join(f"{k} {v[k] or '—'}" for k in v))
    t.add_row("platform", r["platform"])
    d = r["device"]
    if d["type"] == "cuda":
        t.add_row("device", f"cuda: {d['name']} ×{d['count']} (sm {d['capability']}, {_gib(d['memory_bytes'])})")
    else:
        t.add_row("device", f"cpu: {d['name']} ({d['cpu_capability']}); no CUDA device")
    t.add_row("precision", f"bf16 {d['bf16']}; train.precision auto → {d['precision_auto']}")
    th = r["threads"]
    fixed = f", fixed by OMP_NUM_THREADS={th['fixed_by_user']}" if th["fixed_by_user"] else ""
    t.add_row(
        "threads",
        f"{th['available_cpus']} of {th['machine_cpus']} CPUs usable; a run alone takes {th['run_threads']}{fixed} "
        "(live runs share them)",
    )
    m = r["memory"]
    t.add_row("memory", f"{_gib(m['available_bytes'])} free of {_gib(m['total_bytes'])}")
    k = r["disk"]
    t.add_row("disk", f"{_gib(k['free_bytes'])} free of {_gib(k['total_bytes'])} at {k['runs']}")
    dd = r["data"]
    t.add_row("data root", f"{dd['root']} (from {dd['root_from']})")
    for name, s in dd["datasets"].items():
        text = escape(s["path"] if s["found"] else s["problem"])
        if name == "galaxy" and s["found"]:
            text = f"{s['cached_sets']} rendered set(s) cached in {text}"
        t.add_row(f"  {name}", ("[green]✓[/] " if s["found"] else "[yellow]✗[/] ") + text)
    for name, e in r["extras"].items():
        lacking = f" [yellow]needs {', '.join(e['missing'])}[/]" if e.get("missing") and e["version"] else ""
        t.add_row(f"extra {name}", f"{e['version'] or '[dim]not installed[/]'}{lacking} ({escape(e['use'])})")
    console.print(t)
