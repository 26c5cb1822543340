"""`sculpt traverse`: sweep values per --range mode, the grid geometry, single-coordinate decoders, the CLI."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from sculptcli.cli.app import app
from sculptcli.errors import UserError
from sculptcli.models.base import AutoEncoder
from sculptcli.priors.builtin import MVN, Gaussian, Product, Uniform
from sculptcli.viz import traverse as tv

Z98 = 2.0537489  # standard normal 98th percentile


class OneCoordinateAE(AutoEncoder):
    """A decoder whose image depends on z[:, k] only: every pixel is 3·z_k (logits)."""

    def __init__(self, d: int, k: int, side: int = 6):
        super().__init__()
        self.latent_dim, self.stochastic, self.k, self.side = d, False, k, side
        self.encoder = nn.Flatten()

    def decode(self, z):
        return (3.0 * z[:, self.k]).view(-1, 1, 1, 1).expand(-1, 1, self.side, self.side)


# ---------------------------------------------------------------- sweep values


def test_prior_range_is_the_2nd_to_98th_percentile_of_the_prior():
    v = tv.sweep_values(tv.parse_range("prior"), 5, prior=Gaussian(mean=1.0, std=2.0).build(2))
    assert v.shape == (2, 5) and torch.equal(v[0], v[1])  # i.i.d. dimensions sweep identical values
    assert v[:, 0] == pytest.approx(torch.full((2,), 1.0 - 2.0 * Z98), abs=0.1)
    assert v[:, -1] == pytest.approx(torch.full((2,), 1.0 + 2.0 * Z98), abs=0.1)
    assert torch.allclose(v, torch.stack([torch.linspace(float(a), float(b), 5) for a, b in v[:, [0, -1]]]))
    # a product prior: each dimension gets its own block's percentiles (uniform(-1, 1): ±0.96)
    prod = Product(blocks=[Gaussian(), Uniform(low=-1.0, high=1.0)]).build(2)
    v = tv.sweep_values(tv.parse_range("prior"), 3, prior=prod)
    assert v[0, 0] == pytest.approx(-Z98, abs=0.05) and v[0, -1] == pytest.approx(Z98, abs=0.05)
    assert v[1, 0] == pytest.approx(-0.96, abs=0.02) and v[1, -1] == pytest.approx(0.96, abs=0.02)
    # seeded: the same values every time
    assert torch.equal(v, tv.sweep_values(tv.parse_range("prior"), 3, prior=prod))


def test_iid_groups_pool_dimensions_with_identical_marginals():
    spec = Product(blocks=[Gaussian(dims=2), Uniform(), Gaussian(), MVN(mean=[0, 0], cov=[[1, 0.5], [0.5, 1]])])
    assert tv.iid_groups(spec, 6) == [[0, 1, 3], [2], [4], [5]]
    assert tv.iid_groups(Gaussian(), 3) == [[0, 1, 2]]


def test_fixed_fit_and_data_ranges():
    codes = torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2.0, 0.5]) + 1.0
    v = tv.sweep_values(tv.parse_range("fixed:-3:3"), 7, codes=codes)
    assert torch.allclose(v, torch.linspace(-3, 3, 7).expand(3, 7))
    v = tv.sweep_values(tv.parse_range("fixed:-1.5e0:.5"), 3, dim=2)
    assert torch.allclose(v, torch.tensor([[-1.5, -0.5, 0.5]] * 2))
    v = tv.sweep_values(tv.parse_range("fit:2"), 5, codes=codes)
    mean, std = codes.mean(0), codes.std(0)
    assert torch.allclose(v[:, 0], mean - 2 * std, atol=1e-5) and torch.allclose(v[:, -1], mean + 2 * std, atol=1e-5)
    assert torch.allclose(v[:, 2], mean, atol=1e-5)
    v = tv.sweep_values(tv.parse_range("data"), 4, codes=codes)
    assert torch.equal(v[:, 0], codes.min(0).values) and torch.allclose(v[:, -1], codes.max(0).values)


@pytest.mark.parametrize("text", ["wild", "", "fixed:1", "fixed:3:-3", "fixed:a:b", "fit:0", "fit:-1", "fit", "data:2"])
def test_bad_range_strings_name_the_accepted_forms(text):
    with pytest.raises(UserError) as e:
        tv.parse_range(text)
    assert "fixed:LO:HI" in e.value.render() and "fit:K" in e.value.render()


def test_prior_range_needs_a_prior():
    with pytest.raises(UserError):
        tv.sweep_values(tv.parse_range("prior"), 3, codes=torch.zeros(4, 2))


# ---------------------------------------------------------------- the grid


def test_grid_size_follows_make_grid_padding_and_block_gaps():
    images = torch.rand(1, 3, 5, 1, 8, 8)
    grid, layout = tv.latent_grid(images, padding=2)
    assert grid.shape == (3, 3 * (8 + 2) + 2, 5 * (8 + 2) + 2)
    r, c = layout.cell(0, 1, 4)
    assert torch.equal(grid[0, r, c], images[0, 1, 4, 0])
    grid, layout = tv.latent_grid(torch.rand(4, 2, 3, 1, 8, 6), padding=1, gap=5)
    assert grid.shape == (3, 4 * (2 * 9 + 1) + 3 * 5, 3 * 7 + 1)
    assert (layout.grid_height, layout.grid_width) == grid.shape[1:]


def test_only_the_decoded_coordinates_block_changes_across_columns():
    d, k, rows, steps = 4, 2, 3, 5
    model = OneCoordinateAE(d, k)
    codes = torch.randn(rows, d, generator=torch.Generator().manual_seed(1))
    values = tv.sweep_values(tv.parse_range("fixed:-2:2"), steps, dim=d)
    images = tv.traverse_images(model, codes, list(range(d)), values)
    assert images.shape == (d, rows, steps, 1, 6, 6)
    grid, layout = tv.latent_grid(images, padding=2, gap=3)
    for b in range(d):
        for r in range(rows):
            cells = [grid[:, ys, xs] for ys, xs in (layout.cell(b, r, s) for s in range(steps))]
            same = all(torch.equal(cells[0], c) for c in cells[1:])
            assert same == (b != k), (b, r)
            if b != k:  # the row's own code
                assert torch.allclose(cells[0][0], torch.sigmoid(3 * codes[r, k]).expand(6, 6))
    # block k sweeps the value: column s shows sigmoid(3·value_s), monotone across columns
    ys, _ = layout.cell(k, 0, 0)
    means = [float(grid[0, ys, layout.cell(k, 0, s)[1]].mean()) for s in range(steps)]
    assert means == sorted(means) and means[0] == pytest.approx(float(torch.sigmoid(torch.tensor(-6.0))), abs=1e-6)


def test_figure_png_has_the_layout_pixel_size_and_gif_one_frame_per_value(tmp_path):
    images = torch.rand(2, 3, 4, 1, 16, 16)
    values = tv.sweep_values(tv.parse_range("fixed:-1:1"), 4, dim=2)
    scale = tv.display_scale(16, 16)
    assert scale == 4
    grid, layout = tv.latent_grid(images, gap=tv.label_gap(values, [0, 1], scale))
    fig, fl = tv.traversal_figure(grid, layout, [0, 1], values, "title", "subtitle", scale=scale)
    assert fl == tv.figure_layout(layout, labelled_rows=True, scale=scale)
    tv.save_figure_png(fig, tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (fl.width, fl.height)
    tv.save_gif(tv.gif_frames(grid, layout, scale), tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 4 and im.size == ((16 + 4) * scale, layout.grid_height * scale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "g.png"]


def test_column_labels_resolve_neighbouring_values():
    assert tv.column_labels(torch.linspace(-2, 2, 5)) == ["-2.00", "-1.00", "0.00", "1.00", "2.00"]
    labels = tv.column_labels(torch.linspace(-0.04, -0.01, 11))
    assert len(set(labels)) == 11


# ---------------------------------------------------------------- the CLI on a trained tiny run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A directory holding runs/latest -> a 12-step tiny dSprites run (trained once for this module)."""
    import yaml
    from conftest import TINY

    root = tmp_path_factory.mktemp("traverse")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        res = CliRunner().invoke(app, ["train", "--config", "tiny.yaml", "-q", "--no-score"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    return root


def test_traverse_latest_run_writes_png_and_gif(cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained)  # no path: runs/latest
    out = tmp_path / "out"
    code, stdout, err = cli("traverse", "--dim", "1", "--out", out / "grid.png", "--gif", out / "anim.gif",
                            "--steps", "5", "--seeds", "3")  # fmt: skip
    assert code == 0, err
    expected = tv.figure_layout(tv.GridLayout(1, 3, 5, 64, 64, padding=2, gap=tv.label_gap(torch.zeros(3, 5), [1], 1)),
                                labelled_rows=False)  # fmt: skip
    with Image.open(out / "grid.png") as im:
        assert im.size == (expected.width, expected.height) == (420, 52 + 3 * 66 + 2 + 12)
    with Image.open(out / "anim.gif") as im:
        assert im.n_frames == 5 and im.size == (68, 3 * 66 + 2)
    assert sorted(p.name for p in out.iterdir()) == ["anim.gif", "grid.png"]


def test_traverse_all_dims_and_range_modes(cli, trained, tmp_path):
    run = trained / "runs" / "latest"
    code, _, err = cli("traverse", run, "--dim", "all", "--out", tmp_path / "all.png", "--steps", "4", "--seeds", "2")
    assert code == 0, err
    # a gaussian prior: every block sweeps the same values, so blocks are 6 px apart
    layout = tv.GridLayout(3, 2, 4, 64, 64, padding=2, gap=6)
    fl = tv.figure_layout(layout, labelled_rows=True)
    with Image.open(tmp_path / "all.png") as im:
        assert im.size == (fl.width, fl.height)
    for rng in ("data", "fit:2", "fixed:-2:2"):
        target = tmp_path / f"{rng.replace(':', '_')}.png"
        code, _, err = cli("traverse", run / "last.safetensors", "--dim", "0", "--out", target, "--range", rng,
                           "--seed", "3", "--steps", "3", "--seeds", "2", "--n-data", "100")  # fmt: skip
        assert code == 0 and target.is_file(), (rng, err)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dim", "3"], "0 to 2"),
        (["--dim", "-1"], "0 to 2"),
        (["--dim", "first"], "--dim"),
        (["--dim", "0", "--range", "wild"], "fixed:LO:HI"),
        (["--dim", "0", "--range", "fixed:2:1"], "fixed:LO:HI"),
        (["--dim", "0", "--steps", "1"], "--steps"),
        (["--dim", "0", "--seeds", "0"], "--seeds"),
        (["--dim", "0", "--seeds", "500"], "--seeds"),
        (["--dim", "0", "--gif", "OUT/anim.png"], ".gif"),
        (["--dim", "0", "--out", "OUT/grid.jpg"], ".png"),
        (["--dim", "0", "--checkpoint", "middle"], "last or best"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(cli, trained, tmp_path, args, message):
    out = tmp_path / "OUT"
    args = [a.replace("OUT", str(out)) for a in args]
    if "--out" not in args:
        args += ["--out", str(out / "grid.png")]
    code, _, err = cli("traverse", trained / "runs" / "latest", *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists() or not list(out.iterdir())


def test_missing_or_corrupt_checkpoint_exits_2(cli, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    for target in ([tmp_path / "nope"], [bad], []):  # [] : no runs/latest in this directory
        code, _, err = cli("traverse", *target, "--dim", "0", "--out", tmp_path / "g.png")
        assert code == 2 and "error" in err
    assert not (tmp_path / "g.png").exists()
