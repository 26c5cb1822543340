"""Atomic file writes: write a temporary file beside the target, fsync, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import numbers
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sculptcli import faults
from sculptcli.errors import UserError


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return (stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH) & ~mask


_FILE_MODE = _umask_mode()


def write_failed(path: Path, e: OSError) -> UserError:
    """The UserError for a write that failed (a full disk, an I/O error): what, where, and that nothing was lost."""
    why = e.strerror or str(e) or type(e).__name__
    return UserError(
        f"could not write {Path(path).name}: {why}",
        where=str(path),
        fix="free disk space or fix the filesystem, then `sculpt train --out DIR --resume`; the previous file is "
        "intact",
    )


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` then atomically move tmp_path to `path` (same directory). A failed write (ENOSPC,
    EIO, ...) leaves `path` as it was and is a UserError naming it."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        faults.on_write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; give the usual umask-based mode
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise write_failed(path, e) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def finite(v: Any) -> Any:
    """`v` with every NaN or infinite float (in nested dicts and lists) replaced by None."""
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [finite(x) for x in v]
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and not math.isfinite(v):
        return None  # Python and numpy floats alike
    return v


def json_text(obj: Any, **kw: Any) -> str:
    """Strict JSON: a non-finite number is written as null (bare NaN/Infinity tokens break strict parsers)."""
    return json.dumps(finite(obj), allow_nan=False, **kw)


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json_text(r) + "\n" for r in records))


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line with a single write; a failed write is undone (the file truncated back to what it held)
    and is a UserError naming the file."""
    line = (json_text(record) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        try:
            faults.on_append()
            if os.write(fd, line) != len(line):
                raise OSError(errno.EIO, "short write")
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise write_failed(path, e) from None
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from a crash: keep what precedes it
    return out
