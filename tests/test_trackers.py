"""Experiment trackers (issue 22, point 2): `--logger` / `train.loggers` write TensorBoard, MLflow and W&B runs
offline inside the run directory; each is read back with the tool's own reader, across a resume."""

from __future__ import annotations

import dataclasses
import glob
import json
import struct
from pathlib import Path

import pytest
import yaml

from sculptcli import trackers
from sculptcli.training.tracking import scalars
from tests.conftest import TINY, assert_user_error

LOGGERS = ["--logger", "tensorboard", "--logger", "mlflow", "--logger", "wandb"]


def wandb_records(path: Path):
    """The records of a W&B offline run file (`run-<id>.wandb`): a 7-byte ':W&B' header, then LevelDB-log
    records (32 KiB blocks; 7-byte record headers: CRC, length, type FULL/FIRST/MIDDLE/LAST) holding W&B's own
    protobuf `Record` messages, parsed with wandb's classes."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, part = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # a block's zero padding
            pos += left
            continue
        part += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(part)
            part = b""
            yield record


def wandb_history(run_dir: Path) -> tuple[list[dict], list[str], set[str]]:
    """Every history row (key -> value JSON), the config's top-level keys, and the run ids, over the offline runs."""
    rows, config, ids = [], [], set()
    for f in sorted(glob.glob(str(run_dir / "wandb" / "offline-run-*" / "run-*.wandb"))):
        for r in wandb_records(Path(f)):
            kind = r.WhichOneof("record_type")
            if kind == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
            elif kind == "config":
                config += [u.key for u in r.config.update]
            elif kind == "run":
                ids.add(r.run.run_id)
    return rows, config, ids


def test_scalars_keep_finite_numbers_and_count_lists():
    record = {"step": 6, "split": "heldout", "nmse_db": -3.0, "lps_mlp": float("nan"), "collapsed_dims": [1, 2],
              "warnings": ["w"], "lps": {"lgbm": 0.2, "per_dim": {"lgbm": [0.1]}}, "note": "x", "n": 10}  # fmt: skip
    assert scalars(record, "heldout") == {
        "heldout/nmse_db": -3.0, "heldout/collapsed_dims": 2.0, "heldout/warnings": 1.0, "heldout/lps/lgbm": 0.2,
        "heldout/n": 10.0,
    }  # fmt: skip


def test_every_tracker_logs_a_run_and_continues_it_on_resume(cli, tmp_path, monkeypatch):
    for module in ("tensorboard", "mlflow", "sqlalchemy", "wandb"):
        pytest.importorskip(module)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_MODE", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    code, out, err = cli("train", "--config", "tiny.yaml", "--out", "run", "-q", "--max-steps", "6", *LOGGERS)
    assert code == 0, err
    run = tmp_path / "run"
    ids = json.loads((run / "trackers.json").read_text())
    code, out, err = cli("train", "--out", "run", "--resume", "-q", "--max-steps", "12")
    assert code == 0, err
    assert json.loads((run / "trackers.json").read_text()) == ids  # the same tracker runs continued
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["loggers"] == ["tensorboard", "mlflow", "wandb"]

    # TensorBoard: its event reader over every event file of the run's log directory
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    steps = lambda tag: [e.step for e in ea.Scalars(tag)]  # noqa: E731
    assert steps("train/loss") == [2, 4, 6, 8, 10, 12]  # each step once across the resume
    assert steps("heldout/nmse_db") == [6, 12] and steps("heldout/lps_linear") == [6, 12]
    assert steps("final/lps/linear") == [6, 12] and steps("final/prior_test/p_value") == [6, 12]
    assert [e.step for e in ea.Images("pictures/traversal")] == [6, 12]
    assert [e.step for e in ea.Images("pictures/marginals")] == [6, 12]
    assert ea.Images("pictures/traversal")[0].width > 50
    assert "_hparams_/experiment" in ea.PluginTagToContent("hparams")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in metrics if r.get("split") == "heldout"][-1]
    assert ea.Scalars("heldout/nmse_db")[-1].value == pytest.approx(last["nmse_db"], rel=1e-6)

    # MLflow: its client on the run's own SQLite store
    from mlflow.tracking import MlflowClient

    assert ids["mlflow"]["uri"] == f"sqlite:///{(run / 'mlflow' / 'mlflow.db').resolve()}"
    client = MlflowClient(ids["mlflow"]["uri"])
    mrun = client.get_run(ids["mlflow"]["run_id"])
    assert mrun.info.status == "FINISHED"
    assert mrun.data.params["train/lr"] == "0.001" and mrun.data.params["model/latent_dim"] == "3"
    history = client.get_metric_history(mrun.info.run_id, "heldout/nmse_db")
    assert [m.step for m in history] == [6, 12] and history[-1].value == pytest.approx(last["nmse_db"], rel=1e-6)
    assert [m.step for m in client.get_metric_history(mrun.info.run_id, "final/lps/linear")] == [6, 12]
    assert {a.path for a in client.list_artifacts(mrun.info.run_id)} >= {"config.json", "images"}
    assert len(client.search_runs([mrun.info.experiment_id])) == 1  # resumed into the same run

    # W&B: the offline run files (one per process that opened it), all the same run id
    rows, config, run_ids = wandb_history(run)
    assert run_ids == {ids["wandb"]["run_id"]}
    assert {"train", "model", "prior", "objective"} <= set(config)
    logged = sorted({r["_step"] for r in rows if "train/loss" in r})
    assert logged == [2, 4, 6, 8, 10, 12]
    pictures = [r["_step"] for r in rows if "pictures/traversal/path" in r]
    assert pictures == [6, 12]
    assert [r["_step"] for r in rows if "final/lps/linear" in r] == [6, 12]


def test_a_logger_whose_package_is_missing_exits_2_naming_the_install(cli, tiny_config, monkeypatch):
    info = trackers.TRACKERS["wandb"]
    monkeypatch.setitem(trackers.TRACKERS, "wandb", dataclasses.replace(info, modules=("no_such_module_sculpt",)))
    result = cli("train", "--config", tiny_config, "--out", "run", "-q", "--logger", "wandb")
    assert_user_error(result, "wandb logger needs no_such_module_sculpt", "pip install wandb")
    assert not Path("run").exists()  # nothing half-written


def test_an_unknown_logger_is_refused_with_the_choices(cli, tiny_config):
    result = cli("train", "--config", tiny_config, "--out", "run", "-q", "--logger", "tensorbord")
    assert_user_error(result, "train.loggers", "tensorboard")
    assert not Path("run").exists()


def test_a_requeued_job_may_add_a_logger(cli, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cmd = ["train", "--config", "tiny.yaml", "--out", "run", "-q", "--no-score"]
    monkeypatch.setenv("SCULPT_FAULT", "term-at-step:3")  # the scheduler's notice: saves step 3 and stops
    code, _, err = cli(*cmd)
    assert code == 130, err
    monkeypatch.delenv("SCULPT_FAULT")
    code, _, err = cli(*cmd, "--resume", "auto", "--logger", "tensorboard")
    assert code == 0, err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["loggers"] == ["tensorboard"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("train/loss")] == [4, 6, 8, 10, 12]  # from where the job went on


def test_a_tracker_that_fails_mid_run_is_dropped_with_a_warning_and_training_goes_on(cli, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from sculptcli.trackers import TensorBoard

    def broken(self, values, step):
        raise OSError("disk full")

    monkeypatch.setattr(TensorBoard, "log_scalars", broken)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    code, out, err = cli("train", "--config", "tiny.yaml", "--out", "run", "--no-score", "--logger", "tensorboard")
    assert code == 0, err
    assert "the TensorBoard logger failed and was stopped (OSError: disk full)" in out + err
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 12  # the run finished; metrics.jsonl has every record
