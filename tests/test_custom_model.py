"""`model.type: custom`: your own encoder and decoder, trained, scored, traversed and copied like a packaged model;
a checkpoint's code is imported only with --trust-code; bad targets exit 2 naming the key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, assert_user_error

MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, in_shape, out_dim, width=8):
            super().__init__()
            c, h, w = in_shape
            self.net = nn.Sequential(nn.Conv2d(c, width, 4, 4), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(width * (h // 4) * (w // 4), out_dim))

        def forward(self, x):
            return self.net(x)

    class Decoder(nn.Module):
        def __init__(self, latent_dim, out_shape, width=8):
            super().__init__()
            self.out_shape = tuple(out_shape)
            c, h, w = out_shape
            self.net = nn.Linear(latent_dim, c * h * w)

        def forward(self, z):
            return self.net(z).view(len(z), *self.out_shape)

    class WrongEncoder(Encoder):
        def forward(self, x):
            return self.net(x)[:, :1]

    def not_a_module(**kwargs):
        return "a string"
    """
)


def custom_config(module: str, stochastic: bool = False, encoder: str = "Encoder", **over) -> dict:
    model = {
        "type": "custom",
        "latent_dim": 3,
        "stochastic": stochastic,
        "encoder": {"target": f"{module}:{encoder}", "args": {"width": 4}},
        "decoder": {"target": f"{module}:Decoder", "args": {"width": 4}},
        **over,
    }
    train = {**TINY["train"], "steps": 10, "eval_every": 10, "save_every": 10, "log_every": 5, "eval_n": 50}
    return {**TINY, "model": model, "train": train, "score": {"n": 100, "probes": ["linear"]}}


def write(tmp_path: Path, name: str, cfg: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def custom_run(cli, tmp_path):
    (tmp_path / "mymodels_e2e.py").write_text(MODULE)
    config = write(tmp_path, "custom", custom_config("mymodels_e2e"))
    code, out, err = cli("train", "--config", config, "--out", tmp_path / "run", "-q")
    assert code == 0, out + err
    return tmp_path / "run"


@pytest.mark.slow
def test_custom_model_trains_scores_traverses_and_copies(cli, custom_run, tmp_path):
    scores = json.loads((custom_run / "scores.json").read_text())
    assert scores["settings"]["d"] == 3 and scores["nmse_db"] is not None
    # a reader imports the checkpoint's code only when told to trust it
    assert_user_error(cli("score", custom_run, "--json"), "custom code", "mymodels_e2e:Encoder", "--trust-code")
    code, out, err = cli("score", custom_run, "--json", "--trust-code", "--metrics", "basic", "--n", "50")
    assert code == 0, err
    assert json.loads(out)["settings"]["step"] == 10
    assert_user_error(cli("traverse", custom_run, "--dim", "0", "--out", "t.png"), "--trust-code")
    code, out, err = cli("traverse", custom_run, "--dim", "0", "--out", "t.png", "--steps", "3", "--seeds", "2",
                         "--trust-code")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "t.png").stat().st_size > 0
    assert_user_error(cli("copy-latent", custom_run, "--out", "copy"), "--trust-code")
    assert not (tmp_path / "copy").exists()
    code, out, err = cli("copy-latent", custom_run, "--out", "copy", "--trust-code", "--max-steps", "4",
                         "--n-codes", "64", "--n-eval", "40", "--permutations", "5", "-q")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "copy" / "copy_report.json").read_text())
    assert report["student"]["step"] == 4


def test_custom_model_in_python_keeps_the_wrapper_features(tmp_path, monkeypatch):
    """Input standardisation and the quantiser still apply around the user's modules."""
    import torch

    from sculptcli.config import validate_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodels_py.py").write_text(MODULE)
    cfg = validate_config(custom_config("mymodels_py", quantize={"values": 4}), "test")
    model = cfg.model.build((1, 64, 64))
    assert model.in_shift.shape == (1,) and model.quantizer.codebook.shape == (3, 4)
    enc = model.encode(torch.rand(5, 1, 64, 64))
    book = model.quantizer.codebook
    assert all(bool((book[j] == enc.mean[:, j : j + 1]).any(1).all()) for j in range(3))  # codebook values only
    stochastic = validate_config(custom_config("mymodels_py", stochastic=True), "test").model.build((1, 64, 64))
    assert stochastic.encoder.net[-1].out_features == 6  # mean and logvar
    assert stochastic.decode(torch.zeros(2, 3)).shape == (2, 1, 64, 64)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"encoder": {"target": "no_such_module_xyz:Encoder"}}, ["model.encoder.target", "cannot import"]),
        ({"decoder": {"target": "mymodels_bad:Missing"}}, ["model.decoder.target", "has no 'Missing'"]),
        ({"encoder": {"target": "mymodels_bad:WrongEncoder"}}, ["model.encoder.target", "[2, 1]", "[2, 3]"]),
        ({"encoder": {"target": "mymodels_bad:not_a_module"}}, ["model.encoder.target", "not a torch.nn.Module"]),
        ({"encoder": {"target": "not a target"}}, ["model.encoder.target"]),
        ({"decoder": {"target": "mymodels_bad:Decoder", "args": {"depth": 2}}}, ["model.decoder", "depth"]),
    ],
    ids=["import", "attribute", "shape", "not-module", "syntax", "bad-args"],
)
def test_bad_custom_targets_exit_2_naming_the_key(cli, tmp_path, change, fragments):
    (tmp_path / "mymodels_bad.py").write_text(MODULE)
    cfg = custom_config("mymodels_bad")
    cfg["model"].update(change)
    result = cli("train", "--config", write(tmp_path, "bad", cfg), "--out", tmp_path / "run", "-q", "--no-score")
    assert_user_error(result, *fragments)
    assert not (tmp_path / "run" / "last.safetensors").exists()
