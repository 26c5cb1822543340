"""The run's experiment trackers (`train.loggers`) on the training loop: the config at a fresh start, each log
record's terms, each held-out evaluation's metrics, warnings and pictures, and — after the final score — the
scores. Main process only; `metrics.jsonl` is written whatever the trackers do."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sculptcli.trackers import Tracker, flat, open_trackers
from sculptcli.training.hooks import Hook

if TYPE_CHECKING:
    from sculptcli.training.trainer import Loop

SNAPSHOT_N = 1000  # held-out images behind each evaluation's pictures
NOT_SCALARS = {"step", "time", "split"}
COUNTED = {"collapsed_dims", "warnings"}  # lists logged as their length; other lists (per-dimension values) are not


def scalars(record: dict[str, Any], group: str) -> dict[str, float]:
    """The finite numbers of a record as "group/key" (collapsed_dims and warnings: how many)."""
    out = {}
    for k, v in flat(record).items():
        if k in NOT_SCALARS or isinstance(v, str) or (isinstance(v, list) and k not in COUNTED):
            continue
        if isinstance(v, list):
            v = len(v)
        if isinstance(v, bool | int | float) and math.isfinite(v):
            out[f"{group}/{k}"] = float(v)
    return out


class Track(Hook):
    """Open the trackers when the loop starts (continuing their runs on resume), log as the loop goes, close at
    the end. Once started, a tracker that fails (a locked store, a full disk) is dropped with a warning and a
    picture that fails to draw only warns: training and metrics.jsonl go on."""

    def __init__(self, names: list[str]):
        self.names = names
        self.trackers: list[Tracker] = []
        self.images = None

    def on_start(self, loop: Loop) -> None:
        self.trackers = open_trackers(self.names, loop.run_dir, loop.step)
        if loop.step == 0:
            self.each(loop, lambda t: t.log_config(loop.cfg.model_dump(mode="json")))
        held = int(loop.built.data.heldout_index.numel())
        self.images, _ = loop.built.data.heldout(min(SNAPSHOT_N, held))

    def each(self, loop: Loop, call) -> None:
        """`call(tracker)` for every tracker; one that raises is closed, dropped and named in a warning."""
        for t in list(self.trackers):
            try:
                call(t)
            except Exception as e:  # noqa: BLE001 - a tracker is not worth a run
                self.trackers.remove(t)
                loop.message(f"warning: the {type(t).__name__} logger failed and was stopped "
                             f"({type(e).__name__}: {e}); metrics.jsonl has everything")  # fmt: skip
                with contextlib.suppress(Exception):
                    t.close()

    def on_log(self, loop: Loop, record: dict[str, Any]) -> None:
        values = scalars(record, "train")
        self.each(loop, lambda t: t.log_scalars(values, loop.step))

    def on_eval(self, loop: Loop, record: dict[str, Any]) -> None:
        values = scalars(record, "heldout")
        self.each(loop, lambda t: t.log_scalars(values, loop.step))
        if record.get("warnings"):
            text = "\n".join(record["warnings"])
            self.each(loop, lambda t: t.log_text("heldout/warnings", text, loop.step))
        try:
            from sculptcli.viz.snapshots import snapshots

            pictures = snapshots(loop.built.model, self.images, loop.built.prior, loop.step)
        except Exception as e:  # noqa: BLE001 - a picture is not worth a run
            loop.message(f"warning: the trackers' pictures were not drawn ({type(e).__name__}: {e})")
            return
        for name, image in pictures.items():
            self.each(loop, lambda t, name=name, image=image: t.log_image(name, image, loop.step))

    def on_end(self, loop: Loop) -> None:
        close(self.trackers)
        self.trackers = []


def close(trackers: list[Tracker]) -> None:
    """Close every tracker, even when one fails; the first failure is raised after."""
    errors = []
    for t in trackers:
        try:
            t.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    if errors:
        raise errors[0]


def log_final_scores(names: list[str], run_dir: Path, step: int, report: dict[str, Any]) -> None:
    """The final held-out scores (`scores.json`'s numbers, without its settings) into each tracker's run, as
    "final/…" at the run's last step."""
    if not names:
        return
    body = {k: v for k, v in report.items() if k not in ("settings", "not_applicable", "skipped", "config")}
    values = scalars(body, "final")
    trackers = open_trackers(names, run_dir, None)
    try:
        for t in trackers:
            t.log_scalars(values, step)
    finally:
        close(trackers)
