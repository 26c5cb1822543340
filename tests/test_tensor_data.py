"""The `tensor` dataset: your own images from a .safetensors or .npz file, trained through the CLI."""

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from sculptcli.data import DATASETS
from tests.conftest import assert_user_error, small_config

N, H = 128, 16


def config(path, **data):
    return small_config({"type": "tensor", "path": str(path), **data}, score_n=12)  # 13 of the 128 are held out


def write_cfg(tmp_path, path, **data):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config(path, **data)))
    return cfg


def fake_images(layout, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 3 if layout != "nhw" else 1, H, H, generator=g)
    if layout == "nhw":
        x = x[:, 0]
    elif layout == "nhwc":
        x = x.permute(0, 2, 3, 1).contiguous()
    return (x * 255).round().to(torch.uint8) if dtype == "uint8" else x


def save(path, arrays):
    if path.suffix == ".npz":
        np.savez(path, **{k: v.numpy() for k, v in arrays.items()})
    else:
        save_file({k: v.contiguous() for k, v in arrays.items()}, str(path))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("layout, dtype", [("nhw", "uint8"), ("nhwc", "uint8"), ("nchw", "uint8"), ("nchw", "float32")])
def test_each_layout_builds(tmp_path, suffix, layout, dtype):
    images = fake_images(layout, dtype)
    path = tmp_path / f"d{suffix}"
    save(path, {"images": images, "factors": torch.arange(2 * N, dtype=torch.float32).view(N, 2)})
    spec = DATASETS.get("tensor")(path=str(path), heldout=0.25)
    c = 1 if layout == "nhw" else 3
    assert spec.image_shape() == (c, H, H)
    data = spec.build(0, "cpu")
    assert data.shape == (c, H, H) and data.n_train == 96
    im, f = data.heldout()
    assert im.shape == (32, c, H, H) and f.shape == (32, 2) and im.min() >= 0 and im.max() <= 1
    # the held-out images are the file's images at the held-out rows, converted exactly once
    row = int(f[0, 0].item()) // 2
    want = images[row].float() / (255 if dtype == "uint8" else 1)
    want = want.unsqueeze(0) if layout == "nhw" else want.permute(2, 0, 1) if layout == "nhwc" else want
    assert torch.allclose(im[0], want)
    assert not set(data.heldout_index.tolist()) & set(data.train_index.tolist())
    assert torch.equal(data.heldout_index, spec.build(9, "cpu").heldout_index)  # independent of the run seed
    assert torch.equal(data.train_batch(2, 8).images, spec.build(0, "cpu").train_batch(2, 8).images)


def test_padding(tmp_path):
    path = tmp_path / "d.npz"
    save(path, {"images": torch.full((N, 10, 12), 255, dtype=torch.uint8)})
    spec = DATASETS.get("tensor")(path=str(path), pad_to=16)
    assert spec.image_shape() == (1, 16, 16)
    im, f = spec.build(0, "cpu").heldout(2)
    assert f is None and im.shape == (2, 1, 16, 16)
    assert im.sum().item() == 2 * 120 and im[0, 0, 3:13, 2:14].min() == 1.0


@pytest.mark.parametrize("suffix, layout", [(".safetensors", "nhwc"), (".npz", "nhw")])
def test_train_and_score_through_the_cli(cli, tmp_path, suffix, layout):
    path = tmp_path / f"d{suffix}"
    save(path, {"images": fake_images(layout, "uint8")})
    cfg = write_cfg(tmp_path, path)
    code, out, err = cli("train", "--config", cfg, "--max-steps", "3", "--out", tmp_path / "run", "-q", "--no-score")
    assert code == 0, err
    code, out, err = cli("score", tmp_path / "run", "--json", "--probes", "linear")
    assert code == 0, err
    r = json.loads(out)
    for key in ("nmse", "nmse_db", "mmd2_prior", "cov_ratio"):  # the scores that need no factors
        assert isinstance(r[key], float), key


def bad_files(tmp_path):
    good = torch.zeros(N, H, H, dtype=torch.uint8)
    cases = {
        "missing": (tmp_path / "nothere.npz", None, "no such file"),
        "no images": (tmp_path / "a.npz", {"pixels": good}, "no array named 'images'"),
        "rank 2": (tmp_path / "b.safetensors", {"images": torch.zeros(N, H * H, dtype=torch.uint8)}, "rank 2"),
        "rank 5": (tmp_path / "c.npz", {"images": torch.zeros(N, 1, 1, H, H)}, "rank 5"),
        "factors length": (tmp_path / "d.npz", {"images": good, "factors": torch.zeros(N - 1, 2)}, "'factors'"),
        "suffix": (tmp_path / "e.pt", None, "unsupported file type"),
        "garbage": (tmp_path / "f.safetensors", None, "cannot read"),
    }
    (tmp_path / "e.pt").write_bytes(b"x")
    (tmp_path / "f.safetensors").write_bytes(b"not a safetensors file")
    for path, arrays, _ in cases.values():
        if arrays is not None:
            save(path, arrays)
    return cases


def test_bad_files_exit_2(cli, tmp_path):
    for path, _, fragment in bad_files(tmp_path).values():
        cfg = write_cfg(tmp_path, path)
        assert_user_error(cli("train", "--config", cfg, "--out", tmp_path / "run", "-q"), fragment)
    good = tmp_path / "g.npz"
    save(good, {"images": torch.zeros(N, H, H, dtype=torch.uint8)})
    assert_user_error(cli("train", "--config", write_cfg(tmp_path, good, heldout=N), "-q"), "heldout")
    assert_user_error(cli("train", "--config", write_cfg(tmp_path, good, pad_to=8), "-q"), "pad_to")


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_out_of_range_floats_exit_2(cli, tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    save(path, {"images": torch.full((N, H, H), 2.0)})
    cfg = write_cfg(tmp_path, path)
    assert_user_error(cli("train", "--config", cfg, "--out", tmp_path / "run", "-q"), "[0, 1]")
