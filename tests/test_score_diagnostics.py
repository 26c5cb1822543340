"""`sculpt score` diagnostics: the prior_test and ks metrics, and the --plots figures."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sculptcli.cli.app import app
from sculptcli.metrics import METRICS, ScoreInput
from sculptcli.priors.builtin import Gaussian, Product, Uniform
from sculptcli.viz.diagnostics import covariance_figure, write_diagnostics

FIGURES = ["covariance.png", "lps.png", "marginals.png"]


def _metrics(latents, prior, seed=0):
    inp = ScoreInput(latents=latents, prior=prior, seed=seed)
    out = {}
    for name in ("prior_test", "ks"):
        part = METRICS.get(name)(inp)
        part.pop("_settings", None)
        out.update(part)
    return out


@pytest.mark.parametrize("spec", [Gaussian(), Product(blocks=[Gaussian(), Uniform(low=-1, high=1), Gaussian()])])
def test_codes_drawn_from_the_prior_pass_and_shifted_codes_fail(spec):
    prior = spec.build(3)
    z = prior.sample(2000, torch.Generator().manual_seed(123))
    r = _metrics(z, prior)
    assert r["prior_test"]["n"] == 2000 and r["prior_test"]["permutations"] == 200
    assert r["prior_test"]["p_value"] > 0.05
    assert len(r["ks"]["per_dim"]) == 3 and r["ks"]["max"] < 0.1
    assert r["ks"]["max"] == max(r["ks"]["per_dim"])
    shifted = _metrics(z + torch.tensor([0.0, 0.3, 0.0]), prior)
    assert shifted["prior_test"]["p_value"] < 0.01
    assert shifted["ks"]["per_dim"][1] > 0.1 and shifted["ks"]["per_dim"][0] < 0.1


def test_no_prior_gives_nulls_and_settings_are_recorded():
    assert _metrics(torch.randn(50, 2), None) == {"prior_test": None, "ks": None}
    prior = Gaussian().build(2)
    part = METRICS.get("prior_test")(
        ScoreInput(latents=torch.randn(3000, 2), prior=prior, options={"prior_test_n": 100})
    )
    assert part["prior_test"]["n"] == 100 and part["_settings"]["prior_test"]["n"] == 100
    assert METRICS.get("ks")(ScoreInput(latents=torch.randn(30, 2), prior=prior))["_settings"]["ks"]["prior_n"] > 0


def test_diagnostic_figures_without_a_prior_and_for_many_dims(tmp_path):
    paths = write_diagnostics(tmp_path / "figs", torch.randn(300, 3), None, {}, title="codes")
    assert sorted(p.name for p in paths) == FIGURES
    for p in paths:
        with Image.open(p) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    covariance_figure(torch.randn(200, 20))  # no per-cell values beyond 16 dims, still draws


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import yaml
    from conftest import TINY

    root = tmp_path_factory.mktemp("diag")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    res = CliRunner().invoke(
        app,
        ["train", "--config", str(root / "tiny.yaml"), "--out", str(root / "run"), "-q", "--no-score"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.stderr
    return root / "run"


def test_score_plots_and_prior_fit_keys(cli, run_dir, tmp_path):
    z = tmp_path / "z.safetensors"
    code, out, err = cli("score", run_dir, "--json", "--probes", "linear", "--n", "200",
                         "--plots", tmp_path / "figs", "--export-latents", z)  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == FIGURES
    for name in FIGURES:
        with Image.open(tmp_path / "figs" / name) as im:
            im.load()
    pt = r["prior_test"]
    assert set(pt) == {"statistic", "p_value", "permutations", "n"}
    assert pt["statistic"] > -1e-6 and 0 < pt["p_value"] <= 1 and pt["permutations"] == 200 and pt["n"] == 200
    assert len(r["ks"]["per_dim"]) == 3 and all(0 <= v <= 1 for v in r["ks"]["per_dim"])
    assert r["ks"]["max"] == max(r["ks"]["per_dim"])
    s = r["settings"]
    assert s["prior_test"]["permutations"] == 200 and s["ks"]["n"] == 200 and s["plots"] == str(tmp_path / "figs")

    # codes without a checkpoint: no prior, so nulls, and marginals without the overlay
    code, out, err = cli("score", "--latents", z, "--json", "--probes", "linear", "--plots", tmp_path / "figs2")
    assert code == 0, err
    r2 = json.loads(out)
    assert r2["prior_test"] is None and r2["ks"] is None
    assert sorted(p.name for p in (tmp_path / "figs2").iterdir()) == FIGURES

    # the table shows both
    code, out, err = cli("score", run_dir, "--probes", "linear", "--n", "100")
    assert code == 0, err
    assert "prior test p" in out and "KS max" in out and "per-dimension KS" in out


def test_plots_onto_a_file_is_refused(cli, run_dir, tmp_path):
    (tmp_path / "taken").write_text("x")
    code, _, err = cli("score", run_dir, "--probes", "linear", "--plots", tmp_path / "taken")
    assert code == 2 and "--plots" in err
