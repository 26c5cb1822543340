"""Run directories: where a run goes (`--out` or runs/<name>/<timestamp>), `runs/latest`, refusing to mix runs, and
the lock that gives a run directory one writer."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from sculptcli.errors import UserError

RUNS = Path("runs")
MARKERS = ("config.yaml", "metrics.jsonl", "last.safetensors")
LOCK = ".lock"


class RunLock:
    """An exclusive lock on a run directory, held by the one process that writes it, for the whole run.

    `flock` on `<run>/.lock`: the kernel drops it when its holder dies (SIGKILL, out of memory), so a lock left by
    a dead process is never in the way; its file still names that process, which is how a take-over is noticed and
    reported. The file holds JSON (pid, host, since) so that every file of a run directory parses."""

    def __init__(self, run: Path):
        self.path = Path(run) / LOCK
        self.fd: int | None = None
        self.stale: dict | None = None  # the dead holder whose lock was taken over

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            deadline = time.monotonic() + 2.0
            while not holder and time.monotonic() < deadline:  # the holder writes its record just after locking
                time.sleep(0.02)
                holder = _read_holder(fd)
            os.close(fd)
            who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}" if holder else "another process"
            raise UserError(
                f"{self.path.parent} is being written by {who} (since {holder.get('since', '?')})",
                where=str(self.path),
                fix="wait for that run to finish (or stop it), or give another --out",
            ) from None
        previous = _read_holder(fd)
        if previous:
            self.stale = previous
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        """Unlock and empty the lock file (an empty lock file: nobody writes this run)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def describe_stale(self) -> str | None:
        if not self.stale:
            return None
        s = self.stale
        who = f"process {s.get('pid', '?')} on {s.get('host', '?')}"
        return f"took over the lock of {who}, which died without releasing it"


def _read_holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}


def is_run_dir(path: Path) -> bool:
    return any((Path(path) / m).exists() for m in MARKERS)


def default_dir(name: str) -> Path:
    """runs/<name>/<timestamp> (numbered when two runs start in the same second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = RUNS / name / stamp
    i = 1
    while target.exists():
        i += 1
        target = RUNS / name / f"{stamp}-{i}"
    return target


@dataclass
class Claim:
    """A run directory this process now owns: its lock, whether to resume from last.safetensors, and what the
    user should be told about how it was taken (a restart, a lock taken over)."""

    path: Path
    lock: RunLock
    resume: bool
    notes: list[str] = field(default_factory=list)

    def release(self) -> None:
        self.lock.release()


def claim_run_dir(name: str, out: Path | None, mode: str = "new") -> Claim:
    """Lock the directory of a run and decide how it starts. mode: `new` (a fresh run; refuses a directory holding
    another run's checkpoint), `resume` (continue from last.safetensors; the latest run without --out) or `auto`
    (resume when a checkpoint exists, else start). A directory holding a config but no checkpoint — a run killed
    before its first save — starts again in every mode, saying so. Another live writer is an exit 2 naming it."""
    target = Path(out) if out is not None else latest_run() if mode == "resume" else default_dir(name)
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file", fix="give a directory")
    if mode == "resume" and not target.is_dir():
        raise UserError(f"nothing to resume in {target} (no such directory)", fix="drop --resume to start a new run")
    target.mkdir(parents=True, exist_ok=True)
    lock = RunLock(target).acquire()
    claim = Claim(target, lock, resume=False)
    if lock.describe_stale():
        claim.notes.append(lock.describe_stale())
    for tmp in target.glob(".*.tmp"):  # half-written files of a writer that was killed: never renamed, never read
        tmp.unlink(missing_ok=True)
    has_ckpt = (target / "last.safetensors").is_file()
    if has_ckpt and mode in ("resume", "auto"):
        claim.resume = True
        return claim
    if has_ckpt:
        lock.release()
        raise UserError(f"{target} already holds a run", fix="add --resume to continue it, or choose another --out")
    if is_run_dir(target):  # a config (and perhaps metrics) but no checkpoint: the run died before its first save
        claim.notes.append(f"{target} holds a run that never saved a checkpoint: starting it again from step 0")
    elif mode == "resume":
        lock.release()
        raise UserError(
            f"nothing to resume in {target} (no last.safetensors)",
            fix="drop --resume to start a new run, or point --out at an existing run",
        )
    return claim


def new_run_dir(name: str, out: Path | None) -> Path:
    """A directory for runs that is not itself a run (the parent of `--seeds` runs)."""
    target = Path(out) if out is not None else default_dir(name)
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file", fix="give a directory")
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
    """Undo a run that failed before writing anything: remove its empty directory (its released lock file aside),
    re-point runs/latest."""
    run = Path(run)
    if not run.is_dir() or any(p.name != LOCK for p in run.iterdir()):
        return
    (run / LOCK).unlink(missing_ok=True)
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
        if RUNS.is_dir() and not any(RUNS.iterdir()):  # made for this run alone
            RUNS.rmdir()
