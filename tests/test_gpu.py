"""The CUDA path (bf16 autocast, channels_last, data generated on the device). Skipped without CUDA."""

import json

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_train_and_score_on_cuda(cli, tiny_config, tmp_path):
    code, _, err = cli("train", "--config", tiny_config, "--out", tmp_path / "run", "-q", "--device", "cuda")
    assert code == 0, err
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert scores["nmse_db"] is not None


def test_dsprites_renders_on_the_device():
    from sculptcli.data.dsprites import DSpritesSpec, index_to_factors, render

    data = DSpritesSpec(heldout=200).build(0, "cuda")
    x = data.train_batch(0, 64)
    assert x.device.type == "cuda" and x.shape == (64, 1, 64, 64)
    idx = torch.arange(0, 737_280, 9_973, device="cuda")
    assert torch.equal(render(index_to_factors(idx)).cpu(), render(index_to_factors(idx.cpu())))


def test_prior_samples_on_the_device():
    from sculptcli.priors import PRIORS

    s = PRIORS.get("gmm")(means=[-1, 1]).build(4, "cuda").sample(1000, torch.Generator("cuda").manual_seed(0))
    assert s.device.type == "cuda" and s.shape == (1000, 4)
