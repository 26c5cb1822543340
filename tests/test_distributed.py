"""Multi-process training (torchrun, gloo on CPU): two processes match one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from tests.conftest import TINY

pytestmark = pytest.mark.slow  # long end-to-end runs (still run by default; `-m 'not slow'` skips them)

ENV = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}


def _records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("divergence", [{"type": "mmd", "weight": 3.0}])
def test_two_processes_follow_the_single_process_loss_curve(cli, tmp_path, divergence):
    cfg = dict(
        TINY,
        objective={"recon": "bce", "divergence": divergence},
        # fp32: bf16 autocast (precision auto on a CPU with bf16 instructions) rounds the two shards' gradients
        # apart from the whole batch's, which is not what this test is about
        train={**TINY["train"], "steps": 8, "log_every": 1, "eval_every": 8, "save_every": 8, "precision": "fp32"},
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "one", "-q", "--no-score")[0] == 0
    cmd = [sys.executable, "-m", "sculptcli", "train", "--config", str(tmp_path / "c.yaml"), "--out",
           str(tmp_path / "two"), "--nproc", "2", "--device", "cpu", "-q", "--no-score"]  # fmt: skip
    res = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    one, two = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 9))
    for a, b in zip(one, two, strict=True):
        for k in ("loss", "recon", "div"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (a["step"], k, a[k], b[k])
    # rank 0 alone wrote the run directory: one config, one checkpoint, one metrics file, no stray files
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    with torch.no_grad():
        from safetensors.torch import load_file

        w1, w2 = load_file(tmp_path / "one" / "last.safetensors"), load_file(tmp_path / "two" / "last.safetensors")
        for k in w1:
            if k.startswith("model."):
                assert torch.allclose(w1[k], w2[k], atol=1e-4), k


def _gather_worker(rank: int, world: int, port: int, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from sculptcli.training.distributed import Dist

    d = Dist(rank, world)
    x = torch.arange(6.0).reshape(3, 2).add(100 * rank).requires_grad_(True)
    full = d.gather(x)
    (full**2 * torch.arange(1.0, 7.0)[:, None].repeat(world, 1)[: full.shape[0]]).sum().backward()
    q.put((rank, full.detach().tolist(), x.grad.tolist()))
    dist.destroy_process_group()


def test_all_gather_gradient_is_the_global_gradient_summed_over_processes():
    """Each process computes the same global loss; our rows' gradient is the sum of every process's share."""
    world, port = 2, 29500 + os.getpid() % 1000
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_gather_worker, args=(r, world, port, q)) for r in range(world)]
    for p in procs:
        p.start()
    out = {}
    for _ in procs:
        rank, full, grad = q.get(timeout=120)
        out[rank] = (full, grad)
    for p in procs:
        p.join(timeout=60)
    glob = torch.cat([torch.arange(6.0).reshape(3, 2) + 100 * r for r in range(world)])
    weights = torch.arange(1.0, 7.0)[:, None].repeat(world, 1)[: glob.shape[0]]
    for r in range(world):
        assert torch.equal(torch.tensor(out[r][0]), glob)
        expect = world * 2 * glob[3 * r : 3 * r + 3] * weights[3 * r : 3 * r + 3]  # every process's loss counts
        assert torch.allclose(torch.tensor(out[r][1]), expect)
