"""The GalSim galaxy dataset: Latin-hypercube design, renders, cache, moment probes, split and the CLI."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError

from sculptcli.data import DATASETS
from sculptcli.data import galaxy as gx
from sculptcli.errors import UserError
from tests.conftest import assert_user_error, small_config

needs_galsim = pytest.mark.skipif(importlib.util.find_spec("galsim") is None, reason="GalSim is not installed")


def spec(cache: Path, **kw) -> gx.GalaxySpec:
    return DATASETS.get("galaxy")(**{"n": 200, "heldout": 20, "workers": 1, "cache_dir": str(cache), **kw})


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A cache directory holding the default small set (n=200, Poisson noise), rendered once."""
    root = tmp_path_factory.mktemp("galaxy-cache")
    gx.load_or_render(spec(root))
    return root


def r2(y: np.ndarray, x: np.ndarray) -> float:
    """R² of the least-squares line y ≈ a + b·x."""
    design = np.column_stack([np.ones_like(x), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(1.0 - (y - design @ beta).var() / y.var())


def test_design_is_a_latin_hypercube():
    n = 257
    d = gx.lhs_design(n, 7)
    assert d.shape == (n, 5) and d.dtype == np.float64
    for k, (lo, hi) in enumerate(gx.RANGES):
        assert np.array_equal(np.sort(d[:, k]), np.linspace(lo, hi, n))  # every grid value exactly once
        assert d[:, k].min() == lo and d[:, k].max() == hi
    idx = gx.lhs_indices(n, 7)
    assert all(np.array_equal(np.sort(idx[:, k]), np.arange(n)) for k in range(5))
    assert not all(np.array_equal(idx[:, 0], idx[:, k]) for k in range(1, 5))  # columns drawn independently
    assert np.array_equal(d, gx.lhs_design(n, 7))
    assert not np.array_equal(d, gx.lhs_design(n, 8))
    assert (d[:, 2] ** 2 + d[:, 3] ** 2 < 1).all()


@needs_galsim
def test_renders_shape_range_padding_and_determinism(cache, tmp_path):
    s = spec(cache)
    data = s.build(0, "cpu")
    assert not data.rendered and data.cache_path.parent == cache / "galaxy"
    assert data.shape == (1, 64, 64) == s.image_shape() and not data.binary
    assert data.factor_names == ("flux", "radius", "g1", "g2", "psf_fwhm") and data.factor_sizes == (None,) * 5
    images, factors = data.heldout()
    assert images.shape == (20, 1, 64, 64) and factors.shape == (20, 5) and factors.dtype == torch.float32
    batch = data.train_batch(3, 16).images
    assert batch.shape == (16, 1, 64, 64) and batch.dtype == torch.float32
    assert data.images.min() == 0.0 and data.images.max() == 1.0  # dataset-wide min–max
    assert data.count_min == 0.0 and data.count_max > 1_000  # Poisson counts, no sky
    # 33 -> 64: 15 zero rows/columns before, 16 after; the galaxy centre (stamp pixel 16) lands on pixel 31
    full = data.pad(data.images)
    assert full[:, :, :15].abs().sum() == 0 and full[:, :, 48:].abs().sum() == 0
    assert full[:, :, :, :15].abs().sum() == 0 and full[:, :, :, 48:].abs().sum() == 0
    mean = full.mean(dim=(0, 1))
    assert divmod(int(mean.argmax()), 64) == (31, 31)
    assert torch.equal(full[:, :, 15:48, 15:48], data.images)
    # the design rows are the returned factors, in order
    assert np.array_equal(data.factors.numpy(), gx.lhs_design(200, 7).astype(np.float32))
    # the same bytes from a fresh render, and from two worker processes instead of one
    again, f2, rendered = gx.load_or_render(spec(tmp_path))
    assert rendered and (tmp_path / "galaxy").is_dir()
    counts, _, _ = gx.load_or_render(s)
    assert again.tobytes() == counts.tobytes() and np.array_equal(f2, data.factors.numpy())
    parallel, _ = gx.render_set(spec(tmp_path, workers=2))
    assert parallel.tobytes() == counts.tobytes()


@needs_galsim
def test_noise_is_independent_across_images():
    seeds = {gx.noise_seed(7, i) for i in range(1000)}
    assert len(seeds) == 1000 and min(seeds) >= 1 and max(seeds) < 2**31
    assert gx.noise_seed(7, 5) != gx.noise_seed(8, 5)
    # the same factors drawn as images 0 and 1 of the design get different noise
    row = gx.lhs_design(100, 7)[:1]
    a = gx.render_chunk(row, 0, 7, 33, 0.2, "poisson")
    b = gx.render_chunk(row, 1, 7, 33, 0.2, "poisson")
    clean = gx.render_chunk(row, 0, 7, 33, 0.2, "none")
    assert not np.array_equal(a, b) and np.array_equal(a, np.round(a)) and not np.array_equal(clean, np.round(clean))
    assert abs(a.sum() - clean.sum()) < 5 * np.sqrt(clean.sum())


@needs_galsim
def test_cache_is_reused_and_keyed_by_pixel_fields(cache, monkeypatch):
    def boom(_spec, *_):
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(gx, "render_set", boom)
    data = spec(cache, pad_to=40, heldout=50, workers=3).build(1, "cpu")  # none of these changes pixels
    assert not data.rendered and data.shape == (1, 40, 40)
    base = spec(cache)
    assert base.cache_path() == spec(cache, pad_to=None, heldout=7, workers=0).cache_path()
    for change in ({"stamp": 31}, {"noise": "none"}, {"design_seed": 8}, {"n": 201}, {"pixel_scale": 0.25}):
        assert spec(cache, **change).cache_key() != base.cache_key(), change
    with pytest.raises(AssertionError, match="rendered although cached"):
        spec(cache, noise="none").build(0, "cpu")
    monkeypatch.setitem(sys.modules, "galsim", None)
    assert not spec(cache).build(0, "cpu").rendered  # a cached set loads without GalSim
    # a torn cache file is rendered again, not trusted
    monkeypatch.undo()
    torn = spec(cache, design_seed=9)
    gx.load_or_render(torn)
    torn.cache_path().write_bytes(b"not a safetensors file")
    assert torn.build(0, "cpu").rendered


@needs_galsim
def test_a_first_render_says_so_with_progress_on_a_terminal(tmp_path, capsys):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    counts, _ = gx.render_set(spec(tmp_path, n=100), gx.RenderProgress(100, tmp_path, out))
    text = out.getvalue()
    first = "rendering 100 galaxy stamps with GalSim (first use of these settings; cached in"
    assert text.startswith(f"{first} {tmp_path})")
    assert "/100 (" in text and "s left" in text and "rendered 100 stamps in" in text and len(counts) == 100
    gx.load_or_render(spec(tmp_path / "c", n=101))  # what a run prints on stderr, not on a terminal: two lines
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("rendering 101 galaxy stamps") and err[1].strip().startswith("rendered 101 stamps in")
    assert len(err) == 2


def test_missing_galsim_is_a_user_error(tmp_path, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "galsim", None)
    with pytest.raises(UserError, match="needs GalSim") as e:
        spec(tmp_path / "empty").build(0, "cpu")
    assert "pip install" in (e.value.fix or "")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config(tmp_path / "empty2")))
    assert_user_error(cli("train", "--config", cfg, "--out", tmp_path / "run", "--max-steps", "1"), "needs GalSim")


@needs_galsim
def test_moments_recover_the_factors(tmp_path):
    counts, f, _ = gx.load_or_render(spec(tmp_path, n=300, noise="none"))
    c, f = counts.astype(np.float64), f.astype(np.float64)
    total = c.sum(axis=(1, 2))
    k = np.arange(33) - 16.0
    x, y = k[None, None, :], k[None, :, None]  # GalSim arrays are [y, x]
    qxx, qyy, qxy = ((c * m).sum(axis=(1, 2)) / total for m in (x * x, y * y, x * y))
    t = qxx + qyy
    # Measured at n=300: flux~sum 0.979 (n=2000: 0.978) (the stamp loses up to 29% of the flux at radius 1″),
    # 0.99993 for radius < 0.4″; g1~e1 0.982, g2~e2 0.993; radius~√T 0.939.
    assert r2(f[:, 0], total) > 0.95
    small = f[:, 1] < 0.4
    assert r2(f[small, 0], total[small]) > 0.999
    assert r2(f[:, 2], (qxx - qyy) / t) > 0.95
    assert r2(f[:, 3], 2 * qxy / t) > 0.95
    assert r2(f[:, 1], np.sqrt(t)) > 0.9
    assert np.corrcoef(f[:, 2], 2 * qxy / t)[0, 1] ** 2 < 0.1  # g1 does not leak into the other moment


@needs_galsim
def test_heldout_is_fixed_disjoint_and_independent_of_the_run_seed(cache):
    a, b = spec(cache).build(0, "cpu"), spec(cache).build(123, "cpu")
    assert torch.equal(a.heldout_index, b.heldout_index) and torch.equal(a.train_index, b.train_index)
    assert torch.equal(a.heldout()[0], b.heldout()[0])
    held, train = set(a.heldout_index.tolist()), set(a.train_index.tolist())
    assert len(held) == 20 and not held & train and held | train == set(range(200)) and a.n_train == 180
    assert not torch.equal(a.train_batch(0, 16).images, b.train_batch(0, 16).images)  # batches follow the run seed
    assert torch.equal(a.train_batch(5, 16).images, spec(cache).build(0, "cpu").train_batch(5, 16).images)


@pytest.mark.parametrize(
    "bad, msg",
    [
        ({"heldout": 200}, "heldout must be between 1 and 199"),
        ({"pad_to": 32}, "smaller than the 33×33 stamp"),
        ({"n": 50}, "greater than or equal to 100"),
        ({"noise": "gauss"}, "poisson"),
        ({"workers": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_specs_are_refused(tmp_path, bad, msg):
    with pytest.raises(ValidationError, match=msg):
        spec(tmp_path, **bad)


def config(cache: Path, **data) -> dict:
    data = {"type": "galaxy", "n": 200, "heldout": 20, "workers": 1, "cache_dir": str(cache), **data}
    return small_config(data, layers=3)


def test_bad_config_exits_2(cli, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(config(tmp_path, heldout=500)))
    assert_user_error(cli("train", "--config", cfg, "--out", tmp_path / "run", "--max-steps", "1"), "heldout")


@needs_galsim
def test_train_and_score_through_the_cli(cli, cache, tmp_path):
    cfg = tmp_path / "galaxy.yaml"
    cfg.write_text(yaml.safe_dump(config(cache)))
    run = tmp_path / "run"
    code, out, err = cli("train", "--config", cfg, "--out", run, "--max-steps", "3", "--no-score", "-q")
    assert code == 0, err
    code, out, err = cli("score", run, "--json", "--probes", "linear", "--n", "20")
    assert code == 0, err
    report = json.loads(out)
    assert "linear" in report["lps"] and isinstance(report["nmse"], float)


def test_defaults_match_the_released_aux_vae_generator():
    """Aux-VAE's `Synthetic_galaxy_dataset/`: N = 16,384 on a Latin hypercube seeded 7, flux 1e4–1e5, scale radius
    0.1–1.0″, g1/g2 ±0.5, Gaussian PSF FWHM 0.2–0.4″, 33×33 stamps at 0.2″, Poisson noise, global min–max scaling;
    galaxy-auxvae trains on the unpadded stamps, galaxy-mmd-gaussian on stamps padded to 64."""
    from sculptcli.config import load_config

    s = DATASETS.get("galaxy")()
    assert (s.n, s.design_seed, s.stamp, s.pixel_scale, s.noise) == (16_384, 7, 33, 0.2, "poisson")
    assert gx.RANGES == ((1e4, 1e5), (0.1, 1.0), (-0.5, 0.5), (-0.5, 0.5), (0.2, 0.4))
    assert gx.FACTOR_NAMES == ("flux", "radius", "g1", "g2", "psf_fwhm")
    aux = load_config("galaxy-auxvae", budget="full")
    assert aux.data.pad_to is None and aux.model.type == "auxcnn" and aux.prior.factors == [
        "radius", "g1", "g2", "flux", "psf_fwhm"]  # fmt: skip  # Aux-VAE's column order
    assert aux.objective.divergence.weight == pytest.approx(20 / (33 * 33), rel=1e-5)  # β / (C·H·W)
    assert (aux.train.batch_size, aux.train.lr, aux.train.epochs, aux.model.latent_dim) == (64, 1e-3, 1000, 10)
    assert [(t.type, t.weight) for t in aux.objective.terms] == [("corr_inter", 0.4), ("corr_intra", 0.5)]
