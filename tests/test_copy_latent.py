"""`sculpt copy-latent`: a tiny teacher's training codes become the student's empirical prior; the trained student's
aggregate posterior is measurably closer to the teacher's than an untrained one's; bad input exits 2 writing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from sculptcli import build, copying
from sculptcli.checkpoint import load_checkpoint
from sculptcli.cli.app import app
from sculptcli.config import validate_config
from sculptcli.errors import UserError
from sculptcli.priors import prior_union
from sculptcli.stats.mmd import mmd2
from tests.conftest import TINY, assert_user_error

TEACHER_STEPS, STUDENT_STEPS, N_CODES, PERMUTATIONS = 24, 30, 600, 100
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPORT_KEYS = {
    "teacher",
    "student",
    "mmd2",
    "cov_rel_frobenius",
    "ks",
    "nmse_db",
    "nmse",
    "cov_ratio",
    "untrained",
    "traversals",
    "notes",
    "settings",
}


def invoke(*args) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """One tiny teacher and one copy of it, shared by the tests of this module (paths are absolute)."""
    root = tmp_path_factory.mktemp("copy")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
        code, _, err = invoke("train", "--config", "tiny.yaml", "--out", "teacher", "--no-score", "-q",
                              "--max-steps", TEACHER_STEPS)  # fmt: skip
        assert code == 0, err
        code, out, err = invoke(
            "copy-latent", "teacher", "--out", "copy", "--n-codes", N_CODES, "--permutations", PERMUTATIONS,
            "--max-steps", STUDENT_STEPS, "--device", "cpu",
        )  # fmt: skip
        assert code == 0, err
    return {"root": root, "teacher": root / "teacher", "copy": root / "copy", "stdout": out}


@pytest.mark.slow
def test_copy_writes_codes_student_report_and_traversals(copied):
    out = copied["copy"]
    assert sorted(p.name for p in out.iterdir()) == sorted(copying.OUTPUTS)
    assert not list(out.rglob("*.tmp"))
    # the codes: posterior means of the first N_CODES images of the teacher's training stream
    with safe_open(str(out / copying.LATENTS_FILE), "pt") as f:
        z = f.get_tensor("latents")
        assert f.metadata()["n"] == str(N_CODES)
    assert z.shape == (N_CODES, TINY["model"]["latent_dim"]) and z.dtype == torch.float32
    teacher = load_checkpoint(copied["teacher"] / "last.safetensors")
    again = copying.training_codes(teacher.build_model(), teacher.config.data.build(teacher.config.seed), N_CODES)
    assert torch.allclose(z, again, atol=1e-6)
    # the student: a normal run directory, trained against an empirical prior on those codes
    student = out / copying.STUDENT_DIR
    for name in ("config.yaml", "metrics.jsonl", "last.safetensors"):
        assert (student / name).is_file()
    cfg = yaml.safe_load((student / "config.yaml").read_text())
    assert cfg["prior"]["type"] == "empirical"
    assert Path(cfg["prior"]["source"]) == (out / copying.LATENTS_FILE).resolve()
    assert cfg["seed"] == teacher.config.seed + 1  # a fresh initialisation, not the teacher's
    assert cfg["model"] == teacher.config.model.model_dump(mode="json")
    assert cfg["objective"] == teacher.config.objective.model_dump(mode="json")
    assert load_checkpoint(student / "last.safetensors").step == STUDENT_STEPS
    # the report
    report = json.loads((out / copying.REPORT_FILE).read_text())
    assert set(report) >= REPORT_KEYS
    # known answers: the numbers again from the two models' codes of the same held-out images, by other means
    from scipy.stats import ks_2samp

    d = TINY["model"]["latent_dim"]
    images, _ = teacher.config.data.build(teacher.config.seed).heldout(TINY["data"]["heldout"])
    t_codes = teacher.build_model().embed(images).double()
    s_codes = load_checkpoint(student / "last.safetensors").build_model().embed(images).double()
    assert report["mmd2"]["statistic"] == pytest.approx(float(mmd2(s_codes.float(), t_codes.float())), rel=1e-3)
    ct, cs = np.cov(t_codes.numpy().T), np.cov(s_codes.numpy().T)
    want = np.linalg.norm(cs - ct) / np.linalg.norm(ct)
    assert report["cov_rel_frobenius"] == pytest.approx(want, rel=1e-6)
    ks = [ks_2samp(s_codes[:, i].numpy(), t_codes[:, i].numpy()).statistic for i in range(d)]
    assert report["ks"]["per_dim"] == pytest.approx(ks, abs=1e-9) and report["ks"]["max"] == pytest.approx(max(ks))
    # the untrained student is further from the teacher than the trained one
    assert report["untrained"]["mmd2"]["statistic"] > report["mmd2"]["statistic"]
    assert set(report["nmse_db"]) == {"teacher", "student"}
    s = report["settings"]
    assert s["n_codes"] == N_CODES and s["permutations"] == PERMUTATIONS and s["n_eval"] == TINY["data"]["heldout"]
    assert {"sculpt", "torch", "scipy"} <= set(s["versions"])
    assert report["student"]["step"] == STUDENT_STEPS and report["teacher"]["step"] == TEACHER_STEPS
    # the traversal picture and the printed table
    assert (out / copying.TRAVERSALS_FILE).read_bytes()[:8] == PNG_MAGIC
    assert "MMD² to teacher" in copied["stdout"] and "cov. error" in copied["stdout"]


def test_trained_student_is_closer_to_the_teacher_than_an_untrained_one(copied):
    """Recomputed here from the checkpoints: MMD² between the teacher's held-out codes and the student's,
    trained (after STUDENT_STEPS) vs untrained (the same architecture and seed at step 0)."""
    teacher = load_checkpoint(copied["teacher"] / "last.safetensors")
    student = load_checkpoint(copied["copy"] / copying.STUDENT_DIR / "last.safetensors")
    images, _ = teacher.config.data.build(teacher.config.seed).heldout()
    zt = teacher.build_model().embed(images)
    student_model = student.build_model()
    zs = student_model.embed(images)
    zu = copying.untrained_model(student.config, images.shape[1:], like=student_model).embed(images)
    trained, untrained = float(mmd2(zt, zs)), float(mmd2(zt, zu))
    assert trained < 0.7 * untrained, (trained, untrained)
    report = json.loads((copied["copy"] / copying.REPORT_FILE).read_text())
    assert report["mmd2"]["statistic"] == pytest.approx(trained, rel=1e-3)
    assert report["untrained"]["mmd2"]["statistic"] == pytest.approx(untrained, rel=1e-3)
    # the untrained model is what the trainer starts from: its weights differ from the trained student's
    sd = student.group("model")
    assert any(
        not torch.equal(v, sd[k]) for k, v in copying.untrained_model(student.config, (1, 64, 64)).state_dict().items()
    )


def test_empirical_checkpoint_mode_encodes_the_same_training_codes(copied):
    with safe_open(str(copied["copy"] / copying.LATENTS_FILE), "pt") as f:
        z = f.get_tensor("latents")
    from pydantic import TypeAdapter

    prior = TypeAdapter(prior_union()).validate_python(
        {"type": "empirical", "checkpoint": str(copied["teacher"]), "n": 200}
    )
    assert prior.event_dim() == z.shape[1]
    assert prior.needs_codes()
    with pytest.raises(UserError, match="not encoded before the prior was built"):
        prior.codes()  # a prior never loads a model: the engine resolves the codes first
    build.resolve_prior_codes(prior)
    assert not prior.needs_codes()
    assert torch.allclose(prior.codes(), z[:200], atol=1e-6)
    drawn = build.build_prior(prior, z.shape[1]).sample(50, torch.Generator().manual_seed(0))
    codes = prior.codes()  # the same encoding, up to float rounding across thread counts (checked above)
    assert all(any(torch.equal(row, c) for c in codes) for row in drawn)  # rows of the teacher's codes


def test_priors_import_nothing_above_them():
    """The import circle priors → copying → checkpoint → config → priors is gone: priors load no engine module."""
    import subprocess
    import sys

    code = (
        "import sys, sculptcli.priors; "
        "print(sorted(m for m in sys.modules if m.startswith('sculptcli.') and m.split('.')[1] in "
        "('checkpoint', 'config', 'copying', 'models', 'data', 'training', 'objectives', 'scoring')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# ---------------------------------------------------------------- bad input: exit 2, nothing written


def _nan_teacher(src: Path, dst: Path) -> None:
    with safe_open(str(src), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for k in tensors:
        if k.startswith("model.encoder") and k.endswith("weight"):
            tensors[k] = torch.full_like(tensors[k], float("nan"))
    save_file(tensors, str(dst), metadata=meta)


def test_bad_input_exits_2_and_writes_nothing(copied, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    teacher = copied["teacher"]
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00" * 64)
    _nan_teacher(teacher / "last.safetensors", tmp_path / "nan.safetensors")
    (tmp_path / "a-file").write_text("x")
    cases = [
        (("missing-run",), ("no such checkpoint",)),
        (("corrupt.safetensors",), ("not a readable safetensors file",)),
        (("nan.safetensors",), ("non-finite values",)),
        ((teacher, "model.latent_dim=5"), ("latent size mismatch", "teacher encodes to 3", "model.latent_dim=3")),
        ((teacher, "prior.bandwidth=0.1"), ("the student's prior is the teacher's codes",)),
        ((teacher, "objective.divergence={type: none}"), ("copying needs mmd",)),
        ((teacher, "train.lr=-1"), ("train.lr",)),
        ((teacher, "stray"), ("unknown option or argument: stray",)),
        ((teacher, "--checkpoint", "worst"), ("last or best",)),
        ((teacher, "--budget", "quick"), ("--budget applies to --preset",)),
        ((teacher, "--preset", "dsprites-mmd-hybrid"), ("latent size mismatch", "model.latent_dim is 5")),
    ]
    for args, fragments in cases:
        assert_user_error(invoke("copy-latent", *args, "--out", "out", "--n-codes", 50, "-q"), *fragments)
        assert not (tmp_path / "out").exists(), args
    assert_user_error(invoke("copy-latent", teacher, "--out", "a-file", "-q"), "is a file")
    assert not (tmp_path / "runs").exists()  # runs/latest untouched


def test_an_existing_copy_is_refused(copied):
    before = {p: p.stat().st_mtime_ns for p in copied["copy"].rglob("*")}
    assert_user_error(invoke("copy-latent", copied["teacher"], "--out", copied["copy"], "-q"), "already holds a copy")
    assert {p: p.stat().st_mtime_ns for p in copied["copy"].rglob("*")} == before


# ---------------------------------------------------------------- the student's config


def test_a_kl_teacher_gets_an_mmd_student(tmp_path):
    kl = {
        **TINY,
        "model": {**TINY["model"], "stochastic": True},
        "objective": {"recon": "bce", "reduction": "sum", "divergence": {"type": "kl", "weight": 1.0}},
    }
    raw, notes = copying.student_config(validate_config(kl, "test"), "teacher")
    assert raw["objective"]["divergence"]["type"] == "mmd" and raw["objective"]["reduction"] == "sum"
    assert any("kl" in n for n in notes)


def test_a_student_config_file_keeps_its_settings_but_not_its_prior(tmp_path):
    teacher = validate_config(TINY, "test")
    (tmp_path / "student.yaml").write_text(
        yaml.safe_dump({**TINY, "prior": {"type": "ring"}, "train": {**TINY["train"], "lr": 3e-3}})
    )  # a 2-D ring would not fit latent_dim 3: it is replaced, not validated
    raw, notes = copying.student_config(teacher, "teacher", config=tmp_path / "student.yaml", seed=9, max_steps=7)
    assert raw["train"]["lr"] == 3e-3 and raw["train"]["steps"] == 7 and raw["seed"] == 9 and notes == []
    codes = tmp_path / "codes.safetensors"
    copying.save_codes(codes, torch.randn(50, 3), {})
    cfg = copying.with_empirical_prior(raw, codes, 0.2, "test")
    assert cfg.prior.type == "empirical" and cfg.prior.bandwidth == 0.2 and cfg.prior.event_dim() == 3
    with pytest.raises(UserError, match="latent size mismatch"):
        copying.student_config(teacher, "teacher", config=tmp_path / "student.yaml", overrides=["model.latent_dim=2"])


def test_check_codes_refuses_empty_and_non_finite():
    with pytest.raises(UserError, match="no codes"):
        copying.check_codes(torch.empty(0, 3), "t")
    bad = torch.zeros(10, 3)
    bad[4, 1] = float("inf")
    with pytest.raises(UserError, match="1 of 10 training images to non-finite codes"):
        copying.check_codes(bad, "t")


def test_comparison_metrics_on_known_codes():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(400, 3, generator=g)
    same = copying.compare_codes(torch.randn(400, 3, generator=g), t, permutations=50)
    shifted = copying.compare_codes(torch.randn(400, 3, generator=g) * 2 + 1, t, permutations=50)
    assert same["mmd2"]["p_value"] > 0.05 and shifted["mmd2"]["p_value"] < 0.05
    assert same["cov_rel_frobenius"] < 0.25 and shifted["cov_rel_frobenius"] == pytest.approx(3.0, rel=0.3)
    assert same["ks"]["max"] < 0.15 < shifted["ks"]["max"]
