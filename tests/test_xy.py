"""The generated XY family: grids, rendering, held-out split, presets and a tiny train + score through the CLI."""

import json
import math

import pytest
import torch

from sculptcli.config import load_config
from sculptcli.data import DATASETS
from sculptcli.data.xy import render

XY_PRESETS = ["xy-mmd-gaussian", "xy-mmd-uniform", "xy-mmd-gmm", "xyc-mmd-hybrid", "xycs-mmd-hybrid"]


def build(kind, seed=0, **kw):
    return DATASETS.get(kind)(**kw).build(seed, "cpu")


@pytest.mark.parametrize(
    "kind, n, names, sizes",
    [
        ("xy", 2_809, ("x", "y"), (53, 53)),
        ("xyc", 14_045, ("x", "y", "c"), (53, 53, 5)),
        ("xycs", 70_020, ("x", "y", "c", "r"), (65, 65, 5, 4)),
    ],
)
def test_grid_sizes_and_factors(kind, n, names, sizes):
    spec = DATASETS.get(kind)()
    assert spec.n_images() == n and spec.heldout == int(0.1 * n + 0.5)
    data = spec.build(0, "cpu")
    assert data.n_train + spec.heldout == n
    assert data.factor_names == names and data.factor_sizes == sizes
    assert data.shape == (1, 96, 96) and data.binary == (kind == "xy")
    images, factors = data.heldout(50)
    assert images.shape == (50, 1, 96, 96) and factors.shape == (50, len(names))
    assert data.train_batch(0, 32).images.shape == (32, 1, 96, 96)
    x, y = factors[:, 0], factors[:, 1]
    r = factors[:, 3] if kind == "xycs" else torch.full_like(x, 15.0)
    assert ((x - r) >= 0).all() and ((x + r) <= 83).all() and ((y - r) >= 0).all() and ((y + r) <= 83).all()


def test_xy_grid_is_the_original():
    data = build("xy")
    table = data.table
    assert sorted(set(table[:, 0].tolist())) == list(range(15, 68))
    assert len({tuple(r) for r in table.tolist()}) == 2_809


def test_xycs_centres_depend_on_radius():
    table = build("xycs").table
    for r in (9, 11, 13, 15):
        xs = table[table[:, 3] == r][:, 0]
        assert (xs.min().item(), xs.max().item()) == (r, 82 - r)


def test_circle_area_centroid_and_intensity():
    x, y = torch.tensor([20.0, 50.0, 67.0]), torch.tensor([40.0, 15.0, 60.0])
    c, r = torch.tensor([1.0, 0.6, 0.2]), torch.full((3,), 15.0)
    for pad_to, off in ((None, 0), (96, 6)):
        img = render(x, y, c, r, pad_to)[:, 0]
        assert img.shape[-1] == (pad_to or 84)
        mask = img > 0
        for i in range(3):
            area = mask[i].sum().item()
            assert abs(area - math.pi * 15**2) <= 0.05 * math.pi * 15**2
            rows, cols = mask[i].nonzero(as_tuple=True)
            assert cols.float().mean().item() == pytest.approx(x[i].item() + off, abs=1e-4)  # x along columns
            assert rows.float().mean().item() == pytest.approx(y[i].item() + off, abs=1e-4)  # y along rows
            assert torch.allclose(img[i][mask[i]], c[i])
        assert img.min() == 0.0


def test_heldout_is_fixed_disjoint_and_deterministic():
    a, b = build("xyc", seed=0), build("xyc", seed=5)
    assert torch.equal(a.heldout_index, b.heldout_index)  # independent of the run seed
    assert not set(a.heldout_index.tolist()) & set(a.train_index.tolist())
    assert len(set(a.heldout_index.tolist()) | set(a.train_index.tolist())) == 14_045
    for step in (0, 7, 300):
        assert not set(a.train_indices(step, 64).tolist()) & set(a.heldout_index.tolist())
    assert torch.equal(a.train_batch(3, 16).images, build("xyc", seed=0).train_batch(3, 16).images)
    assert not torch.equal(a.train_batch(3, 16).images, b.train_batch(3, 16).images)
    ia, fa = a.heldout(20)
    ib, fb = b.heldout(20)
    assert torch.equal(ia, ib) and torch.equal(fa, fb)
    assert a.heldout(10_000)[0].shape[0] == 1_405  # asking for more gives the whole split


def test_bad_data_specs_are_refused():
    with pytest.raises(ValueError, match="heldout"):
        DATASETS.get("xy")(heldout=2_809)
    with pytest.raises(ValueError):
        DATASETS.get("xy")(pad_to=64)
    assert DATASETS.get("xy")(pad_to=None).image_shape() == (1, 84, 84)


@pytest.mark.parametrize("name", XY_PRESETS)
def test_xy_mmd_presets_use_the_papers_weight(name):
    """Shapes, layers and budgets of every preset are checked in tests/test_config.py."""
    assert load_config(preset=name, budget="full").objective.divergence.weight == 0.3


def test_train_and_score_xy_preset(cli, tmp_path):
    run = tmp_path / "run"
    code, out, err = cli("train", "--preset", "xy-mmd-gaussian", "--max-steps", "3", "--out", run, "-q", "--no-score")
    assert code == 0, err
    code, out, err = cli("score", run, "--json", "--probes", "linear", "--n", "200")
    assert code == 0, err
    r = json.loads(out)
    for key in ("nmse", "nmse_db", "mmd2_prior", "cov_ratio"):
        assert isinstance(r[key], float), key
    assert "linear" in r["lps"]
