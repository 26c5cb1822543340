"""Shared fixtures: a tiny dSprites config and a CLI runner working in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from sculptcli.cli.app import app

torch.set_num_threads(min(2, os.cpu_count() or 1))

TINY = {
    "data": {"type": "dsprites", "heldout": 300},
    "model": {"type": "conv", "layers": 3, "width": 8, "latent_dim": 3, "fc_hidden": 32},
    "prior": {"type": "gaussian"},
    "objective": {"recon": "bce", "divergence": {"type": "mmd", "weight": 0.3}},
    "train": {
        "batch_size": 16,
        "lr": 1e-3,
        "steps": 12,
        "log_every": 2,
        "eval_every": 6,
        "save_every": 6,
        "eval_n": 100,
    },
    "score": {"n": 200, "probes": ["linear"]},
}


def small_config(data: dict, layers: int = 2, batch_size: int = 8, recon: str = "bce", score_n: int = 20) -> dict:
    """A 3-step run config around any data section (the file-format tests' end-to-end runs)."""
    return {
        "data": data,
        "model": {"type": "conv", "layers": layers, "width": 4, "latent_dim": 2 if layers < 3 else 3, "fc_hidden": 16},
        "prior": {"type": "gaussian"},
        "objective": {"recon": recon, "divergence": {"type": "mmd", "weight": 0.3}},
        "train": {
            "batch_size": batch_size,
            "lr": 1e-3,
            "steps": 3,
            "log_every": 1,
            "eval_every": 3,
            "save_every": 3,
            "eval_n": 8,
        },  # fmt: skip
        "score": {"n": score_n, "probes": ["linear"]},
    }


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Invoke the real `sculpt` app in-process from inside tmp_path; returns (exit_code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str):
        res = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return res.exit_code, res.stdout, res.stderr

    return run


def assert_user_error(result, *fragments):
    """A CLI result (code, stdout, stderr) that is a clean user error: exit 2, 'error:' first, no traceback."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    assert err.startswith("error:"), err
    for f in fragments:
        assert f in err, (f, err)
