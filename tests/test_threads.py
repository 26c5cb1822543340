"""CPU threads per run: train.threads, else OMP_NUM_THREADS, else the affinity mask; bf16 on CPUs without it warns."""

import os

import pytest

from sculptcli.training import trainer
from sculptcli.training.cpushare import pick_threads


def test_explicit_threads_win(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert pick_threads(3) == 3


def test_omp_num_threads_beats_the_affinity_mask(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert pick_threads(None) == 5


@pytest.mark.parametrize("bad", ["", "0", "two", "-1"])
def test_unusable_omp_value_falls_back_to_the_affinity_mask(monkeypatch, bad):
    monkeypatch.setenv("OMP_NUM_THREADS", bad)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert pick_threads(None) == 3  # the CPUs this process may use, not os.cpu_count()


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "want"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_bf16_probe_reads_the_cpu_flags(monkeypatch, avx512_bf16, amx, want):
    class Cpu:
        _is_avx512_bf16_supported = staticmethod(lambda: avx512_bf16)
        _is_amx_tile_supported = staticmethod(lambda: amx)

    monkeypatch.setattr(trainer.torch, "cpu", Cpu())
    assert trainer.cpu_has_bf16() is want


def test_bf16_probe_never_raises(monkeypatch):
    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("no probe")

    monkeypatch.setattr(trainer.torch, "cpu", Broken())
    assert trainer.cpu_has_bf16() is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_where_the_hardware_runs_it(monkeypatch, native):
    import torch

    from sculptcli import precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: native)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert trainer.bf16_autocast("auto", cpu) is native  # emulated bf16 is far slower than fp32
    assert trainer.bf16_autocast("auto", cuda) is True
    assert trainer.bf16_autocast("fp32", cuda) is False and trainer.bf16_autocast("bf16", cpu) is True


def test_the_effective_precision_is_recorded_in_checkpoints_and_scores(cli, tiny_config, tmp_path):
    import json

    from sculptcli.checkpoint import load_checkpoint

    assert cli("train", "--config", tiny_config, "--out", tmp_path / "run", "-q", "--no-score")[0] == 0
    meta = json.loads(load_checkpoint(tmp_path / "run" / "last.safetensors").meta["trained_with"])
    assert meta == {"device": "cpu", "precision": "bf16" if trainer.cpu_has_bf16() else "fp32", "world": 1}
    code, out, _ = cli("score", tmp_path / "run", "--json", "--probes", "linear")
    assert code == 0 and json.loads(out)["settings"]["trained_with"] == meta
    assert cli("train", "--config", tiny_config, "--out", tmp_path / "scored", "-q")[0] == 0  # the end-of-run score
    assert json.loads((tmp_path / "scored" / "scores.json").read_text())["settings"]["trained_with"] == meta


def test_live_runs_share_the_cpus_and_dead_ones_are_forgotten(tmp_path, monkeypatch):
    from sculptcli.training import cpushare
    from sculptcli.training.cpushare import CpuShare

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpushare, "available_cpus", lambda: 4)
    a = CpuShare(directory=tmp_path)
    assert a.live_runs() == 1 and a.threads() == 4
    b = CpuShare(directory=tmp_path)
    assert a.live_runs() == b.live_runs() == 2 and a.threads() == 2
    (tmp_path / "12345-1.run").write_text("")  # a run that died without cleaning up: nobody holds its lock
    assert a.threads() == 2 and not (tmp_path / "12345-1.run").exists()
    b.close()
    assert a.threads() == 4 and sorted(p.name for p in tmp_path.iterdir()) == [a.path.name]
    a.close()
    assert list(tmp_path.iterdir()) == []


def test_a_fixed_thread_count_does_not_join_the_share(tmp_path, monkeypatch):
    from sculptcli.training.cpushare import CpuShare

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with CpuShare(directory=tmp_path) as s:
        assert s.threads() == 3 and list(tmp_path.iterdir()) == []
    with CpuShare(1, directory=tmp_path) as s:
        assert s.threads() == 1


def test_another_process_holding_a_slot_counts(tmp_path, monkeypatch):
    import subprocess
    import sys

    from sculptcli.training import cpushare
    from sculptcli.training.cpushare import CpuShare

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpushare, "available_cpus", lambda: 2)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from sculptcli.training.cpushare import "
         f"CpuShare; s = CpuShare(directory=Path({str(tmp_path)!r})); print('in', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "in"
        with CpuShare(directory=tmp_path) as s:
            assert s.live_runs() == 2 and s.threads() == 1
    finally:
        holder.kill()
        holder.wait()
    with CpuShare(directory=tmp_path) as s:  # killed: its lock went with it
        assert s.live_runs() == 1 and s.threads() == 2
