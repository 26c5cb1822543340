"""Run directories: where a run goes (`--out` or runs/<name>/<timestamp>), `runs/latest`, and refusing to mix runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sculptcli.errors import UserError

RUNS = Path("runs")
MARKERS = ("config.yaml", "metrics.jsonl", "last.safetensors")


def is_run_dir(path: Path) -> bool:
    return any((Path(path) / m).exists() for m in MARKERS)


def new_run_dir(name: str, out: Path | None, resume: bool) -> Path:
    """The directory for a run. A fresh run refuses a directory holding another run; resume requires one."""
    if out is None:
        if resume:
            target = latest_run()
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = RUNS / name / stamp
            i = 1
            while target.exists():  # two runs in the same second
                i += 1
                target = RUNS / name / f"{stamp}-{i}"
    else:
        target = Path(out)
    if resume:
        if not (target / "last.safetensors").is_file():
            raise UserError(
                f"nothing to resume in {target} (no last.safetensors)",
                fix="drop --resume to start a new run, or point --out at an existing run",
            )
        return target
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file", fix="give a directory")
    if is_run_dir(target):
        raise UserError(f"{target} already holds a run", fix="add --resume to continue it, or choose another --out")
    target.mkdir(parents=True, exist_ok=True)
    return target


def point_latest(run: Path) -> None:
    """Make runs/latest a symlink to `run` (atomically replaced)."""
    RUNS.mkdir(exist_ok=True)
    link = RUNS / "latest"
    tmp = RUNS / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(Path(run).resolve(), RUNS.resolve()))
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        (RUNS / "latest.txt").write_text(str(Path(run).resolve()))


def latest_run() -> Path:
    link = RUNS / "latest"
    if link.exists():
        return link.resolve()
    txt = RUNS / "latest.txt"
    if txt.is_file():
        return Path(txt.read_text().strip())
    raise UserError(
        "no path given and no runs/latest in this directory",
        fix="train first (`sculpt train --preset dsprites-mmd-gaussian`) or give a run directory",
    )


def previous_latest() -> Path | None:
    """Where runs/latest points now (None when nowhere), to restore if a new run fails before it starts."""
    try:
        return latest_run()
    except UserError:
        return None


def abandon(run: Path, previous: Path | None) -> None:
    """Undo a run that failed before writing anything: remove its empty directory, re-point runs/latest."""
    run = Path(run)
    if not run.is_dir() or any(run.iterdir()):
        return
    run.rmdir()
    runs = RUNS.resolve()
    up = run.resolve().parent  # runs/<name>/[<stamp>/] made for this run alone
    while up != runs and runs in up.parents and up.is_dir() and not any(up.iterdir()):
        up.rmdir()
        up = up.parent
    if previous is not None and previous.is_dir():
        point_latest(previous)
    else:
        (RUNS / "latest").unlink(missing_ok=True)
