"""Shared fixtures: a tiny dSprites config, one tiny trained run, and a CLI runner.

Every test runs inside its own temporary directory with sculpt's cache in the session's temporary directory, and
the session itself runs from a temporary directory: the suite never writes into the directory it was started from
(`runs/`, `runs/latest`, caches). `_sandbox_session` checks that at the end of the session."""

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


def _listing(root: Path) -> dict[str, str]:
    """What the suite must not change in the invoking directory: its entries, and where runs/latest points."""
    seen = {p.name: "" for p in root.iterdir()} if root.is_dir() else {}
    latest = root / "runs" / "latest"
    if latest.is_symlink():
        seen["runs/latest ->"] = os.readlink(latest)
    if (root / "runs").is_dir():
        seen.update({f"runs/{p.name}": "" for p in (root / "runs").iterdir()})
    return seen


@pytest.fixture(scope="session", autouse=True)
def _sandbox_session(tmp_path_factory):
    """Run the session (module- and session-scoped fixtures too) from a temporary directory, with sculpt's caches
    there; at the end, the invoking directory must be as the suite found it."""
    invoking = Path.cwd()
    before = _listing(invoking)
    mp = pytest.MonkeyPatch()
    mp.chdir(tmp_path_factory.mktemp("session-cwd"))
    mp.setenv("SCULPT_CACHE_DIR", str(tmp_path_factory.mktemp("sculpt-cache")))
    for name in ("SCULPT_DATA_DIR", "SCULPT_FAULT"):
        mp.delenv(name, raising=False)
    yield
    mp.undo()
    after = _listing(invoking)
    assert after == before, f"the test suite changed {invoking}: {sorted(set(after) ^ set(before))}"


@pytest.fixture(autouse=True)
def _own_directory(tmp_path, monkeypatch):
    """Every test starts in its own temporary directory (runs/ and runs/latest land there)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A 4-step TINY dSprites run directory (no scores), trained once per session in its own temporary directory.
    Shared: read it, copy it to change it."""
    root = tmp_path_factory.mktemp("tiny-run")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        res = CliRunner().invoke(
            app, ["train", "--config", "tiny.yaml", "--out", "run", "-q", "--no-score", "--max-steps", "4"],
            catch_exceptions=False,
        )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    return root / "run"


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
