"""Every bad input exits with code 2 and a short message: no traceback, nothing half-written, nothing lost."""

import pickle
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import save_file

from tests.conftest import TINY, assert_user_error


@pytest.fixture
def trained(tiny_run):
    """The session's shared 4-step tiny run (read only)."""
    return tiny_run


def test_unknown_preset_lists_choices(cli):
    assert_user_error(
        cli("train", "--preset", "dsprites-mmd-gausian"), "Did you mean 'dsprites-mmd-gaussian'", "dsprites-ae"
    )


def test_unknown_key_in_file_names_the_path(cli, tmp_path):
    bad = dict(TINY, train={**TINY["train"], "batchsize": 8})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(bad))
    assert_user_error(cli("train", "--config", tmp_path / "c.yaml"), "train", "batchsize", "Did you mean 'batch_size'")
    assert not (tmp_path / "runs").exists()  # nothing written


def test_invalid_prior_names_the_path_and_rule(cli, tmp_path):
    bad = dict(
        TINY,
        prior={
            "type": "product",
            "blocks": [{"type": "gaussian", "dims": 2}, {"type": "uniform", "low": 2, "high": 1}],
        },
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(bad))
    assert_user_error(cli("train", "--config", tmp_path / "c.yaml"), "prior.blocks[1]", "smaller than high")


def test_malformed_yaml_gives_line_and_column(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("data: {type: dsprites\ntrain: [1,\n")
    assert_user_error(cli("train", "--config", tmp_path / "c.yaml"), "c.yaml:", "malformed YAML")


def test_stray_flag_is_refused(cli, tiny_config):
    assert_user_error(cli("train", "--config", tiny_config, "--learning-rate"), "unknown option")


def test_resume_without_a_run(cli, tmp_path):
    assert_user_error(cli("train", "--out", tmp_path / "nothing", "--resume"), "nothing to resume")


def test_resume_refuses_config_changes(cli, trained):
    assert_user_error(cli("train", "--out", trained, "--resume", "train.lr=1"), "own config")


@pytest.mark.parametrize("kind", ["missing", "truncated", "pickle", "garbage", "foreign", "empty", "directory"])
def test_bad_checkpoints(cli, trained, tmp_path, kind):
    path = tmp_path / f"{kind}.safetensors"
    if kind == "truncated":
        data = (trained / "last.safetensors").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"model": torch.zeros(3)}))
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 10)
    elif kind == "foreign":
        save_file({"weight": torch.zeros(3)}, str(path))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path = tmp_path / "emptydir"
        path.mkdir()
    code, out, err = cli("score", path, "--probes", "linear")
    assert_user_error((code, out, err))
    assert len(err.strip().splitlines()) <= 4  # short


def test_pickle_is_never_loaded(cli, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Evil()))
    assert_user_error(cli("score", tmp_path / "evil.safetensors"))
    (tmp_path / "evil.npz").write_bytes(pickle.dumps(Evil()))
    assert_user_error(cli("score", "--latents", tmp_path / "evil.npz"))
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        ({"codes": torch.zeros(50, 3)}, "no tensor named 'latents'"),
        ({"latents": torch.zeros(50)}, "[N, d]"),
        ({"latents": torch.full((50, 3), float("nan"))}, "finite"),
        ({"latents": torch.zeros(50, 3), "factors": torch.zeros(49, 2)}, "'factors'"),
    ],
)
def test_bad_latents_files(cli, tmp_path, content, fragment):
    save_file(content, str(tmp_path / "z.safetensors"))
    assert_user_error(cli("score", "--latents", tmp_path / "z.safetensors"), fragment)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(cli, trained, tmp_path):
    before = (trained / "last.safetensors").read_bytes()
    bad = dict(TINY, train={**TINY["train"], "lr": 1e30, "save_every": 2, "log_every": 2})
    (tmp_path / "nan.yaml").write_text(yaml.safe_dump(bad))
    code, out, err = cli("train", "--config", tmp_path / "nan.yaml", "--out", tmp_path / "nanrun", "-q")
    assert_user_error((code, out, err), "non-finite", "lower train.lr")
    assert (trained / "last.safetensors").read_bytes() == before
    # whatever the diverged run saved before diverging is finite
    if (tmp_path / "nanrun" / "last.safetensors").exists():
        from sculptcli.checkpoint import load_checkpoint

        ck = load_checkpoint(tmp_path / "nanrun" / "last.safetensors")
        assert all(torch.isfinite(v).all() for k, v in ck.tensors.items() if k.startswith("model."))


def test_no_traceback_from_the_real_executable(tmp_path):
    """The installed entry point, in a subprocess: exit code 2 and one short message."""
    res = subprocess.run(
        [sys.executable, "-m", "sculptcli", "score", str(tmp_path / "nope.safetensors")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "no such checkpoint" in res.stderr
