"""The public Python API (`import sculptcli as sculpt`): cheap to import, one exception type, the paper's MMD in
anyone's loop, LPS and scores with the CLI's keys, runs trained and reopened from Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sculptcli as sculpt
from sculptcli.stats.mmd import mmd2
from tests.conftest import assert_user_error

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_import_is_cheap_and_lazy(tmp_path):
    code = (
        "import sys, sculptcli; assert 'torch' not in sys.modules, 'torch imported'; "
        "assert sculptcli.UserError and 'torch' not in sys.modules; "
        "sculptcli.prior; assert 'torch' in sys.modules; print(sorted(sculptcli.__all__))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "MMDLoss" in res.stdout and "open_run" in res.stdout
    with pytest.raises(AttributeError):
        sculpt.no_such_name  # noqa: B018


def test_prior_from_name_mapping_and_errors():
    hybrid = sculpt.prior("dsprites-hybrid")
    assert hybrid.dim == 5 and hybrid.sample(64, seed=1).shape == (64, 5)
    assert torch.equal(hybrid.sample(8, seed=3), hybrid.sample(8, seed=3))
    g = sculpt.prior({"type": "gaussian", "std": 2.0}, dim=3)
    assert abs(float(g.sample(20_000, seed=0).std()) - 2.0) < 0.05  # known answer: the declared std
    with pytest.raises(sculpt.UserError, match="dim="):
        sculpt.prior({"type": "gaussian"})
    with pytest.raises(sculpt.UserError, match="unknown prior type 'gausian'"):
        sculpt.prior({"type": "gausian"}, dim=2)
    with pytest.raises(sculpt.UserError, match="5 dimensions"):
        sculpt.prior("dsprites-hybrid", dim=4)
    err = pytest.raises(sculpt.UserError, sculpt.prior, "no-such-prior").value
    assert err.what and err.fix  # what / where / fix


def test_mmd_loss_is_the_papers_estimator_and_differentiable():
    prior = sculpt.prior({"type": "gaussian"}, dim=4)
    mmd = sculpt.MMDLoss(prior)
    assert isinstance(mmd, torch.nn.Module)
    z = (torch.randn(64, 4) + 1.0).requires_grad_()
    loss = mmd(z, generator=torch.Generator().manual_seed(7))
    # known answer: the biased V-statistic with RBFs at 0.5, 1, 2 × the pooled median, against the same draws
    want = mmd2(z.detach(), prior.sample(64, seed=7), scales=(0.5, 1.0, 2.0), estimator="biased")
    assert torch.allclose(loss.detach(), want, rtol=1e-6, atol=1e-7)
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    unbiased = sculpt.MMDLoss(prior, estimator="unbiased", scales=[1.0])
    got = unbiased(z.detach(), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(got, mmd2(z.detach(), prior.sample(64, seed=7), scales=(1.0,), estimator="unbiased"))
    with pytest.raises(sculpt.UserError, match="kernel"):
        sculpt.MMDLoss(prior, kernel="laplace")
    with pytest.raises(sculpt.UserError, match=r"\[n, 4\]"):
        mmd(torch.zeros(8, 3))


def test_lps_known_answer():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 1, generator=g), torch.randn(600, 1, generator=g)
    z = torch.cat([a, b, a + b, torch.randn(600, 1, generator=g)], 1)  # dim 2 = dim 0 + dim 1; dim 3 independent
    r = sculpt.lps(z, probe="linear")
    assert r.score == r.mean and len(r.per_dim) == 4
    assert min(r.per_dim[:3]) > 0.45 and r.per_dim[2] > 0.99 and abs(r.per_dim[3]) < 0.05


def test_score_has_the_keys_of_the_cli(cli, tmp_path):
    from safetensors.torch import save_file

    z = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    save_file({"latents": z}, str(tmp_path / "z.safetensors"))
    code, out, err = cli("score", "--latents", tmp_path / "z.safetensors", "--json", "--metrics", "basic",
                         "--probes", "linear")  # fmt: skip
    assert code == 0, err
    from_cli = json.loads(out)
    s = sculpt.score(z, metrics="basic", probes=["linear"])
    assert set(s) == set(from_cli)
    assert s["lps"] == from_cli["lps"]  # same codes, same seed: the same numbers
    assert set(from_cli["settings"]) - {"latents_file"} <= set(s["settings"])
    with pytest.raises(sculpt.UserError, match="factors"):
        sculpt.score(z, factors=torch.zeros(10, 2))


def test_open_run_encodes_and_decodes(tiny_run):
    run = sculpt.open_run(tiny_run)
    assert run.step == 4 and run.config.model.latent_dim == 3 and run.scores is None
    images, _ = run.heldout(6)
    z = run.encode(images)
    assert z.shape == (6, 3) and z.dtype == torch.float32
    x = run.decode(z)
    assert x.shape == images.shape and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal(z, run.model.embed(images))
    assert sculpt.open_run(tiny_run / "last.safetensors").step == 4
    with pytest.raises(sculpt.UserError, match="decode takes codes"):
        run.decode(torch.zeros(2, 5))
    with pytest.raises(sculpt.UserError, match="no such checkpoint"):
        sculpt.open_run(tiny_run / "nope")


def test_errors_are_the_clis_exit_2(cli):
    assert_user_error(cli("score", "nowhere"), "no such checkpoint")


@pytest.mark.slow
def test_example_script_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python_api.py"), str(tmp_path)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "LPS (linear)" in res.stdout and "decoded (8, 1, 64, 64)" in res.stdout
    assert (tmp_path / "run" / "last.safetensors").is_file() and (tmp_path / "run" / "scores.json").is_file()
