"""`sculpt checks`: the environment report (issue 22)."""

from __future__ import annotations

import json


def test_checks_json_has_every_section(cli, tmp_path, monkeypatch):
    (tmp_path / "d" / "MNIST" / "raw").mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (tmp_path / "d" / "MNIST" / "raw" / name).write_bytes(b"")
    (tmp_path / "d" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("SCULPT_DATA_DIR", str(tmp_path / "d"))
    code, out, err = cli("checks", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert set(r) == {"versions", "platform", "device", "threads", "memory", "disk", "data", "extras"}
    assert {"python", "sculpt", "torch", "torchvision", "lightgbm", "scikit-learn"} <= set(r["versions"])
    assert r["device"]["type"] in ("cpu", "cuda") and r["device"]["precision_auto"] in ("bf16", "fp32")
    assert r["threads"]["run_threads"] >= 1 and r["disk"]["free_bytes"] > 0
    data = r["data"]
    assert data["root_from"] == "$SCULPT_DATA_DIR" and data["root"] == str((tmp_path / "d").resolve())
    assert data["datasets"]["mnist"] == {"found": True, "path": str((tmp_path / "d" / "MNIST" / "raw").resolve())}
    assert data["datasets"]["cifar10"]["found"] is False and "CIFAR-10" in data["datasets"]["cifar10"]["problem"]
    assert set(r["extras"]) == {"galsim", "tensorboard", "mlflow", "wandb"}


def test_checks_table(cli):
    code, out, _ = cli("checks", "--data-dir", "nowhere")
    assert code == 0
    for word in ("versions", "precision", "threads", "memory", "disk", "mnist", "extra wandb"):
        assert word in out
