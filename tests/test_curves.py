"""Pictures of every run (issue 22, point 3): curves.png in the run directory and `sculpt compare --plot`."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from sculptcli.io import read_jsonl
from sculptcli.viz import curves

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_run_has_curves_drawn_from_its_metrics(tiny_run, tmp_path):
    assert (tiny_run / "curves.png").read_bytes().startswith(PNG)  # drawn by the trainer at its evaluation
    run = shutil.copytree(tiny_run, tmp_path / "run")
    records = read_jsonl(run / "metrics.jsonl")
    series = curves.write_curves(run)
    assert (run / "curves.png").read_bytes().startswith(PNG)
    train = [r for r in records if r.get("split") != "heldout"]
    evals = [r for r in records if r.get("split") == "heldout"]
    assert evals and train
    assert series["loss"]["loss"] == ([r["step"] for r in train], [r["loss"] for r in train])
    assert set(series["loss"]) >= {"loss", "recon", "div"} and "img_per_s" not in series["loss"]
    assert series["nmse_db"] == ([r["step"] for r in evals], [r["nmse_db"] for r in evals])
    assert series["mmd2_prior"] == ([r["step"] for r in evals], [r["mmd2_prior"] for r in evals])
    probes = {k[4:] for r in evals for k in r if k.startswith("lps_") and k != "lps_seconds" and r[k] is not None}
    assert set(series["lps"]) == probes
    for p in probes:
        assert series["lps"][p][1] == [r[f"lps_{p}"] for r in evals if r.get(f"lps_{p}") is not None]


def test_warnings_are_marked_and_nulls_left_out():
    records = [
        {"step": 2, "loss": 1.0, "recon": 0.9, "div": 0.1, "img_per_s": 5.0, "time": 0.0},
        {"step": 2, "split": "heldout", "nmse_db": -3.0, "mmd2_prior": None, "lps_linear": 0.4, "warnings": ["w"]},
    ]
    s = curves.curve_series(records)
    assert s["warnings"] == [(2, "w")] and s["mmd2_prior"] == ([], []) and s["lps"] == {"linear": ([2], [0.4])}


def test_a_plotting_failure_never_stops_training(tmp_path, monkeypatch):
    def boom(run_dir):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(curves, "write_curves", boom)
    monkeypatch.setattr(curves, "_WARNED", [])
    said = []
    assert curves.redraw_curves(tmp_path, said.append) is None
    assert curves.redraw_curves(tmp_path, said.append) is None
    assert len(said) == 1 and "no fonts" in said[0] and "training goes on" in said[0]


def _scored_run(run, name, seed, lps, nmse):
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": name, "seed": seed}))
    (run / "scores.json").write_text(json.dumps({"lps": {"lgbm": lps}, "nmse_db": nmse, "settings": {}}))


def test_compare_plot_draws_lps_against_nmse_per_preset(cli, tmp_path, monkeypatch):
    runs = {"ae": [(0.6, -10.0), (0.7, -10.4)], "mmd": [(0.15, -9.5), (0.17, -9.6), (0.13, -9.4)]}
    for name, pts in runs.items():
        for seed, (lps, nmse) in enumerate(pts):
            _scored_run(tmp_path / "runs" / name / f"s{seed}", name, seed, lps, nmse)
    from sculptcli.viz import compare_plot

    seen = {}
    real = compare_plot.write_compare_plot
    monkeypatch.setattr(compare_plot, "write_compare_plot", lambda rows, out: seen.setdefault("s", real(rows, out)))
    code, out, err = cli("compare", tmp_path / "runs", "--plot", tmp_path / "trade.png")
    assert code == 0, err
    assert (tmp_path / "trade.png").read_bytes().startswith(PNG)
    s = seen["s"]
    for name, pts in runs.items():
        assert sorted(s[name]["points"]) == sorted((n, lp) for lp, n in pts)
        assert s[name]["y_mean"] == pytest.approx(sum(lp for lp, _ in pts) / len(pts))
        assert s[name]["x_mean"] == pytest.approx(sum(n for _, n in pts) / len(pts))
    assert s["ae"]["y_std"] == pytest.approx(0.0707107, rel=1e-5)


def test_compare_plot_needs_lgbm_scores(cli, tmp_path):
    (tmp_path / "runs").mkdir()
    run = tmp_path / "runs" / "x"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "x", "seed": 0}))
    (run / "scores.json").write_text(json.dumps({"nmse_db": -3.0, "settings": {}}))
    code, out, err = cli("compare", tmp_path / "runs", "--plot", tmp_path / "p.png")
    assert code == 2 and "lps.lgbm" in err and "--probes lgbm" in err
