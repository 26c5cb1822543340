"""The real CLI end to end: train -> score -> resume, on a tiny budget."""

import json

import pytest
import torch
from safetensors import safe_open

from sculptcli.io import read_jsonl


def train_records(run):
    return [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]


def test_train_writes_a_complete_run_directory(cli, tiny_config, tmp_path):
    code, out, err = cli("train", "--config", tiny_config, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "last.safetensors", "best.safetensors", "scores.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*.tmp"))  # no temporary files left behind
    recs = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in recs if "loss" in r] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in recs if r.get("split") == "heldout"] == [6, 12]
    with safe_open(str(run / "last.safetensors"), "pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == "sculpt-checkpoint" and meta["step"] == "12" and meta["seed"] == "0"
    assert json.loads(meta["prior"])["type"] == "gaussian"
    assert json.loads(meta["config"])["train"]["steps"] == 12
    assert any(k.startswith("optim.") for k in keys) and "rng.cpu" in keys
    scores = json.loads((run / "scores.json").read_text())
    assert set(scores) >= {"lps", "nmse", "nmse_db", "mmd2_prior", "cov_ratio", "settings"}


@pytest.mark.slow
def test_score_json_has_stable_keys_and_exports_latents(cli, tiny_config, tmp_path):
    cli("train", "--config", tiny_config, "--out", tmp_path / "run", "--quiet", "--no-score")
    code, out, err = cli(
        "score",
        tmp_path / "run",
        "--json",
        "--probes",
        "linear,lgbm,mlp",
        "--n",
        "200",
        "--export-latents",
        tmp_path / "z.safetensors",
    )
    assert code == 0, err
    r = json.loads(out)
    assert set(r["lps"]) == {"lgbm", "mlp", "linear", "per_dim"}
    assert len(r["lps"]["per_dim"]["lgbm"]) == 3
    for key in ("nmse", "nmse_db", "mmd2_prior", "cov_ratio"):
        assert isinstance(r[key], float), key
    s = r["settings"]
    assert s["n"] == 200 and s["seed"] == 0 and s["step"] == 12
    assert {"sculpt", "torch", "lightgbm", "scikit-learn"} <= set(s["versions"])
    with safe_open(str(tmp_path / "z.safetensors"), "pt") as f:
        assert f.get_tensor("latents").shape == (200, 3)
        assert f.get_tensor("factors").shape == (200, 5)
    # the exported codes score the same without the checkpoint
    code, out2, _ = cli("score", "--latents", tmp_path / "z.safetensors", "--json", "--probes", "linear")
    assert code == 0
    r2 = json.loads(out2)
    assert r2["lps"]["linear"] == pytest.approx(r["lps"]["linear"], abs=1e-9)
    assert r2["nmse"] is None and r2["cov_ratio"] == pytest.approx(r["cov_ratio"])


def test_default_run_location_and_latest(cli, tiny_config, tmp_path):
    code, _, err = cli("train", "--config", tiny_config, "--quiet", "--no-score")
    assert code == 0, err
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink() and (latest / "last.safetensors").is_file()
    assert latest.resolve().parent.name == "tiny"  # runs/<config name>/<timestamp>
    code, out, _ = cli("score", "--json", "--probes", "linear")  # no path: the latest run
    assert code == 0 and json.loads(out)["settings"]["checkpoint"].startswith(str(latest.resolve()))


def test_resume_reproduces_the_uninterrupted_curve(cli, tiny_config, tmp_path):
    # a constant learning rate: a run cut short by --max-steps and extended has another cosine schedule (its length
    # changed); Ctrl-C and SIGTERM keep the length, and the reliability tests resume those under cosine
    const = "train.schedule=constant"
    assert cli("train", "--config", tiny_config, "--out", tmp_path / "full", "-q", "--no-score", const)[0] == 0
    part = ("--out", tmp_path / "part", "-q", "--no-score", "--max-steps", "6", const)
    assert cli("train", "--config", tiny_config, *part)[0] == 0
    assert cli("train", "--out", tmp_path / "part", "--resume", "--max-steps", "12", "-q", "--no-score")[0] == 0
    full, part = train_records(tmp_path / "full"), train_records(tmp_path / "part")
    assert [r["step"] for r in part] == [r["step"] for r in full]
    for a, b in zip(full, part, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
    with (
        safe_open(str(tmp_path / "full" / "last.safetensors"), "pt") as f1,
        safe_open(str(tmp_path / "part" / "last.safetensors"), "pt") as f2,
    ):
        for k in f1.keys():  # noqa: SIM118
            if k.startswith("model."):
                assert torch.allclose(f1.get_tensor(k), f2.get_tensor(k), atol=1e-6), k


def test_refuses_to_mix_runs(cli, tiny_config, tmp_path):
    assert cli("train", "--config", tiny_config, "--out", tmp_path / "run", "-q", "--no-score")[0] == 0
    code, _, err = cli("train", "--config", tiny_config, "--out", tmp_path / "run", "-q")
    assert code == 2 and "already holds a run" in err and "--resume" in err


def test_overrides_reach_the_resolved_config(cli, tiny_config, tmp_path):
    code, _, err = cli(
        "train",
        "--config",
        tiny_config,
        "--out",
        tmp_path / "run",
        "-q",
        "--no-score",
        "model.latent_dim=4",
        "--seed",
        "3",
        "--max-steps",
        "4",
    )
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["model"]["latent_dim"] == 4 and cfg["seed"] == 3 and cfg["train"]["steps"] == 4


@pytest.mark.parametrize(
    "divergence, stochastic",
    [
        ({"type": "mmd", "estimator": "unbiased", "kernel": "imq"}, False),
        ({"type": "kl", "weight": 4.0}, True),
        ({"type": "batch_kl", "weight": 1.0}, False),
        ({"type": "none"}, False),
        ({"type": "mmd", "bandwidth": 1.0}, True),
    ],
)
def test_every_divergence_trains(cli, tmp_path, divergence, stochastic):
    import yaml

    from tests.conftest import TINY

    cfg = dict(
        TINY,
        objective={"recon": "bce", "divergence": divergence},
        model={**TINY["model"], "stochastic": stochastic},
        train={**TINY["train"], "steps": 4},
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    losses = [r["loss"] for r in train_records(tmp_path / "run")]
    assert losses and all(v == v for v in losses)
