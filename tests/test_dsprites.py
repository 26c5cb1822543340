"""Procedural dSprites: the published factor grid, known-answer geometry of the rendered sprites,
and the deterministic train / held-out split."""

import math

import pytest
import torch
from pydantic import ValidationError

from sculptcli.data import DATASETS
from sculptcli.data import dsprites as D
from sculptcli.data.base import EpochSampler

SQUARE, ELLIPSE, HEART = 0, 1, 2
STEP_PX = 35 / 31  # one pos step in pixels: centres span [14.5, 49.5]


def grid(**fixed) -> torch.Tensor:
    """Factor classes for every combination of the given values (int or list per factor)."""
    axes = [fixed.get(name, [0]) for name in D.FACTOR_NAMES]
    axes = [torch.tensor(a if isinstance(a, list | tuple) else [a]) for a in axes]
    return torch.cartesian_prod(*axes).view(-1, 5)


def one(shape=0, scale=5, orientation=0, pos_x=15, pos_y=15) -> torch.Tensor:
    return torch.tensor([[shape, scale, orientation, pos_x, pos_y]])


def centroid(img: torch.Tensor) -> tuple[float, float]:
    """(row, col) centre of mass, in pixel index units, of one (1, 64, 64) image."""
    img = img.squeeze(0).double()
    r = torch.arange(64, dtype=torch.float64)
    m = img.sum()
    return float((img.sum(1) * r).sum() / m), float((img.sum(0) * r).sum() / m)


def centre_px(pos: int) -> float:
    """Expected sprite centre in pixel index units (pixel j covers [j, j+1), centre j + 0.5)."""
    return 14.5 + pos * STEP_PX - 0.5


def reference_levels(f: torch.Tensor) -> torch.Tensor:
    """An independent full-frame float64 renderer straight from the specification: the implicit
    shape function g (N, 1, 64, 64) at every pixel centre; the pixel is on where g <= 0."""
    scales = torch.linspace(0.5, 1, 6, dtype=torch.float64)
    orients = torch.linspace(0, 2 * math.pi, 40, dtype=torch.float64)
    pos = torch.linspace(0, 1, 32, dtype=torch.float64)
    ys, xs = torch.meshgrid(
        torch.arange(64, dtype=torch.float64) + 0.5, torch.arange(64, dtype=torch.float64) + 0.5, indexing="ij"
    )
    sc = scales[f[:, 1]].view(-1, 1, 1) * 10
    th = orients[f[:, 2]].view(-1, 1, 1)
    cx = (14.5 + pos[f[:, 3]] * 35).view(-1, 1, 1)
    cy = (14.5 + pos[f[:, 4]] * 35).view(-1, 1, 1)
    dx, dy = xs - cx, ys - cy
    c, s = th.cos(), th.sin()
    u, v = (c * dx + s * dy) / sc, (-s * dx + c * dy) / sc
    square = torch.maximum(u.abs(), v.abs()) - 0.8
    ellipse = u**2 + (v / 0.5) ** 2 - 1
    x, y = u * 1.2, -v * 1.2 + 0.15
    heart = (x * x + y * y - 1) ** 3 - x * x * y**3
    k = f[:, 0].view(-1, 1, 1)
    return torch.where(k == 0, square, torch.where(k == 1, ellipse, heart)).unsqueeze(1)


# ---- factor grid and index -------------------------------------------------------------------


def test_grid_constants():
    assert D.FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert D.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert D.N_IMAGES == 737_280 == math.prod(D.FACTOR_SIZES)


def test_index_factor_round_trip_and_formula():
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([torch.tensor([0, 1, 31, 32, 1023, 1024, 40959, 40960, 245759, 245760, 737279]),
                     torch.randint(D.N_IMAGES, (5000,), generator=g)])  # fmt: skip
    f = D.index_to_factors(idx)
    assert f.dtype == torch.long and f.shape == (len(idx), 5)
    assert torch.equal(D.factors_to_index(f), idx)
    formula = 245760 * f[:, 0] + 40960 * f[:, 1] + 1024 * f[:, 2] + 32 * f[:, 3] + f[:, 4]
    assert torch.equal(formula, idx)
    for k, size in enumerate(D.FACTOR_SIZES):
        assert f[:, k].min() >= 0 and f[:, k].max() < size
    assert D.index_to_factors(torch.tensor([0])).tolist() == [[0, 0, 0, 0, 0]]
    assert D.index_to_factors(torch.tensor([737279])).tolist() == [[2, 5, 39, 31, 31]]
    assert D.index_to_factors(torch.tensor([1])).tolist() == [[0, 0, 0, 0, 1]]  # pos_y fastest
    assert D.index_to_factors(torch.tensor([32])).tolist() == [[0, 0, 0, 1, 0]]
    assert D.index_to_factors(torch.tensor([245760 + 2 * 40960 + 3 * 1024 + 4 * 32 + 5])).tolist() == [[1, 2, 3, 4, 5]]


def test_every_index_is_one_grid_point():
    f = D.index_to_factors(torch.arange(D.N_IMAGES))
    assert torch.equal(D.factors_to_index(f), torch.arange(D.N_IMAGES))
    assert torch.equal(f[-1], torch.tensor([2, 5, 39, 31, 31]))


def test_factor_values_are_the_published_ones():
    f = grid(shape=[0, 1, 2])
    assert D.factor_values(f)[:, 0].tolist() == [1.0, 2.0, 3.0]
    v = D.factor_values(grid(scale=list(range(6))))
    assert v.dtype == torch.float32
    assert torch.allclose(v[:, 1], torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]), atol=1e-7)
    o = D.factor_values(grid(orientation=list(range(40))))[:, 2].double()
    assert o[0] == 0.0 and abs(o[39] - 2 * math.pi) < 1e-6
    assert torch.allclose(o.diff(), torch.full((39,), 2 * math.pi / 39, dtype=torch.float64), atol=1e-6)
    p = D.factor_values(grid(pos_x=list(range(32)), pos_y=[7]))
    assert p[0, 3] == 0.0 and p[31, 3] == 1.0
    assert torch.allclose(p[:, 3].double().diff(), torch.full((31,), 1 / 31, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(p[:, 4], torch.full((32,), 7 / 31))


# ---- rendering -------------------------------------------------------------------------------


def test_images_are_binary_with_the_right_shape():
    f = D.index_to_factors(torch.randint(D.N_IMAGES, (300,), generator=torch.Generator().manual_seed(1)))
    x = D.render(f)
    assert x.shape == (300, 1, 64, 64) and x.dtype == torch.float32 and x.device == f.device
    assert torch.all((x == 0) | (x == 1))
    assert torch.all(x.flatten(1).sum(1) > 0)
    assert D.render(f[:0]).shape == (0, 1, 64, 64)
    with pytest.raises(ValueError):
        D.render(f[:, :4])
    with pytest.raises(ValueError):
        D.render(f.float())


def test_matches_an_independent_reference_renderer():
    # every (shape, scale, orientation) in the middle, the extremes at the four corners, random images
    f = torch.cat(
        [
            grid(shape=[0, 1, 2], scale=[0, 5], orientation=list(range(40)), pos_x=[0, 31], pos_y=[0, 31]),
            grid(shape=[0, 1, 2], scale=list(range(6)), orientation=list(range(40)), pos_x=16, pos_y=9),
            D.index_to_factors(torch.randint(D.N_IMAGES, (400,), generator=torch.Generator().manual_seed(2))),
        ]
    )
    ours = D.render(f)
    g = reference_levels(f)
    surely_in, maybe_in = (g <= -1e-5).float(), (g <= 1e-5).float()
    # exact, up to pixel centres lying on a shape boundary (e.g. the square at θ = 0: |u| = 0.8)
    assert torch.all(ours >= surely_in) and torch.all(ours <= maybe_in)
    assert (maybe_in - surely_in).sum() < 0.01 * surely_in.sum()  # and those are few


def test_device_path_without_host_syncs_draws_the_same_images():
    f = D.index_to_factors(torch.randint(D.N_IMAGES, (1500,), generator=torch.Generator().manual_seed(3)))
    a, b = torch.zeros(len(f), 64 * 64), torch.zeros(len(f), 64 * 64)
    D._render_chunk(f, a, grouped=True)
    D._render_chunk(f, b, grouped=False)
    assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_render_matches_cpu():
    f = D.index_to_factors(torch.randint(D.N_IMAGES, (2000,), generator=torch.Generator().manual_seed(4)))
    x = D.render(f.cuda())
    assert x.is_cuda
    assert torch.equal(x.cpu(), D.render(f))


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_sprites_are_nonempty_and_inside_the_frame(shape):
    f = grid(shape=shape, scale=list(range(6)), orientation=list(range(40)), pos_x=[0, 31], pos_y=[0, 31])
    x = D.render(f).squeeze(1)
    assert torch.all(x.flatten(1).sum(1) > 0)
    border = torch.ones(64, 64, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert x[:, border].sum() == 0
    # and the margin is snug: the largest sprites in the top-left corner come within a few pixels of the edge
    top_left = x[(f[:, 1] == 5) & (f[:, 3] == 0) & (f[:, 4] == 0)]
    assert top_left.sum(0).sum(1).nonzero().min() <= 6 and top_left.sum(0).sum(0).nonzero().min() <= 6


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_larger_scale_covers_more_pixels(shape):
    for orientation in (0, 7, 20):
        f = grid(shape=shape, scale=list(range(6)), orientation=orientation, pos_x=list(range(32)), pos_y=19)
        counts = D.render(f).flatten(1).sum(1).view(6, 32)
        assert torch.all(counts.diff(dim=0) >= 0)  # rasterised: never fewer pixels at a larger scale
        assert torch.all(counts.sum(1).diff() > 0), counts.sum(1).tolist()  # and more on average
        assert counts[5].min() > 2 * counts[0].max()
    # known areas: square (16·s)², ellipse π·(10s)·(5s)
    sq = D.render(one(SQUARE, scale=5, pos_x=0, pos_y=0)).sum().item()
    assert sq == 17 * 17  # pixel centres at integer offsets −8..8 lie on the closed boundary
    el = D.render(one(ELLIPSE, scale=5)).sum().item()
    assert abs(el - math.pi * 50) < 8


def test_pos_x_moves_along_columns_and_pos_y_along_rows():
    for shape in (SQUARE, ELLIPSE, HEART):
        for orientation in (0, 13):
            # 31 steps are exactly 35 pixels, so the sprite is the same image shifted by 35
            a = D.render(one(shape, 3, orientation, pos_x=0, pos_y=4))
            b = D.render(one(shape, 3, orientation, pos_x=31, pos_y=4))
            assert torch.equal(torch.roll(a, 35, dims=-1), b)
            c = D.render(one(shape, 3, orientation, pos_x=9, pos_y=0))
            d = D.render(one(shape, 3, orientation, pos_x=9, pos_y=31))
            assert torch.equal(torch.roll(c, 35, dims=-2), d)
    # intermediate steps: the centre of mass follows 35/31 px per step along the right axis
    for px in (0, 5, 16, 30):
        r, c = centroid(D.render(one(ELLIPSE, 4, 0, pos_x=px, pos_y=20))[0])
        assert abs(c - centre_px(px)) < 0.35 and abs(r - centre_px(20)) < 0.35
        r, c = centroid(D.render(one(ELLIPSE, 4, 0, pos_x=20, pos_y=px))[0])
        assert abs(r - centre_px(px)) < 0.35 and abs(c - centre_px(20)) < 0.35
    r0, c0 = centroid(D.render(one(SQUARE, 5, 0, pos_x=3, pos_y=11))[0])
    r1, c1 = centroid(D.render(one(SQUARE, 5, 0, pos_x=13, pos_y=11))[0])
    assert abs((c1 - c0) - 10 * STEP_PX) < 0.6 and abs(r1 - r0) < 1e-9


def test_orientation_rotates_the_sprite():
    # an ellipse is twice as long as it is wide: its principal axis follows θ (mod π)
    for o in range(0, 40, 3):
        x = D.render(one(ELLIPSE, 5, o, 15, 15))[0, 0].double()
        rr, cc = x.nonzero(as_tuple=True)
        rr, cc = rr.double() - rr.double().mean(), cc.double() - cc.double().mean()
        axis = 0.5 * math.atan2(2 * (rr * cc).mean(), (cc * cc).mean() - (rr * rr).mean())
        theta = 2 * math.pi * o / 39
        err = (axis - theta) % math.pi
        assert min(err, math.pi - err) < math.radians(4), (o, math.degrees(axis), math.degrees(theta))
    wide = D.render(one(ELLIPSE, 5, 0))[0, 0]
    assert (wide.sum(0) > 0).sum() > 1.8 * (wide.sum(1) > 0).sum()  # θ = 0: long along the columns

    # a heart is not point-symmetric: θ and ≈θ+π (20 steps = 1.026π) barely overlap; an ellipse is
    def iou(a, b):
        return float((a * b).sum() / ((a + b) > 0).sum())

    for o in (0, 5, 11):
        h = D.render(torch.cat([one(HEART, 5, o), one(HEART, 5, o + 20)]))
        e = D.render(torch.cat([one(ELLIPSE, 5, o), one(ELLIPSE, 5, o + 20)]))
        assert not torch.equal(h[0], h[1]) and iou(h[0], h[1]) < 0.75
        assert iou(e[0], e[1]) > 0.85
    # heart at θ = 0 stands upright: lobes (mass) above the centre, the point below
    heart = D.render(one(HEART, 5, 0, 15, 15))[0]
    r, _ = centroid(heart)
    assert r < centre_px(15)
    rows = heart[0].sum(1).nonzero().squeeze(1)
    assert heart[0, rows[-1]].sum() <= 3 and heart[0, rows[0]].sum() > 3


def test_orientation_zero_and_two_pi_draw_the_same_image():
    f0 = grid(shape=[0, 1, 2], scale=[0, 2, 5], orientation=0, pos_x=[0, 7, 15, 31], pos_y=[0, 13, 31])
    f39 = f0.clone()
    f39[:, 2] = 39
    assert torch.equal(D.render(f0), D.render(f39))


# ---- the dataset: spec, split, batches ---------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return DATASETS.get("dsprites")(heldout=1000).build(seed=3, device=torch.device("cpu"))


def test_spec_validates_and_builds(data):
    cls = DATASETS.get("dsprites")
    assert cls().heldout == 10_000
    with pytest.raises(ValidationError):
        cls(heldout=50)
    with pytest.raises(ValidationError):
        cls(heldout=200_000)
    with pytest.raises(ValidationError):
        cls.model_validate({"type": "dsprites", "heldot": 500})
    assert isinstance(data, D.DSprites)
    assert data.shape == (1, 64, 64) and data.binary
    assert data.factor_names == D.FACTOR_NAMES and data.factor_sizes == D.FACTOR_SIZES
    assert data.n_train == D.N_IMAGES - 1000


def test_heldout_split_is_fixed_disjoint_and_seed_independent(data):
    other = D.DSprites(1000, seed=99)
    assert torch.equal(data.heldout_index, other.heldout_index)
    h = D.heldout_indices(1000)
    assert torch.equal(h, D.heldout_indices(1000))
    assert torch.equal(h, h.sort().values) and h.unique().numel() == 1000
    assert torch.equal(h, data.heldout_index.sort().values)
    assert torch.isin(D.heldout_indices(100), h).all()  # a smaller split is part of a larger one
    # training and held-out partition the whole grid
    assert data.train_index.numel() == data.n_train
    assert not torch.isin(data.train_index, h).any()
    assert torch.equal(torch.cat([data.train_index, h]).sort().values, torch.arange(D.N_IMAGES))
    # the held-out split is a spread-out sample, not a corner of the grid
    hf = D.index_to_factors(data.heldout_index[:300])
    assert all(hf[:, 0].bincount(minlength=3) > 50)


def test_training_batches_never_contain_heldout_images(data):
    h = D.heldout_indices(1000)
    for step in (0, 1, 57, 1419, 1420, 5000):
        idx = data.train_indices(step, 512)
        assert idx.numel() == 512 and idx.unique().numel() == 512
        assert not torch.isin(idx, h).any()
    # a whole epoch with a large batch: every training image at most once
    epoch = torch.cat([data.train_indices(s, 100_000) for s in range(data.n_train // 100_000)])
    assert epoch.unique().numel() == epoch.numel() == 7 * 100_000
    assert not torch.isin(epoch, h).any() and epoch.min() >= 0 and epoch.max() < D.N_IMAGES


def test_batches_are_a_pure_function_of_seed_and_step(data):
    again = D.DSprites(1000, seed=3)
    x = data.train_batch(7, 64).images
    assert x.shape == (64, 1, 64, 64) and torch.all((x == 0) | (x == 1))
    assert torch.equal(x, again.train_batch(7, 64).images)
    assert torch.equal(x, D.render(D.index_to_factors(data.train_indices(7, 64))))
    assert not torch.equal(x, data.train_batch(8, 64).images)
    assert not torch.equal(x, D.DSprites(1000, seed=4).train_batch(7, 64).images)
    # resuming out of order replays the same batches
    late = again.train_batch(20_000, 64).images
    assert torch.equal(again.train_batch(7, 64).images, x)
    assert torch.equal(data.train_batch(20_000, 64).images, late)


def test_epoch_sampler_covers_each_epoch_without_repetition():
    s = EpochSampler(10, 3, seed=5, device=torch.device("cpu"))
    assert s.steps_per_epoch == 3
    for epoch in range(3):
        seen = torch.cat([s.indices(epoch * 3 + k) for k in range(3)])
        assert seen.numel() == 9 and seen.unique().numel() == 9 and seen.max() < 10
    first = torch.cat([s.indices(k) for k in range(3)])
    second = torch.cat([s.indices(3 + k) for k in range(3)])
    assert not torch.equal(first, second)  # a fresh permutation each epoch
    assert torch.equal(EpochSampler(10, 3, seed=5, device=torch.device("cpu")).indices(4), s.indices(4))


def test_heldout_images_and_factor_values(data):
    x, v = data.heldout(40)
    assert x.shape == (40, 1, 64, 64) and v.shape == (40, 5) and v.dtype == torch.float32
    f = D.index_to_factors(data.heldout_index[:40])
    assert torch.equal(x, D.render(f))
    assert torch.equal(v, D.factor_values(f))
    # cached: a repeat or a shorter request reuses the rendered images
    x2, _ = data.heldout(40)
    assert x2.data_ptr() == x.data_ptr()
    x3, v3 = data.heldout(10)
    assert torch.equal(x3, x[:10]) and torch.equal(v3, v[:10])
    x4, _ = data.heldout(60)
    assert torch.equal(x4[:40], x)
    with pytest.raises(ValueError):
        data.heldout(1001)
