"""The test suite never touches the directory it is started from: every test (and every module- or session-scoped
fixture) runs in a temporary directory, with sculpt's caches there too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TRAINS_WITH_DEFAULT_OUT = """
import os

import yaml
from typer.testing import CliRunner

from sculptcli.cli.app import app
from tests.conftest import TINY


def test_train_into_the_default_run_directory():
    with open("tiny.yaml", "w") as f:
        f.write(yaml.safe_dump(TINY))
    res = CliRunner().invoke(app, ["train", "--config", "tiny.yaml", "-q", "--no-score", "--max-steps", "2"])
    assert res.exit_code == 0, res.stderr
    assert os.path.islink("runs/latest")  # runs/ and runs/latest are written into the cwd the test runs in
"""


def _pytest(test_file: Path, cwd: Path, *plugins: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={test_file.parent}"]
    args += [a for p in plugins for a in ("-p", p)]
    return subprocess.run([*args, str(test_file)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_training_test_leaves_the_invoking_directory_as_it_was(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    test_file = suite / "test_trains.py"
    test_file.write_text(TRAINS_WITH_DEFAULT_OUT)
    invoking = tmp_path / "invoking"
    invoking.mkdir()
    (invoking / "keep.txt").write_text("mine")

    res = _pytest(test_file, invoking, "tests.conftest")  # with the suite's fixtures
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert sorted(os.listdir(invoking)) == ["keep.txt"]

    # the control: without them the same test writes runs/ (and its config) into the invoking directory
    res = _pytest(test_file, invoking)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert sorted(os.listdir(invoking)) == ["keep.txt", "runs", "tiny.yaml"]
