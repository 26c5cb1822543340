"""Experiment trackers — TensorBoard, MLflow, W&B — behind one small interface (scalars, config, image, text,
close), registered by name with the package and extra each needs; offline unless the user points them online.

Where each writes by default: TensorBoard event files in `<run>/tensorboard`; MLflow a local SQLite store in
`<run>/mlflow` (MLflow 3 keeps its plain file store in maintenance mode; `MLFLOW_TRACKING_URI` points elsewhere,
`MLFLOW_EXPERIMENT_NAME` names the experiment, default "sculpt"); W&B an offline run in `<run>/wandb` (`WANDB_MODE`
=online sends it; `WANDB_PROJECT` names the project, default "sculpt"). A resumed run continues the same tracker
run: the ids are kept in `<run>/trackers.json`, TensorBoard drops the events at or after the resumed step.
Importing this module imports none of the trackers (nor torch)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sculptcli.errors import UserError, did_you_mean
from sculptcli.io import atomic_write_text

STATE_FILE = "trackers.json"  # tracker name -> its run id, for a resumed run


class Tracker:
    """One tracker run. Values are finite floats keyed "group/name"; images are (H, W, 3) uint8 arrays."""

    def log_scalars(self, values: dict[str, float], step: int) -> None: ...
    def log_config(self, config: dict[str, Any]) -> None: ...
    def log_image(self, name: str, image: Any, step: int) -> None: ...
    def log_text(self, name: str, text: str, step: int) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class TrackerInfo:
    name: str
    opener: Callable[[Path, str, int | None, dict], Tracker]  # the class: (run_dir, run name, start step, saved)
    modules: tuple[str, ...]  # importable modules it needs
    install: str  # the pip command that installs them (the extra of the same name installs the same)
    help: str


TRACKERS: dict[str, TrackerInfo] = {}


def tracker(name: str, modules: tuple[str, ...], install: str, help: str):
    """Register a tracker class under `name`."""

    def register(cls):
        if name in TRACKERS:
            raise TypeError(f"tracker '{name}' registered twice")
        TRACKERS[name] = TrackerInfo(name, cls, modules, install, help)
        return cls

    return register


def missing_modules(name: str) -> list[str]:
    return [m for m in TRACKERS[name].modules if importlib.util.find_spec(m) is None]


def require(wanted: list[str]) -> None:
    """Exit 2 before anything is written when a requested tracker's packages are not installed."""
    for name in wanted:
        if name not in TRACKERS:
            raise UserError(f"train.loggers: unknown logger '{name}'.{did_you_mean(name, TRACKERS)}",
                            fix=f"choose from: {', '.join(TRACKERS)}")  # fmt: skip
        if missing := missing_modules(name):
            info = TRACKERS[name]
            raise UserError(
                f"train.loggers: the {name} logger needs {', '.join(missing)}, which is not installed",
                fix=f"`{info.install}` (the same as sculpt's [{name}] extra), or leave out the {name} logger",
            )


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> one level with "a/b" keys (lists and other values kept as they are)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "/"))
        else:
            out[key] = v
    return out


def open_trackers(wanted: list[str], run_dir: Path, start: int | None = 0) -> list[Tracker]:
    """Open every tracker in `wanted` for `run_dir`, continuing the tracker runs saved in `<run>/trackers.json`
    (written atomically before anything is logged). `start`: the step training (re)starts from — a tracker drops
    what a stopped run logged from there on, as the run repeats it —, or None to append (the final scores)."""
    require(wanted)
    path = run_dir / STATE_FILE
    state = json.loads(path.read_text()) if path.exists() else {}
    opened = []
    try:
        for name in wanted:
            t = TRACKERS[name].opener(run_dir, run_dir.name, start, state.get(name, {}))
            state[name] = getattr(t, "state", {})
            opened.append(t)
    except Exception:
        for t in opened:
            t.close()
        raise
    atomic_write_text(path, json.dumps(state, indent=1) + "\n")
    return opened


def _hparams(config: dict[str, Any]) -> dict[str, str | float | int | bool]:
    """A config as flat hyperparameters: numbers and booleans kept, everything else (lists, None) as text."""
    return {k: v if isinstance(v, bool | int | float | str) else json.dumps(v) for k, v in flat(config).items()}


# ---------------------------------------------------------------- TensorBoard


@tracker("tensorboard", ("tensorboard",), "pip install tensorboard", "TensorBoard event files in <run>/tensorboard")
class TensorBoard(Tracker):
    def __init__(self, run_dir: Path, name: str, start: int | None, saved: dict):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: on a resumed (or restarted) run, the events a stopped run wrote after its last checkpoint
        # (step `start`, whose evaluation came before its save) are dropped, as the run repeats those steps
        purge = start + 1 if saved and start is not None else None
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
        self.state = {"log_dir": str(run_dir / "tensorboard")}

    def log_scalars(self, values, step):
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_config(self, config):
        from torch.utils.tensorboard.summary import hparams

        for event in hparams(_hparams(config), {}):  # the HPARAMS tab: experiment, session start and end infos
            self.writer.file_writer.add_summary(event)
        text = json.dumps(config, indent=2)
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def log_image(self, name, image, step):
        self.writer.add_image(name, image, step, dataformats="HWC")

    def log_text(self, name, text, step):
        self.writer.add_text(name, text, step)

    def close(self):
        self.writer.close()


# ---------------------------------------------------------------- MLflow


@tracker(
    "mlflow",
    ("mlflow", "sqlalchemy", "alembic"),
    "pip install mlflow-skinny sqlalchemy alembic",
    "MLflow: a SQLite store in <run>/mlflow (or MLFLOW_TRACKING_URI)",
)
class MLflow(Tracker):
    PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch

    def __init__(self, run_dir: Path, name: str, start: int | None, saved: dict):
        from mlflow.tracking import MlflowClient

        for quiet in ("mlflow", "alembic"):  # its database set-up logs at INFO, which would break the dashboard
            logging.getLogger(quiet).setLevel(logging.WARNING)

        local = run_dir / "mlflow"
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(local / 'mlflow.db').resolve()}"
        if uri.startswith("sqlite:"):
            local.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(uri)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "sculpt")
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            exp_id = found.experiment_id
        elif "MLFLOW_TRACKING_URI" in os.environ:
            exp_id = self.client.create_experiment(experiment)
        else:
            exp_id = self.client.create_experiment(
                experiment, artifact_location=(local / "artifacts").resolve().as_uri()
            )
        run_id = saved.get("run_id")
        if run_id and saved.get("uri") == uri:
            self.client.update_run(run_id, status="RUNNING")
        else:
            run_id = self.client.create_run(exp_id, run_name=name, tags={"sculpt.run_dir": str(run_dir)}).info.run_id
        self.run_id = run_id
        self.state = {"run_id": run_id, "uri": uri, "experiment": experiment}

    def log_scalars(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def log_config(self, config):
        from mlflow.entities import Param

        params = [Param(k, str(v)[:6000]) for k, v in _hparams(config).items()]
        for i in range(0, len(params), self.PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + self.PARAMS_PER_BATCH])
        self.client.log_text(self.run_id, json.dumps(config, indent=2), "config.json")

    def log_image(self, name, image, step):
        self.client.log_image(self.run_id, image, key=name.replace("/", "."), step=step)

    def log_text(self, name, text, step):
        self.client.set_tag(self.run_id, name, text[:5000])

    def close(self):
        self.client.set_terminated(self.run_id)


# ---------------------------------------------------------------- Weights & Biases


@tracker("wandb", ("wandb",), "pip install wandb", "Weights & Biases, offline in <run>/wandb unless WANDB_MODE says")
class WandB(Tracker):
    def __init__(self, run_dir: Path, name: str, start: int | None, saved: dict):
        import wandb

        self.wandb = wandb
        run_id = saved.get("run_id") or uuid.uuid4().hex[:12]
        settings = wandb.Settings(silent=True, console="off", save_code=False, disable_git=True, x_disable_stats=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "sculpt"),
            dir=str(run_dir),
            id=run_id,
            name=name,
            resume="allow",
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new",
            settings=settings,
        )
        self.state = {"run_id": run_id}

    def log_scalars(self, values, step):
        self.run.log(dict(values), step=step)

    def log_config(self, config):
        self.run.config.update(config, allow_val_change=True)

    def log_image(self, name, image, step):
        self.run.log({name: self.wandb.Image(image)}, step=step)

    def log_text(self, name, text, step):
        self.run.log({name: self.wandb.Html(f"<pre>{text}</pre>")}, step=step)

    def close(self):
        self.run.finish()
