"""Fault injection for the reliability tests, off unless SCULPT_FAULT is set (comma-separated directives):

    write-kill:N         the N-th atomic write of this process dies by SIGKILL half-way through its temporary file
    write-error:N:ERRNO  the N-th atomic write fails with OSError(ERRNO), e.g. ENOSPC or EIO
    append-error:N:ERRNO the N-th metrics append fails likewise
    SIG-at-step:K        the trainer sends itself SIG (kill, term or int) right after optimizer step K

Counting starts at 1. Nothing here runs in normal use: `enabled()` is False and every hook returns at once."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

_COUNTS: dict[str, int] = {}
_SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}


def _directives() -> list[list[str]]:
    raw = os.environ.get("SCULPT_FAULT", "")
    return [d.split(":") for d in raw.split(",") if d.strip()]


def enabled() -> bool:
    return bool(os.environ.get("SCULPT_FAULT"))


def _hit(kind: str) -> list[str] | None:
    """The directive of `kind` whose count this call reaches, if any."""
    if not enabled():
        return None
    _COUNTS[kind] = _COUNTS.get(kind, 0) + 1
    for d in _directives():
        if d[0] == kind and int(d[1]) == _COUNTS[kind]:
            return d
    return None


def on_write(tmp: Path) -> None:
    """Called by `atomic_write` after the temporary file is written, before it is renamed over the target."""
    if _hit("write-kill"):
        size = tmp.stat().st_size
        with open(tmp, "r+b") as f:
            f.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    d = _hit("write-error")
    if d:
        code = getattr(errno, d[2])
        raise OSError(code, os.strerror(code), str(tmp))


def on_append() -> None:
    d = _hit("append-error")
    if d:
        code = getattr(errno, d[2])
        raise OSError(code, os.strerror(code))


def at_step(step: int) -> None:
    if not enabled():
        return
    for d in _directives():
        if d[0].endswith("-at-step") and int(d[1]) == step:
            os.kill(os.getpid(), _SIGNALS[d[0].split("-")[0]])
