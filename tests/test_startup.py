"""The commands that need no torch never import it (issue 22: `sculpt --help` took 11× a minimal Typer app)."""

from __future__ import annotations

import pytest

from benchmarks.bench_startup import PATHS, imports_torch


@pytest.mark.parametrize("name", list(PATHS))
def test_path_does_not_import_torch(name):
    assert not imports_torch(PATHS[name]), f"sculpt {name} imported torch"


def test_the_probe_sees_torch_when_a_command_imports_it():
    assert imports_torch(["prior", "sample", "dsprites-hybrid", "--n", "4", "--out", "z.npy"])


def test_validating_a_config_that_names_metrics_does_not_import_torch():
    """`score.metrics` is checked against the metric catalog, not the metric modules (the quad presets name them)."""
    assert not imports_torch(["presets", "validate", "quad-cm"])
