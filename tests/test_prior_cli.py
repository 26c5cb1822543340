"""`sculpt prior list|validate|sample|show|plot|mmd`: bad prior files exit 2 with a message naming the problem;
samples, statistics, figures and MMD tests agree with the declared distributions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from sculptcli.config import preset_names
from sculptcli.priors import PRIORS
from sculptcli.priors.files import prior_preset_names
from tests.conftest import assert_user_error

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_spec(tmp_path: Path, spec: dict, name: str = "p.yaml") -> str:
    (tmp_path / name).write_text(yaml.safe_dump(spec))
    return name


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------- validate: the corpus of invalid files

MVN2 = "{type: mvn, mean: [0, 0], cov: [[1, 0], [0, 1]]"
BAD: list[tuple[str, str | bytes | None, tuple[str, ...]]] = [
    # wrong types
    ("std-string", "type: gaussian\nstd: abc\n", ("prior.std", "valid number")),
    ("means-scalar", "type: gmm\nmeans: 3\n", ("prior.means", "valid list")),
    ("means-bool", "type: gmm\nmeans: true\n", ("prior.means", "valid list")),
    ("blocks-mapping", "type: product\nblocks: {}\n", ("prior.blocks", "valid list")),
    ("blocks-of-strings", "type: product\nblocks: [gaussian]\n", ("prior.blocks[0]", "dictionary")),
    ("cov-flat", "type: mvn\nmean: [0, 0]\ncov: [1, 0, 0, 1]\n", ("prior.cov[0]", "valid list")),
    ("dims-string", "type: gaussian\ndims: many\n", ("prior.dims", "valid integer")),
    # out-of-range values
    ("std-negative", "type: gaussian\nstd: -1\n", ("prior.std", "greater than 0")),
    ("std-zero", "type: gaussian\nstd: 0\n", ("prior.std", "greater than 0")),
    ("scale-zero", "type: laplace\nscale: 0\n", ("prior.scale", "greater than 0")),
    ("scale-negative", "type: laplace\nscale: -2.5\n", ("prior.scale", "greater than 0")),
    ("gmm-std-negative", "type: gmm\nmeans: [0, 1]\nstds: [1, -1]\n", ("prior.stds[1]", "greater than 0")),
    ("dims-zero", "type: gaussian\ndims: 0\n", ("prior.dims", "greater than or equal to 1")),
    ("mean-nan", "type: gaussian\nmean: .nan\n", ("prior.mean", "finite")),
    ("std-inf", "type: gaussian\nstd: .inf\n", ("prior.std", "finite")),
    ("cov-inf", "type: mvn\nmean: [0]\ncov: [[.inf]]\n", ("prior.cov", "finite")),
    ("low-equals-high", "type: uniform\nlow: 1\nhigh: 1\n", ("prior", "must be smaller than high")),
    ("low-above-high", "type: uniform\nlow: 2\nhigh: -2\n", ("prior", "must be smaller than high")),
    # mixtures
    ("weights-sum", "type: gmm\nmeans: [-1, 1]\nweights: [0.5, 0.6]\n", ("prior", "sum to 1")),
    ("weights-negative", "type: gmm\nmeans: [-1, 1]\nweights: [1.5, -0.5]\n", ("prior", "non-negative")),
    ("weights-length", "type: gmm\nmeans: [-1, 1]\nweights: [1.0]\n", ("weights has 1 entries but means has 2",)),
    ("stds-length", "type: gmm\nmeans: [-1, 1]\nstds: [1, 1, 1]\n", ("stds has 3 entries but means has 2",)),
    ("means-empty", "type: gmm\nmeans: []\n", ("prior.means", "at least 1")),
    # products
    ("blocks-empty", "type: product\nblocks: []\n", ("prior.blocks", "at least 1")),
    ("blocks-missing", "type: product\n", ("prior.blocks", "required key is missing")),
    (
        "product-mvn-dims",
        f"type: product\nblocks:\n  - {{type: gaussian}}\n  - {MVN2}, dims: 3}}\n",
        ("prior.blocks[1]", "dims is 3 but mean has 2 entries"),
    ),
    (
        "product-dims-vs-blocks",
        "type: product\ndims: 4\nblocks: [{type: gaussian}, {type: uniform, dims: 2}]\n",
        ("prior", "dims is 4 but the blocks cover 3"),
    ),
    (
        "product-bad-block",
        "type: product\nblocks: [{type: gaussian}, {type: uniform, low: 2, high: 1}]\n",
        ("prior.blocks[1]", "must be smaller than high"),
    ),
    (
        "product-nested-bad",
        "type: product\nblocks:\n  - type: product\n    blocks: [{type: gaussian, std: -1}]\n",
        ("prior.blocks[0].blocks[0].std", "greater than 0"),
    ),
    # unknown keys and types
    ("unknown-key", "type: gaussian\nsdt: 2\n", ("unknown key 'sdt'", "Did you mean 'std'?")),
    (
        "unknown-key-nested",
        "type: product\nblocks: [{type: uniform, hihg: 2}]\n",
        ("prior.blocks[0]", "unknown key 'hihg'", "Did you mean 'high'?"),
    ),
    ("unknown-type", "type: gausian\n", ("prior.type", "unknown prior type 'gausian'", "Did you mean 'gaussian'?")),
    (
        "unknown-type-nested",
        "type: product\nblocks: [{type: lapalce}]\n",
        ("prior.blocks[0].type", "Did you mean 'laplace'?"),
    ),
    ("type-not-a-string", "type: 3\n", ("unknown prior type '3'", "gaussian")),
    ("missing-type", "mean: 0\nstd: 1\n", ("missing key 'type'",)),
    ("missing-type-nested", "type: product\nblocks: [{mean: 0}]\n", ("prior.blocks[0]", "missing key 'type'")),
    # covariance
    ("cov-not-positive-definite", "type: mvn\nmean: [0, 0]\ncov: [[1, 2], [2, 1]]\n", ("positive definite",)),
    ("cov-negative-diagonal", "type: mvn\nmean: [0]\ncov: [[-1]]\n", ("positive definite",)),
    ("cov-not-symmetric", "type: mvn\nmean: [0, 0]\ncov: [[1, 0.5], [0, 1]]\n", ("symmetric",)),
    ("cov-not-square", "type: mvn\nmean: [0, 0]\ncov: [[1, 0, 0], [0, 1, 0]]\n", ("2x2 matrix",)),
    ("cov-missing", "type: mvn\nmean: [0, 0]\n", ("prior.cov", "required key is missing")),
    # run config with an invalid prior
    ("run-config-bad-prior", "prior: {type: gaussian, std: -1}\n", ("prior.std", "greater than 0")),
    # not a YAML mapping at all
    ("empty-file", "", ("empty",)),
    ("only-comments", "# nothing here\n", ("empty",)),
    ("yaml-list", "- type: gaussian\n- type: uniform\n", ("expected a YAML mapping, got list",)),
    ("yaml-scalar", "gaussian\n", ("expected a YAML mapping, got str",)),
    ("python-tag", '!!python/object/apply:os.system ["echo hi"]\n', ("python/object/apply",)),
    (
        "python-tag-value",
        'type: gaussian\nmean: !!python/object/apply:os.system ["touch pwned"]\n',
        ("python/object/apply",),
    ),
    ("binary-garbage", random.Random(0).randbytes(512), ("UTF-8",)),
    ("control-bytes", b"\x00\x01\x02type: gaussian\n", ("malformed YAML",)),
    ("invalid-utf8", b"type: gaussian\nmean: \xff\xfe\n", ("not a text (UTF-8) file",)),
    ("malformed-yaml", "type: gaussian\nmean: [0, 1\n", ("malformed YAML", "bad.yaml:")),
    ("tab-indent", "type: product\nblocks:\n\t- type: gaussian\n", ("malformed YAML",)),
    ("unclosed-quote", 'type: "gaussian\n', ("malformed YAML",)),
    ("nonexistent-path", None, ("no prior file or packaged prior named 'bad.yaml'",)),
]


@pytest.mark.parametrize("content,fragments", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_invalid_prior_exits_2_naming_the_problem(cli, tmp_path, content, fragments):
    if isinstance(content, bytes):
        (tmp_path / "bad.yaml").write_bytes(content)
    elif content is not None:
        (tmp_path / "bad.yaml").write_text(content, encoding="utf-8")
    assert_user_error(cli("prior", "validate", "bad.yaml"), *fragments)
    assert not (tmp_path / "pwned").exists()  # YAML tags are never executed


def test_the_corpus_is_large():
    assert len(BAD) >= 30


def test_a_directory_is_not_a_prior(cli, tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    assert_user_error(cli("prior", "validate", "dir.yaml"), "no prior file")


def test_unknown_packaged_prior_suggests_one(cli):
    assert_user_error(cli("prior", "validate", "dsprites-hybird"), "Did you mean 'dsprites-hybrid'?")


# ---------------------------------------------------------------- validate: valid specs

GOOD = {
    "gaussian": {"type": "gaussian", "mean": 1.0, "std": 2.0},
    "uniform": {"type": "uniform", "low": -3, "high": 3},
    "laplace": {"type": "laplace", "loc": 0.5, "scale": 1.5},
    "gmm": {"type": "gmm", "means": [-2, 2], "stds": [0.5, 1.0], "weights": [0.3, 0.7]},
    "mvn": {"type": "mvn", "mean": [0, 1], "cov": [[1, 0.5], [0.5, 2]]},
    "product": {
        "type": "product",
        "blocks": [
            {"type": "uniform", "low": -5, "high": 5},
            {"type": "gmm", "means": [-10, 10], "dims": 2},
            {"type": "mvn", "mean": [0, 0], "cov": [[1, 0.9], [0.9, 1]]},
        ],
    },
    "ring": {"type": "ring", "radius": 2.0, "noise": 0.1},
    "torus": {"type": "torus", "radius": [1.0, 2.0]},
    "transform": {"type": "transform", "fn": "tanh", "base": {"type": "gaussian"}},
    "empirical": {"type": "empirical", "source": "codes.npy"},  # test_valid_spec writes codes.npy
    "conditional": {"type": "conditional", "factors": [1, 2], "std": 0.5},
}


def test_every_builtin_type_has_a_valid_example():
    assert set(GOOD) >= set(PRIORS.names())


@pytest.mark.parametrize("name", sorted(GOOD))
def test_valid_spec(cli, tmp_path, name):
    np.save(tmp_path / "codes.npy", np.zeros((10, 2), np.float32))  # the source of GOOD["empirical"]
    code, out, err = cli("prior", "validate", write_spec(tmp_path, GOOD[name]))
    assert code == 0, err
    assert out.startswith("ok") and name in out
    if name == "product":
        assert "5 dimensions" in out
    if name == "mvn":
        assert "2 dimensions" in out


@pytest.mark.parametrize("name", prior_preset_names())
def test_packaged_priors_are_valid(cli, name):
    code, out, err = cli("prior", "validate", name)
    assert code == 0, err
    assert out.startswith("ok")


def test_packaged_priors_exist():
    assert {"dsprites-hybrid", "xy-uniform"} <= set(prior_preset_names())


def test_run_preset_name_validates_its_prior(cli):
    assert "dsprites-mmd-hybrid" in preset_names()
    code, out, err = cli("prior", "validate", "dsprites-mmd-hybrid")
    assert code == 0, err
    assert "product[" in out and "5 dimensions" in out


def test_run_config_file_validates_its_prior(cli, tmp_path):
    (tmp_path / "inline.yaml").write_text(yaml.safe_dump({"model": {"latent_dim": 2}, "prior": GOOD["mvn"]}))
    code, out, err = cli("prior", "validate", "inline.yaml")
    assert code == 0, err
    assert "mvn(" in out
    # a run config referring to a packaged prior by name (as the hybrid preset does)
    (tmp_path / "ref.yaml").write_text("data: {type: dsprites}\nprior: dsprites-hybrid\n")
    code, out, err = cli("prior", "validate", "ref.yaml")
    assert code == 0, err
    assert "product[" in out


# ---------------------------------------------------------------- list


def test_list_shows_types_parameters_and_packaged_files(cli):
    code, out, err = cli("prior", "list")
    assert code == 0, err
    for name in PRIORS.names():
        assert name in out
    for param in ("means", "weights", "scale", "blocks", "cov"):
        assert param in out
    assert "dsprites-hybrid" in out and "xy-uniform" in out


# ---------------------------------------------------------------- sample


def test_sample_gaussian_npy_moments(cli, tmp_path):
    spec = write_spec(tmp_path, {"type": "gaussian", "mean": 2.0, "std": 3.0})
    code, _, err = cli("prior", "sample", spec, "-n", 20000, "--dim", 3, "--out", "s.npy")
    assert code == 0, err
    x = np.load(tmp_path / "s.npy", allow_pickle=False)
    assert x.shape == (20000, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(0), 2.0, atol=0.1)
    np.testing.assert_allclose(x.std(0), 3.0, rtol=0.03)
    np.testing.assert_allclose(np.median(x, 0), 2.0, atol=0.1)
    assert leftovers(tmp_path) == []


def test_sample_uniform_safetensors_bounds_and_quantiles(cli, tmp_path):
    spec = write_spec(tmp_path, {"type": "uniform", "low": -5, "high": 5})
    code, _, err = cli("prior", "sample", spec, "-n", 20000, "--dim", 2, "--out", "s.safetensors", "--seed", 1)
    assert code == 0, err
    x = load_file(tmp_path / "s.safetensors")["samples"]
    assert x.shape == (20000, 2)
    assert x.min() >= -5 and x.max() < 5
    np.testing.assert_allclose(np.quantile(x, [0.02, 0.5, 0.98], axis=0).T, [[-4.8, 0, 4.8]] * 2, atol=0.2)


def test_sample_product_covers_its_dims(cli, tmp_path):
    code, _, err = cli("prior", "sample", "dsprites-hybrid", "-n", 20000, "--out", "h.npy")
    assert code == 0, err
    x = np.load(tmp_path / "h.npy")
    assert x.shape == (20000, 5)
    assert x[:, 0].min() >= -5 and x[:, 0].max() < 5  # uniform(-5, 5)
    assert x[:, 1].std() == pytest.approx(2.0, rel=0.03)  # N(0, 2²)
    assert (np.abs(x[:, 3:]) > 5).mean() > 0.99  # the two GMMs at ±10
    assert (x[:, 3:] > 0).mean() == pytest.approx(0.5, abs=0.02)


def test_sample_mvn_uses_its_own_dimension(cli, tmp_path):
    spec = write_spec(tmp_path, GOOD["mvn"])
    code, _, err = cli("prior", "sample", spec, "-n", 20000, "--out", "m.safetensors")
    assert code == 0, err
    x = load_file(tmp_path / "m.safetensors")["samples"].astype(np.float64)
    np.testing.assert_allclose(np.cov(x.T), GOOD["mvn"]["cov"], atol=0.08)


def test_sample_is_reproducible_by_seed(cli, tmp_path):
    spec = write_spec(tmp_path, {"type": "laplace"})
    for name, seed in (("a.npy", 3), ("b.npy", 3), ("c.npy", 4)):
        assert cli("prior", "sample", spec, "-n", 50, "--dim", 2, "--out", name, "--seed", seed)[0] == 0
    a, b, c = (np.load(tmp_path / f) for f in ("a.npy", "b.npy", "c.npy"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("out", ["s.csv", "s.pt", "s.npz", "samples"])
def test_sample_refuses_other_extensions(cli, tmp_path, out):
    spec = write_spec(tmp_path, {"type": "gaussian"})
    assert_user_error(cli("prior", "sample", spec, "-n", 10, "--dim", 2, "--out", out), "unsupported output format")
    assert not (tmp_path / out).exists()


def test_sample_dimension_errors(cli, tmp_path):
    spec = write_spec(tmp_path, {"type": "gaussian"})
    assert_user_error(cli("prior", "sample", spec, "-n", 10, "--out", "s.npy"), "1-D", "--dim")
    assert_user_error(
        cli("prior", "sample", "dsprites-hybrid", "-n", 10, "--dim", 3, "--out", "s.npy"), "5 dimensions", "3"
    )
    assert not (tmp_path / "s.npy").exists()
    assert_user_error(cli("prior", "sample", "missing.yaml", "-n", 10, "--out", "s.npy"), "no prior file")
    assert not (tmp_path / "s.npy").exists()
    code, _, err = cli("prior", "sample", spec, "-n", 0, "--dim", 2, "--out", "s.npy")
    assert code == 2 and "Traceback" not in err


def test_sample_into_a_directory_is_refused(cli, tmp_path):
    (tmp_path / "out.npy").mkdir()
    spec = write_spec(tmp_path, {"type": "gaussian"})
    assert_user_error(cli("prior", "sample", spec, "-n", 10, "--dim", 2, "--out", "out.npy"), "is a directory")
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_no_partial_file(cli, tmp_path, monkeypatch):
    import safetensors.torch

    def fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a tensor")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    (tmp_path / "s.safetensors").write_bytes(b"old")
    spec = write_spec(tmp_path, {"type": "gaussian"})
    assert_user_error(
        cli("prior", "sample", spec, "-n", 10, "--dim", 2, "--out", "s.safetensors"), "No space left on device"
    )
    assert (tmp_path / "s.safetensors").read_bytes() == b"old"  # the previous file is untouched
    assert_user_error(cli("prior", "sample", spec, "-n", 10, "--dim", 2, "--out", "new.safetensors"))
    assert not (tmp_path / "new.safetensors").exists()
    assert leftovers(tmp_path) == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------- show


def table_rows(out: str) -> dict[int, list[float]]:
    """dim -> [mean, std, q2, q25, q50, q75, q98] from `sculpt prior show`'s table."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 9 and parts[0].isdigit():
            rows[int(parts[0])] = [float(v) for v in parts[2:]]
    return rows


def test_show_gaussian_statistics(cli, tmp_path):
    spec = write_spec(tmp_path, {"type": "gaussian", "mean": 3.0, "std": 1.0})
    code, out, err = cli("prior", "show", spec, "-n", 50000)
    assert code == 0, err
    rows = table_rows(out)
    assert list(rows) == [0]  # a 1-D prior shows one dimension by default
    mean, std, q2, q25, q50, q75, q98 = rows[0]
    assert mean == pytest.approx(3.0, abs=0.03) and std == pytest.approx(1.0, abs=0.03)
    assert q50 == pytest.approx(3.0, abs=0.03)
    assert q25 == pytest.approx(3 - 0.6745, abs=0.04) and q75 == pytest.approx(3 + 0.6745, abs=0.04)
    assert q2 == pytest.approx(3 - 2.0537, abs=0.08) and q98 == pytest.approx(3 + 2.0537, abs=0.08)


def test_show_product_tree_and_dims(cli):
    code, out, err = cli("prior", "show", "dsprites-hybrid", "-n", 20000, "--seed", 2)
    assert code == 0, err
    assert "product" in out and "dims 0-4" in out
    assert "blocks[0]" in out and "dims 3-4" in out and "dim 2" in out
    rows = table_rows(out)
    assert sorted(rows) == [0, 1, 2, 3, 4]
    assert -5 <= rows[0][2] < rows[0][6] <= 5  # uniform(-5, 5): 2% and 98% quantiles inside the bounds
    assert rows[0][4] == pytest.approx(0.0, abs=0.2)
    assert rows[1][1] == pytest.approx(2.0, abs=0.08)
    assert rows[3][1] == pytest.approx(np.sqrt(101), abs=0.2)  # GMM ±10, std 1


def test_show_with_dim_and_mismatch(cli, tmp_path):
    spec = write_spec(tmp_path, {"type": "uniform", "low": 0, "high": 1})
    code, out, err = cli("prior", "show", spec, "--dim", 3, "-n", 5000)
    assert code == 0, err
    assert sorted(table_rows(out)) == [0, 1, 2]
    assert_user_error(cli("prior", "show", "dsprites-hybrid", "--dim", 2), "5 dimensions")


# ---------------------------------------------------------------- plot


def test_plot_writes_a_png(cli, tmp_path):
    code, out, err = cli("prior", "plot", "dsprites-hybrid", "--out", "prior.png", "-n", 2000)
    assert code == 0, err
    png = tmp_path / "prior.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    from matplotlib.image import imread

    img = imread(png)
    assert img.ndim == 3 and img.shape[0] >= 400 and img.shape[1] >= 400
    assert img[..., :3].std() > 0.01  # not blank
    assert leftovers(tmp_path) == []


def test_plot_1d_prior_and_bad_extension(cli, tmp_path):
    spec = write_spec(tmp_path, {"type": "gmm", "means": [-2, 2], "stds": 0.5})
    code, _, err = cli("prior", "plot", spec, "--out", "g.png", "-n", 2000)
    assert code == 0, err
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG_MAGIC
    assert_user_error(cli("prior", "plot", spec, "--out", "g.jpgx"), "unsupported figure format")
    assert not (tmp_path / "g.jpgx").exists()


# ---------------------------------------------------------------- mmd


def mmd_json(cli, *args) -> dict:
    code, out, err = cli("prior", "mmd", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_mmd_prior_against_itself(cli):
    r = mmd_json(cli, "dsprites-hybrid", "dsprites-hybrid", "-n", 1000, "--permutations", 100)
    assert r["p_value"] > 0.05
    assert r["mmd2"] >= 0 and r["n"] == 1000 and r["permutations"] == 100 and r["seed"] == 0


def test_mmd_detects_a_shifted_gaussian(cli, tmp_path):
    a = write_spec(tmp_path, {"type": "gaussian"}, "a.yaml")
    b = write_spec(tmp_path, {"type": "gaussian", "mean": 0.5}, "b.yaml")
    same = mmd_json(cli, a, a, "-n", 2000)
    assert same["p_value"] > 0.05
    r = mmd_json(cli, a, b, "-n", 2000, "--permutations", 200)
    assert r["p_value"] < 0.01 and r["mmd2"] > same["mmd2"]
    code, out, err = cli("prior", "mmd", a, b, "-n", 500, "--permutations", 50)
    assert code == 0, err
    assert "MMD²" in out and "p =" in out


def test_mmd_dimension_mismatch(cli, tmp_path):
    mvn = write_spec(tmp_path, GOOD["mvn"], "mvn.yaml")
    assert_user_error(cli("prior", "mmd", mvn, "dsprites-hybrid"), "dimension", "2", "5")
    assert_user_error(cli("prior", "mmd", mvn, mvn, "--dim", 3), "mvn.yaml", "2 dimensions")
    assert_user_error(cli("prior", "mmd", mvn, "nope.yaml"), "no prior file")
