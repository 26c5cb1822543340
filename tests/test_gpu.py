"""The CUDA path (bf16 autocast, channels_last, data generated on the device). Skipped without CUDA."""

import json

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


CUDA_RECORD = {"device": "cuda", "precision": "bf16", "world": 1}  # `precision: auto` on CUDA is bf16 autocast


def test_train_and_score_on_cuda(cli, tiny_config, tmp_path):
    from sculptcli.checkpoint import load_checkpoint

    code, _, err = cli("train", "--config", tiny_config, "--out", tmp_path / "run", "-q", "--device", "cuda")
    assert code == 0, err
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert scores["nmse_db"] is not None
    assert scores["settings"]["trained_with"] == CUDA_RECORD
    for name in ("last", "best"):
        ckpt = load_checkpoint(tmp_path / "run" / f"{name}.safetensors")
        assert json.loads(ckpt.meta["trained_with"]) == CUDA_RECORD, name
        weights = ckpt.group("model")
        assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())  # autocast: fp32
        assert all(v.is_contiguous() for v in weights.values())  # channels_last on the device, contiguous in the file
    assert "rng.cuda" in load_checkpoint(tmp_path / "run" / "last.safetensors").tensors
    # the CUDA-trained checkpoint read back on the CPU
    code, out, err = cli("score", tmp_path / "run", "--json", "--n", "100", "--probes", "linear", "-m", "nmse",
                         "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["settings"]["trained_with"] == CUDA_RECORD


def test_dsprites_renders_on_the_device():
    from sculptcli.data.dsprites import DSpritesSpec, index_to_factors, render

    data = DSpritesSpec(heldout=200).build(0, "cuda")
    x = data.train_batch(0, 64).images
    assert x.device.type == "cuda" and x.shape == (64, 1, 64, 64)
    idx = torch.arange(0, 737_280, 9_973, device="cuda")
    assert torch.equal(render(index_to_factors(idx)).cpu(), render(index_to_factors(idx.cpu())))


def test_prior_samples_on_the_device():
    from sculptcli.priors import PRIORS

    s = PRIORS.get("gmm")(means=[-1, 1]).build(4, "cuda").sample(1000, torch.Generator("cuda").manual_seed(0))
    assert s.device.type == "cuda" and s.shape == (1000, 4)


def test_a_set_kept_on_the_host_streams_pinned_batches_to_the_device():
    from pathlib import Path

    from sculptcli.data.vision import LabelledImages

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = LabelledImages(
        images, None, None, torch.arange(256), torch.arange(256, 300), None, 0, "cuda", Path("."), "host"
    )
    assert data.images.is_pinned() and data.images.device.type == "cpu"
    for step in range(6):
        ids = data.train_indices(step, 64)
        x = data.train_batch(step, 64).images
        assert x.device.type == "cuda" and torch.equal(x.cpu(), images[ids.cpu()].float() / 255)


def test_two_baselines_and_a_factor_metric_on_cuda(cli, tmp_path):
    import yaml

    from tests.conftest import TINY

    cfg = dict(TINY, objective={"recon": "bce", "divergence": {"type": "factor_tc", "disc_hidden": 32}},
               model={**TINY["model"], "stochastic": True})  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run", "-q", "--device", "cuda")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "scores.json").read_text())["settings"]["trained_with"] == CUDA_RECORD
    code, out, err = cli("score", tmp_path / "run", "--json", "-m", "mig,factorvae", "--intervene", "render",
                         "--votes", "30", "--n", "200", "--device", "cuda")  # fmt: skip
    assert code == 0, err
    assert 0 <= json.loads(out)["factorvae"] <= 1
