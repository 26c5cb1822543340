"""A checkpoint a CUDA run wrote scores, traverses and copies on a CPU-only machine with `--device auto`
(issue 23). No GPU is needed: a tiny CPU run's checkpoint is rewritten the way the CUDA path writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from sculptcli.checkpoint import load_checkpoint
from sculptcli.cli.app import app
from sculptcli.run import checkpoint_source
from sculptcli.training.trainer import bf16_autocast, run_record
from tests.conftest import TINY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CUDA = torch.device("cuda")
# what `sculpt train --device cuda` records: `precision: auto` (the default) is bf16 autocast on CUDA
CUDA_RECORD = run_record(CUDA, bf16_autocast("auto", CUDA), 1)


def invoke(*args) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def as_written_on_cuda(path: Path) -> None:
    """Rewrite a checkpoint as `save_checkpoint` writes it after CUDA training: `trained_with` device cuda, bf16;
    the weights fp32 (bf16 autocast keeps fp32 weights; none is stored in bf16) and moved to the host from
    channels_last, contiguous; the CUDA generator's state beside the CPU's."""
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for k, v in tensors.items():
        if k.startswith("model.") and v.ndim == 4:
            tensors[k] = v.contiguous(memory_format=torch.channels_last).detach().contiguous().cpu()
    tensors["rng.cuda"] = torch.zeros(16, dtype=torch.uint8)  # torch.cuda.get_rng_state(): seed and offset
    meta["trained_with"] = json.dumps(CUDA_RECORD)
    save_file(tensors, str(path), metadata=meta)


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory) -> Path:
    """A tiny run whose checkpoints say they were trained on CUDA in bf16 (absolute path)."""
    root = tmp_path_factory.mktemp("cudarun")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
        code, _, err = invoke("train", "--config", "tiny.yaml", "--out", "run", "--no-score", "-q",
                              "--max-steps", 6, "--device", "cpu")  # fmt: skip
        assert code == 0, err
    for name in ("last.safetensors", "best.safetensors"):
        as_written_on_cuda(root / "run" / name)
    return root / "run"


def test_the_cuda_record_is_device_cuda_in_bf16(cuda_run):
    assert CUDA_RECORD == {"device": "cuda", "precision": "bf16", "world": 1}
    ckpt = load_checkpoint(cuda_run / "last.safetensors")
    assert checkpoint_source(ckpt)["trained_with"] == CUDA_RECORD
    assert all(v.dtype == torch.float32 for k, v in ckpt.group("model").items() if v.is_floating_point())
    assert "rng.cuda" in ckpt.tensors
    ckpt.restore_rng()  # without CUDA the CUDA generator's state is kept, not restored


def test_a_cuda_checkpoint_scores_on_cpu_with_device_auto(cuda_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke("score", cuda_run, "--json", "--n", 100, "--probes", "linear", "-m", "nmse,lps,mmd2_prior",
                            "--device", "auto")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["trained_with"] == CUDA_RECORD
    assert report["nmse_db"] is not None and report["settings"]["n"] == 100


def test_a_cuda_checkpoint_traverses_on_cpu_with_device_auto(cuda_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("traverse", cuda_run, "--dim", "all", "--out", tmp_path / "grid.png", "--steps", 3,
                          "--seeds", 2, "--device", "auto")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "grid.png").read_bytes()[:8] == PNG_MAGIC


def test_a_cuda_checkpoint_is_copied_on_cpu_with_device_auto(cuda_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("copy-latent", cuda_run, "--out", "copy", "--n-codes", 64, "--n-eval", 40,
                          "--permutations", 10, "--max-steps", 2, "--device", "auto", "-q")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "copy" / "copy_report.json").read_text())
    assert report["teacher"]["trained_with"] == CUDA_RECORD
    assert report["settings"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    student = load_checkpoint(tmp_path / "copy" / "student" / "last.safetensors")
    assert json.loads(student.meta["trained_with"])["device"] == report["settings"]["device"]
