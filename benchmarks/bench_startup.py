"""Start-up time of the commands that need no torch, against a minimal two-command Typer app's `--help`.

    python -m benchmarks.bench_startup [--repeats 5]

Each path runs as a fresh `python -m sculptcli ...` process (what the `sculpt` script runs), interleaved with the
reference: a two-command Typer app the benchmark writes to a temporary file, run with `--help`. Reported: the
median wall time of each over `repeats` runs and its ratio to the reference's median. Target: ≤ 1.5×. A second
reference row, the minimal app running a command with an option, shows typer's own cost of running a command.
Every path is also checked to leave torch unimported (`-X importtime` would show it; here: `sys.modules`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS: dict[str, list[str]] = {
    "--help": ["--help"],
    "--version": ["--version"],
    "presets list": ["presets", "list"],
    "presets show": ["presets", "show", "dsprites-mmd-gaussian"],
    "prior list": ["prior", "list"],
    "prior validate": ["prior", "validate", "dsprites-hybrid"],
}

MINIMAL_APP = '''
import typer

app = typer.Typer(add_completion=False)


@app.command()
def hello(name: str = "world"):
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def bye():
    """Say bye."""
    typer.echo("bye")


if __name__ == "__main__":
    app()
'''

# Runs the CLI in-process and reports whether torch was imported (the check behind the table's last column).
PROBE = """import sys
sys.argv = ['sculpt', *sys.argv[1:]]
try:
    from sculptcli.cli.app import main
    main()
except SystemExit:
    pass
print('TORCH_IMPORTED' if 'torch' in sys.modules else 'TORCH_FREE', file=sys.stderr)
"""


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def imports_torch(args: list[str], env: dict[str, str] | None = None) -> bool:
    """Whether `sculpt ARGS` imports torch (run in a fresh interpreter)."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True)
    return "TORCH_IMPORTED" in out.stderr


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
    with tempfile.TemporaryDirectory() as tmp:
        ref_app = Path(tmp) / "minimal_app.py"
        ref_app.write_text(MINIMAL_APP)
        cmds = {
            "minimal Typer --help": [sys.executable, str(ref_app), "--help"],
            # for context: typer itself imports pydantic (its _adapters) to run a command with arguments
            "minimal Typer hello --name x": [sys.executable, str(ref_app), "hello", "--name", "x"],
        }
        cmds |= {f"sculpt {k}": [sys.executable, "-m", "sculptcli", *v] for k, v in PATHS.items()}
        for cmd in cmds.values():  # warm the file cache once
            _wall(cmd, env)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.repeats):
            for name, cmd in cmds.items():
                times[name].append(_wall(cmd, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med["minimal Typer --help"]
    rows = {
        k: {"median_s": round(v, 3), "ratio": round(v / ref, 2)}
        | ({"torch_imported": imports_torch(PATHS[k[len("sculpt ") :]], env)} if k.startswith("sculpt ") else {})
        for k, v in med.items()
    }
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "repeats": args.repeats,
        "paths": rows,
        "worst_ratio": max(r["ratio"] for k, r in rows.items() if k.startswith("sculpt ")),
    }
    print(f"{'path':<26} {'median s':>9} {'× ref':>6}  torch")
    for k, r in rows.items():
        print(f"{k:<26} {r['median_s']:>9.3f} {r['ratio']:>6.2f}  {r.get('torch_imported', '')}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
