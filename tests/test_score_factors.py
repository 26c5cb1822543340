"""Factor metrics through `sculpt score` and tables through `sculpt compare`, `--seeds` and the data flags."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from sculptcli.aggregate import flatten
from sculptcli.metrics import METRICS, SETS, ScoreInput
from sculptcli.metrics.information import lds
from sculptcli.metrics.supervised import mig
from sculptcli.scoring import run_metrics
from tests.conftest import TINY, assert_user_error

FACTOR_KEYS = ["mig", "sap", "dci.d", "dci.c", "dci.i", "factorvae", "betavae", "modularity", "explicitness",
               "infomec.m", "infomec.c", "infomec.e", "lds", "tc_gauss", "tc_mmd"]  # fmt: skip


def dotted(report, key):
    for part in key.split("."):
        report = report[part]
    return report


def grid_codes(n=3000, seed=0, entangle=False):
    """Three grid factors (8, 6, 5 values) copied into permuted, rescaled latents, plus one noise latent."""
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, s, n) for s in (8, 6, 5)], 1).astype(np.float32)
    z = np.stack([2.0 * f[:, 2] - 1, f[:, 0] * 0.5, -f[:, 1], rng.normal(size=n)], 1).astype(np.float32)
    if entangle:
        z[:, 0] = f[:, 0] + 10 * f[:, 1]
    return torch.from_numpy(z + 0.01 * rng.normal(size=z.shape).astype(np.float32)), torch.from_numpy(f)


def test_every_factor_key_is_reported_and_matches_the_library():
    z, f = grid_codes()
    r = run_metrics(ScoreInput(latents=z, factors=f, seed=0, options={"votes": 600}), ["all"])
    for key in FACTOR_KEYS:
        assert isinstance(dotted(r, key), float), key
    # the registered metric is the library function, not a copy of it
    assert r["mig"] == pytest.approx(mig(z, f)[0], abs=1e-12)
    assert r["lds"] == pytest.approx(lds(z, f)[0], abs=1e-12)
    # factors copied into latents: the factor metrics are near their maxima
    # (InfoM averages over active latents, and the pure-noise latent is active: it is not near 1 here)
    for key in ("mig", "dci.d", "factorvae", "betavae", "infomec.c", "lds"):
        assert dotted(r, key) > 0.9, (key, dotted(r, key))
    s = r["settings"]
    assert s["factorvae"]["pool"].startswith("the scored codes") and s["dci"]["model"] == "lgbm"
    assert set(s["seconds"]) == set(METRICS.resolve(["all"]))


def test_entangled_codes_score_lower_and_noise_scores_near_zero():
    clean = run_metrics(ScoreInput(*grid_codes(), seed=0), ["mig", "dci", "modularity", "lds"])
    mixed = run_metrics(ScoreInput(*grid_codes(entangle=True), seed=0), ["mig", "dci", "modularity", "lds"])
    assert mixed["modularity"] < clean["modularity"] - 0.03
    assert mixed["dci"]["d"] < clean["dci"]["d"] - 0.05
    rng = np.random.default_rng(1)
    _, f = grid_codes()
    noise = torch.from_numpy(rng.normal(size=(3000, 4)).astype(np.float32))
    r = run_metrics(ScoreInput(latents=noise, factors=f, seed=0), ["mig", "lds", "tc_gauss"])
    assert r["mig"] < 0.02 and abs(r["tc_gauss"]) < 0.01


def test_without_factors_the_factor_keys_are_null_and_tc_still_reported():
    z, _ = grid_codes()
    r = run_metrics(ScoreInput(latents=z, seed=0), ["supervised", "tc_gauss"])
    for key in ("mig", "sap", "dci", "factorvae", "betavae", "modularity", "explicitness", "infomec", "lds"):
        assert r[key] is None, key
    assert isinstance(r["tc_gauss"], float)


def test_metric_sets_and_unknown_names():
    assert METRICS.resolve(["fast", "mig", "dci"]) == SETS["fast"] + ["dci"]
    assert set(METRICS.resolve(["all"])) == set(METRICS.names())
    from sculptcli.errors import UserError

    with pytest.raises(UserError, match="Did you mean 'factorvae'"):
        METRICS.resolve(["factorvea"])


@pytest.fixture
def run_dir(cli, tiny_config, tmp_path):
    assert cli("train", "--config", tiny_config, "--out", tmp_path / "run", "-q", "--no-score")[0] == 0
    return tmp_path / "run"


def test_score_cli_metric_subset_save_and_render(cli, run_dir):
    code, out, err = cli("score", run_dir, "--json", "-m", "mig,lds,factorvae", "--n", "300", "--votes", "90")
    assert code == 0, err
    r = json.loads(out)
    assert r["settings"]["metrics"] == ["mig", "lds", "factorvae"]
    assert "lps" not in r and isinstance(r["mig"], float) and isinstance(r["factorvae"], float)
    assert r["settings"]["factorvae"]["n_train"] == 60
    code, out, err = cli("score", run_dir, "-m", "fast", "--probes", "linear", "--n", "300", "--save")
    assert code == 0, err
    assert "MIG" in out and "LDS" in out and "TC (MMD)" in out
    saved = json.loads((run_dir / "scores.json").read_text())
    assert saved["settings"]["metrics"] == SETS["fast"]
    assert_user_error(cli("score", run_dir, "-m", "mig,dcii"), "unknown metric 'dcii'", "Did you mean 'dci'")
    assert_user_error(cli("score", run_dir, "--dci-model", "xgb"), "--dci-model")


def test_intervene_render_uses_fresh_images_of_the_factor_grid(cli, run_dir):
    code, out, err = cli("score", run_dir, "--json", "-m", "factorvae,betavae", "--n", "300", "--votes", "30",
                         "--intervene", "render")  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert r["settings"]["factorvae"]["pool"].startswith("rendered from the dataset's full factor grid")
    assert 0.0 <= r["factorvae"] <= 1.0 and 0.0 <= r["betavae"] <= 1.0


def test_latents_file_with_factors_gets_factor_metrics(cli, tmp_path):
    z, f = grid_codes(600)
    save_file({"latents": z, "factors": f}, str(tmp_path / "z.safetensors"))
    code, out, err = cli("score", "--latents", tmp_path / "z.safetensors", "--json", "-m", "mig,dci,infomec")
    assert code == 0, err
    r = json.loads(out)
    assert r["mig"] > 0.8 and r["dci"]["d"] > 0.8 and r["infomec"]["m"] > 0.8
    assert_user_error(
        cli("score", "--latents", tmp_path / "z.safetensors", "--intervene", "render", "-m", "factorvae"),
        "--intervene render",
    )


def _write_scores(run, name, seed, values):
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": name, "seed": seed}))
    (run / "scores.json").write_text(json.dumps({**values, "settings": {"n": 10}}))


def test_compare_groups_runs_and_writes_mean_and_std(cli, tmp_path):
    vals = {"a": [0.1, 0.3], "b": [0.5]}
    for name, lps_values in vals.items():
        for seed, v in enumerate(lps_values):
            values = {"lps": {"lgbm": v, "per_dim": {"lgbm": [v]}}, "dci": {"d": 2 * v}, "nmse_db": -v}
            _write_scores(tmp_path / "runs" / name / f"seed-{seed}", name, seed, values)
    code, out, err = cli("compare", tmp_path / "runs", "--csv", tmp_path / "t.csv", "--md", tmp_path / "t.md")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    a = next(r for r in rows if r["group"] == "a")
    assert a["runs"] == "2"
    assert float(a["lps.lgbm.mean"]) == pytest.approx(0.2)
    assert float(a["lps.lgbm.std"]) == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert float(a["dci.d.mean"]) == pytest.approx(0.4)
    md = (tmp_path / "t.md").read_text()
    assert "| a | 2 |" in md and "0.200±0.141" in md and "LPS-lgbm" in md
    assert "per_dim" not in "".join(rows[0])
    assert_user_error(cli("compare", tmp_path / "runs", "--metrics", "lps.lgbmm"), "lps.lgbmm")
    assert_user_error(cli("compare", tmp_path / "nowhere"), "no such run directory")


def test_flatten_takes_numeric_leaves_by_dotted_path():
    flat = flatten({"lps": {"lgbm": 0.1, "per_dim": {"lgbm": [1]}}, "dci": {"d": 1}, "x": None, "settings": {"n": 3}})
    assert flat == {"lps.lgbm": 0.1, "dci.d": 1.0}


def test_seeds_train_two_baselines_and_compare_them(cli, tmp_path):
    """The issue's end to end: two baselines, two seeds each, aggregated into one table."""
    for name, div, stochastic in (("ae", {"type": "none"}, False), ("tcvae", {"type": "tcvae"}, True)):
        score = {"n": 200, "probes": ["linear"], "metrics": ["fast"]}
        model, train = {**TINY["model"], "stochastic": stochastic}, {**TINY["train"], "steps": 4}
        objective = {"recon": "bce", "divergence": div}
        cfg = dict(TINY, name=name, objective=objective, model=model, train=train, score=score)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        code, out, err = cli("train", "--config", tmp_path / f"{name}.yaml", "--seeds", "2", "--out",
                             tmp_path / "runs" / name, "-q")  # fmt: skip
        assert code == 0, err
        for s in (0, 1):
            cfg_s = yaml.safe_load((tmp_path / "runs" / name / f"seed-{s}" / "config.yaml").read_text())
            assert cfg_s["seed"] == s
    a = json.loads((tmp_path / "runs/ae/seed-0/scores.json").read_text())
    b = json.loads((tmp_path / "runs/ae/seed-1/scores.json").read_text())
    assert a["mig"] != b["mig"] or a["lps"]["linear"] != b["lps"]["linear"]  # different seeds, different runs
    code, out, err = cli("compare", tmp_path / "runs", "--md", tmp_path / "t.md", "--metrics", "lps.linear,mig,nmse_db")
    assert code == 0, err
    md = (tmp_path / "t.md").read_text()
    assert "| ae | 2 |" in md and "| tcvae | 2 |" in md


def test_data_flags_apply_only_to_datasets_on_disk(cli, tiny_config, tmp_path):
    assert_user_error(
        cli("train", "--config", tiny_config, "--data-dir", tmp_path, "--out", tmp_path / "r"),
        "--data-dir does not apply to the 'dsprites' dataset",
    )
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
    code, _, err = cli("train", "--preset", "cifar-mmd-gaussian", "--data-dir", tmp_path / "none", "--max-steps", "2",
                       "--out", tmp_path / "c")  # fmt: skip
    assert_user_error((code, "", err), "CIFAR-10 not found", str(tmp_path / "none"), "--download")
    assert not (tmp_path / "c").exists()  # nothing half-written


def test_a_run_that_fails_before_training_leaves_no_directory_and_keeps_latest(cli, tiny_config, tmp_path):
    assert cli("train", "--config", tiny_config, "-q", "--no-score", "--max-steps", "2")[0] == 0
    latest = (tmp_path / "runs" / "latest").resolve()
    for extra in ([], ["--seeds", "2"]):
        code, _, err = cli("train", "--preset", "cifar-mmd-gaussian", "--data-dir", tmp_path / "none", *extra)
        assert_user_error((code, "", err), "CIFAR-10 not found")
        assert (tmp_path / "runs" / "latest").resolve() == latest
        assert not (tmp_path / "runs" / "cifar-mmd-gaussian").exists()


def test_batch_larger_than_the_training_set_is_a_clean_error(cli, tmp_path):
    cfg = dict(TINY, data={"type": "xy", "heldout": 2700, "pad_to": 96},
               model={**TINY["model"], "latent_dim": 2}, train={**TINY["train"], "batch_size": 512})  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert_user_error(cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "r"), "larger than the 109")


def _strict_json(text: str) -> dict:
    """json.loads that refuses NaN and Infinity tokens, as strict parsers (and other languages) do."""

    def refuse(token: str):
        raise AssertionError(f"non-finite token {token} in the JSON")

    return json.loads(text, parse_constant=refuse)


def test_single_factor_data_gives_null_with_a_reason_never_a_perfect_score_or_nan(cli, tmp_path):
    # one varying factor (single-label data): FactorVAE and β-VAE would print 1.0 for any code, and DCI-D,
    # modularity and InfoM divide by zero; each must be null with its reason, and the JSON strictly finite
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 5, (600, 1), generator=g).float()
    z = torch.randn(600, 4, generator=g)  # a code that knows nothing about the label
    save_file({"latents": z, "factors": label}, str(tmp_path / "z.safetensors"))
    path = tmp_path / "z.safetensors"
    code, out, err = cli("score", "--latents", path, "--json", "-m", "supervised", "--votes", "60")
    assert code == 0, err
    r = _strict_json(out)
    for key in ("factorvae", "betavae", "modularity"):
        assert r[key] is None, key
        assert "only one factor varies" in r["not_applicable"][key]
    assert r["dci"]["d"] is None and "only one factor" in r["not_applicable"]["dci.d"]
    assert r["dci"]["i"] is not None  # informativeness is defined with one factor
    assert r["infomec"]["m"] is None and "only one factor" in r["not_applicable"]["infomec.m"]
    code, out, err = cli("score", "--latents", tmp_path / "z.safetensors", "-m", "factorvae,dci", "--votes", "60")
    assert code == 0, err
    assert "n/a" in out and "only one factor varies" in " ".join(out.split())
    assert "1.0000" not in out


def test_non_finite_values_are_written_as_null_with_a_reason():
    from sculptcli.scoring import null_non_finite

    reasons: dict[str, str] = {}
    part = {"a": float("nan"), "b": {"c": float("inf"), "d": 0.5}, "e": [1.0, float("nan")], "f": np.float64("nan")}
    out = null_non_finite(part, reasons, "why")
    assert out == {"a": None, "b": {"c": None, "d": 0.5}, "e": [1.0, None], "f": None}
    assert reasons == {"a": "why", "b.c": "why", "f": "why"}
    # codes whose covariance is exactly diagonal have an infinite covariance ratio: null in the report, with the reason
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]).repeat(10, 1)
    r = run_metrics(ScoreInput(latents=z, seed=0), ["cov_ratio"])
    assert r["cov_ratio"] is None and "non-finite" in r["not_applicable"]["cov_ratio"]
    json.dumps(r, allow_nan=False)


# ---------------------------------------------------------------------------------------------------------------
# scores at any width: probes skipped by default on wide codes, the progress line, timings in `sculpt compare`


def test_wide_codes_leave_out_the_lgbm_probe_unless_lps_is_named(monkeypatch):
    from sculptcli.metrics import builtin

    monkeypatch.setattr(builtin, "LPS_LGBM_MAX_D", 3)  # codes of 4 dims are "wide"
    z, f = grid_codes(400)
    opts = {"probes": ["lgbm", "linear"]}
    r = run_metrics(ScoreInput(latents=z, factors=f, seed=0, options=opts), ["basic"])
    assert r["lps"]["lgbm"] is None and isinstance(r["lps"]["linear"], float)
    assert r["skipped"]["lps.lgbm"].startswith("d = 4 > 3") and "-m all,lps" in r["skipped"]["lps.lgbm"]
    assert "lgbm" not in r["lps"]["per_dim"]
    json.dumps(r, allow_nan=False)  # null, never NaN
    asked = run_metrics(ScoreInput(latents=z, factors=f, seed=0, options=opts), ["basic", "lps"])
    assert isinstance(asked["lps"]["lgbm"], float) and "skipped" not in asked


def test_score_cli_says_what_was_skipped_and_shows_progress_on_stderr_only(cli, tmp_path, monkeypatch):
    import functools

    from sculptcli import scoring
    from sculptcli.metrics import builtin

    monkeypatch.setattr(builtin, "LPS_LGBM_MAX_D", 3)
    monkeypatch.setattr(scoring, "ProgressLine", functools.partial(scoring.ProgressLine, after=0.0, every=0.0))
    z, f = grid_codes(300)
    save_file({"latents": z, "factors": f}, str(tmp_path / "z.safetensors"))
    args = ("score", "--latents", tmp_path / "z.safetensors", "--probes", "lgbm,linear", "-m", "basic,mig")
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    r = json.loads(out)  # stdout is the JSON object alone
    assert r["lps"]["lgbm"] is None and "lps.lgbm" in r["skipped"]
    assert "scoring 1/" in err and "lgbm" not in err.split("scoring 1/")[0]
    code, out, err = cli(*args)
    assert code == 0, err
    assert "skipped" in out and "-m all,lps" in out
    code, out, err = cli("score", "--latents", tmp_path / "z.safetensors", "--json", "-m", "all,lps", "--probes",
                         "lgbm", "--votes", "30")  # fmt: skip
    assert code == 0, err
    assert isinstance(json.loads(out)["lps"]["lgbm"], float)


def test_progress_line_reports_targets_and_eta():
    from sculptcli.scoring import ProgressLine

    buf = io.StringIO()
    p = ProgressLine(stream=buf, after=0.0, every=0.0)
    p.start("dci", 3, 9)
    p.update("factors", 1, 4)
    p.close()
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("scoring 3/9 dci") and "factors 1/4" in lines[1] and "ETA" in lines[1]
    quiet = io.StringIO()
    q = ProgressLine(stream=quiet)  # the first seconds: nothing
    q.start("mig", 1, 2)
    q.update("factors", 1, 4)
    assert quiet.getvalue() == ""


def test_compare_shows_metric_timings(cli, tmp_path):
    for seed, secs in enumerate(({"lps": 3.0, "dci": 40.0}, {"lps": 5.0, "dci": 20.0})):
        run = tmp_path / "runs" / "a" / f"seed-{seed}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump({"name": "a", "seed": seed}))
        report = {"lps": {"lgbm": 0.1}, "dci": {"d": 0.5}, "settings": {"n": 10, "seconds": secs}}
        (run / "scores.json").write_text(json.dumps(report))
    code, out, err = cli("compare", tmp_path / "runs", "--timings", "--csv", tmp_path / "t.csv")
    assert code == 0, err
    head = out.splitlines()[0]
    assert "dci s" in head and "lps s" in head and "total s" in head
    assert head.index("dci s") < head.index("lps s")  # slowest first
    row = next(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert float(row["seconds.dci.mean"]) == pytest.approx(30.0) and float(row["seconds.total.mean"]) == 34.0
    code, out, _ = cli("compare", tmp_path / "runs")
    assert "dci s" not in out  # only when asked


def test_live_evaluation_leaves_out_the_probes_the_score_leaves_out_on_wide_codes():
    from sculptcli.config import TrainSpec
    from sculptcli.training.evaluate import live_probes

    default = TrainSpec(steps=10)
    assert live_probes(default, 10, 5000) == (("linear", "lgbm", "mlp"), [])
    probes, notes = live_probes(default, 192, 5000)  # LightGBM beyond d = 128, the MLP beyond n·d² = 10,000·128²
    assert probes == ("linear",) and len(notes) == 2
    assert "lgbm probe (d = 192 > 128" in notes[0] and "train.eval_probes=[linear,lgbm,mlp]" in notes[0]
    assert live_probes(default, 192, 2000)[0] == ("linear", "mlp")
    named = TrainSpec(steps=10, eval_probes=["lgbm"])  # named probes always run
    assert live_probes(named, 192, 5000) == (("lgbm",), [])
    assert TrainSpec.model_validate(default.model_dump()).eval_probes is None  # a saved config resumes alike
