"""Faint, high-dynamic-range images (galaxy-like stamps) train instead of collapsing, through the tensor dataset
as a new user would feed them, with the galaxy-mmd-gaussian recipe."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from sculptcli.checkpoint import load_checkpoint
from sculptcli.data.base import normalize_pixels
from sculptcli.metrics.collapse import collapsed_dims
from sculptcli.priors import PRIORS


def faint_stamps(n: int = 600, stamp: int = 33, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sheared exponential discs over the galaxy generator's full flux range (1e4–1e5 counts) and radii
    0.1–1.0″ blurred by a PSF of FWHM 0.2–0.4″ (added in quadrature), 0.2″ pixels, Poisson noise, then globally
    min–max scaled: most pixels below 0.01, a small bright core."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 5, generator=g, dtype=torch.float64)
    flux, r0 = 1e4 + 9e4 * u[:, 0], 0.1 + 0.9 * u[:, 1]
    g1, g2, fwhm = u[:, 2] - 0.5, u[:, 3] - 0.5, 0.2 + 0.2 * u[:, 4]
    r = torch.sqrt(r0**2 + (1.7 * fwhm / 2.355) ** 2)[:, None, None]
    c = (torch.arange(stamp, dtype=torch.float64) - stamp // 2) * 0.2
    y, x = torch.meshgrid(c, c, indexing="ij")
    a, b, gg = g1[:, None, None], g2[:, None, None], (g1**2 + g2**2)[:, None, None]
    xs = ((1 - a) * x - b * y) / torch.sqrt(1 - gg)
    ys = (-b * x + (1 + a) * y) / torch.sqrt(1 - gg)
    profile = torch.exp(-torch.sqrt(xs**2 + ys**2) / r) / (2 * math.pi * r**2)
    counts = torch.poisson(flux[:, None, None] * 0.04 * profile, generator=g)
    images = (counts - counts.min()) / (counts.max() - counts.min())
    factors = torch.stack([flux, r0, g1, g2, fwhm], 1)
    return images.float().numpy(), factors.float().numpy()


def test_the_synthetic_stamps_are_faint():
    images, _ = faint_stamps()
    assert np.quantile(images, 0.99) < 0.05 and (images < 0.01).mean() > 0.9 and images.max() == 1.0


def recipe(path, **model) -> dict:
    """galaxy-mmd-gaussian's quick recipe (stamps padded to 64×64, a 4-layer GroupNorm conv AE of width 32 with a
    256-unit FC layer, d = 5, BCE mean + 0.3·MMD², batch 64, Adam 1e-3) for 60 steps."""
    return {
        "data": {"type": "tensor", "path": str(path), "heldout": 0.2, "pad_to": 64},
        "model": {
            "type": "conv",
            "layers": 4,
            "width": 32,
            "latent_dim": 5,
            "fc_hidden": 256,
            "norm": "group",
            **model,
        },  # fmt: skip
        "prior": {"type": "gaussian"},
        "objective": {"recon": "bce", "reduction": "mean", "divergence": {"type": "mmd", "weight": 0.3}},
        "train": {
            "batch_size": 64,
            "lr": 1e-3,
            "steps": 60,
            "log_every": 20,
            "eval_every": 60,
            "save_every": 60,
            "eval_n": 120,
        },  # fmt: skip
        "score": {"n": 120, "probes": ["linear"], "metrics": ["lps", "mmd2_prior"]},
    }


@pytest.fixture
def stamps(tmp_path):
    images, factors = faint_stamps()
    path = tmp_path / "stamps.npz"
    np.savez(path, images=images, factors=factors)
    return path


def train(cli, tmp_path, cfg: dict, name: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, out, err = cli("train", "--config", path, "--out", tmp_path / name)
    assert code == 0, err
    ck = load_checkpoint(tmp_path / name / "last.safetensors")
    images, _ = ck.config.data.build(0).heldout()
    return ck.build_model().embed(images), json.loads((tmp_path / name / "scores.json").read_text()), out


def test_faint_stamps_train_without_collapse(cli, tmp_path, stamps):
    z, scores, out = train(cli, tmp_path, recipe(stamps), "std")
    prior = PRIORS.get("gaussian")().build(5)
    assert collapsed_dims(z, prior) == [] and float(z.std(0).min()) > 0.05, z.std(0)
    assert scores["collapsed_dims"] == [] and scores["lps"]["linear"] is not None
    assert "faint images" in out  # the start-of-run check names the scale


def test_without_input_standardisation_the_same_recipe_collapses(cli, tmp_path, stamps):
    """The failure the engine fixes: the encoder's codes barely vary at initialisation, and stay collapsed."""
    z, scores, out = train(cli, tmp_path, recipe(stamps, input_norm="none"), "raw")
    assert float(z.std(0).max()) < 1e-3  # every dim constant to 1e-3 of the prior's std: collapsed
    assert scores["collapsed_dims"] == [0, 1, 2, 3, 4] and scores["lps"] is None and scores["warnings"]
    assert "input_norm is none" in out


@pytest.mark.parametrize("how", ["max", "asinh", "log"])
def test_normalize_maps_into_the_unit_interval_and_keeps_order(how):
    x = torch.tensor([[[[0.0, 1e-4, 0.003, 0.2, 1.0]]], [[[0.0, 0.001, 0.002, 0.004, 0.5]]]])
    y = normalize_pixels(x, how, 0.01)
    assert float(y.min()) >= 0 and float(y.max()) <= 1 + 1e-6
    assert (y.flatten(1).diff(dim=1) > 0).all()  # monotone within an image
    if how == "max":  # each image scaled by its own peak
        assert torch.allclose(y[1], x[1] / 0.5)
    else:  # a pixelwise map: the same value maps the same in every image, and faint pixels are lifted
        assert y[0, 0, 0, 0] == y[1, 0, 0, 0] == 0
        assert float(y[0, 0, 0, 2]) > 10 * 0.003
