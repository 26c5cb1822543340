"""Many nodes (issue 22, point 7): two torchrun "nodes" of one process each, meeting at a c10d rendezvous on
localhost (gloo on CPU), follow the one-process loss curve — the README's multi-node recipe, run for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from tests.conftest import TINY

pytestmark = pytest.mark.slow

ENV = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}


def _records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_follow_the_single_process_loss_curve(cli, tmp_path):
    cfg = dict(
        TINY,
        objective={"recon": "bce", "divergence": {"type": "mmd", "weight": 3.0}},
        train={**TINY["train"], "steps": 4, "log_every": 1, "eval_every": 4, "save_every": 4, "precision": "fp32"},
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "one", "-q", "--no-score")[0] == 0
    endpoint = f"127.0.0.1:{_free_port()}"
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
              "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "sculpt-test"]  # fmt: skip
    train = ["-m", "sculptcli", "train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "two"),
             "--device", "cpu", "-q", "--no-score"]  # fmt: skip
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(launch + train, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outs = []
    try:
        for p in nodes:
            outs.append(p.communicate(timeout=300)[0].decode(errors="replace"))
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in nodes), "\n----\n".join(o[-3000:] for o in outs)
    one, two = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 5))
    for a, b in zip(one, two, strict=True):
        for k in ("loss", "recon", "div"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (a["step"], k, a[k], b[k])
