"""Runs on one machine share its CPUs: each live `sculpt train` holds a lock file, and a run's intra-op threads are
its CPUs divided by the live runs, rechecked about once a second (two runs with two threads each on two cores
spin-wait on each other, measured 7× slower than one run; see benchmarks/bench_concurrent.py)."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path


def available_cpus() -> int:
    """The CPUs in this process's affinity mask (a container's or `taskset`'s share, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def fixed_threads(requested: int | None) -> int | None:
    """The thread count the user chose: `train.threads`, else a usable OMP_NUM_THREADS; None means share."""
    if requested:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else None


def pick_threads(requested: int | None) -> int:
    """CPU threads for a run alone: the user's fixed choice, else every CPU of the affinity mask."""
    return fixed_threads(requested) or available_cpus()


class CpuShare:
    """Membership of this process in the machine's set of live runs (one flock'ed file per run in a per-user
    directory; a file whose lock can be taken belongs to a dead run and is removed)."""

    def __init__(self, requested: int | None = None, directory: Path | None = None):
        self.fixed = fixed_threads(requested)
        self.cpus = available_cpus()
        self.dir = directory or Path(tempfile.gettempdir()) / f"sculpt-cpu-{os.getuid()}"
        self.path: Path | None = None
        self.fd: int | None = None
        self.checked = time.monotonic()
        if self.fixed is None:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                name = f"{os.getpid()}-{id(self)}"
                tmp = self.dir / f"{name}.tmp"  # locked before it is visible: never mistaken for a dead run's
                self.fd = os.open(tmp, os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.path = self.dir / f"{name}.run"
                os.replace(tmp, self.path)
            except OSError:  # no writable temp dir: run alone on every CPU, as before
                self.close()

    def live_runs(self) -> int:
        """How many runs (this one included) hold a lock in the directory now."""
        if self.fd is None:
            return 1
        live = 1
        for f in self.dir.glob("*.run"):
            if f == self.path:
                continue
            try:
                fd = os.open(f, os.O_RDWR)
            except OSError:  # removed meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1
            else:  # nobody holds it: a run that died without cleaning up
                f.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return live

    def due(self, every: float = 1.0) -> bool:
        """Whether a shared run should recheck its thread count (at most every `every` seconds)."""
        if self.fd is None or time.monotonic() - self.checked < every:
            return False
        self.checked = time.monotonic()
        return True

    def threads(self) -> int:
        """Intra-op threads for this run now: the user's fixed choice, else this run's share of the CPUs."""
        return self.fixed or max(1, self.cpus // self.live_runs())

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    def __enter__(self) -> CpuShare:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
