"""Latent space copying, run end to end (`sculpt copy-latent`): the teacher's codes written, a student trained
against them as an empirical prior (through the run station's launch), and the two compared on held-out data
(`copy_report.json`, `traversals.png`). The pieces live in `copying.py`; this module trains, so it sits with the
trainer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sculptcli import copying
from sculptcli.io import atomic_write_text
from sculptcli.run import checkpoint_source, open_run
from sculptcli.training.launch import launch
from sculptcli.training.report import Reporter
from sculptcli.viz.traverse import save_figure_png


@dataclass
class CopyRun:
    run_dir: Path  # the student's run directory
    report: dict[str, Any] | None  # copy_report.json's content; None when the student's training was interrupted


def copy_latent_run(
    teacher: Path | None,
    out: Path,
    *,
    which: str,
    device: str,
    trust_code: bool,
    preset: str | None,
    config: Path | None,
    overrides: list[str],
    seed: int | None,
    max_steps: int | None,
    budget: str | None,
    n_codes: int,
    n_eval: int,
    bandwidth: float,
    permutations: int,
    reporter: Reporter,
    versions: dict[str, Any],
) -> CopyRun:
    """Everything that can fail on the input fails before anything is written; then codes, student, comparison."""
    t0 = time.perf_counter()

    # ---- everything that can fail on the input, before anything is written
    teacher_run = open_run(teacher, which, device, trust_code)
    dev = teacher_run.device
    ckpt, tcfg = teacher_run.checkpoint, teacher_run.config
    raw, notes = copying.student_config(
        tcfg,
        str(ckpt.path),
        preset=preset,
        config=config,
        overrides=overrides,
        seed=seed,
        max_steps=max_steps,
        budget=budget,
        device_is_cuda=dev.type == "cuda",
    )
    available = getattr(tcfg.data, "heldout", None)
    n_eval = min(n_eval, available) if isinstance(available, int) else n_eval
    codes = copying.teacher_codes(teacher_run, n_codes)
    seconds = {"encode": round(time.perf_counter() - t0, 3)}

    # ---- write the codes, train the student against them
    out.mkdir(parents=True, exist_ok=True)
    latents = out / copying.LATENTS_FILE
    copying.save_codes(
        latents,
        codes,
        {
            "teacher": str(ckpt.path.resolve()),
            "teacher_step": str(ckpt.step),
            "n": str(len(codes)),
            "what": "posterior means of the first n images of the teacher's training stream",
        },
    )
    cfg = copying.with_empirical_prior(raw, latents, bandwidth, f"student config ({out})")
    t1 = time.perf_counter()
    launched = launch(cfg, out / copying.STUDENT_DIR, "new", dev, reporter)
    run_dir = launched.run_dir
    seconds["train"] = round(time.perf_counter() - t1, 3)
    if launched.result.interrupted:
        return CopyRun(run_dir, None)

    # ---- compare on held-out data
    t2 = time.perf_counter()
    student = open_run(run_dir, "last", dev, trust_code)
    student_ckpt = student.checkpoint
    teacher_model, student_model = teacher_run.model, student.model
    data = teacher_run.data
    images, _ = data.heldout(n_eval)
    untrained = copying.untrained_model(cfg, images.shape[1:], dev, like=student_model)
    report = copying.compare_models(
        teacher_model, student_model, untrained, images, permutations=permutations, seed=cfg.seed
    )
    codes_eval = report.pop("_codes")
    fig = copying.traversal_figure(
        teacher_model,
        student_model,
        codes_eval["teacher"],
        f"teacher vs student · {tcfg.name} (step {ckpt.step}) → {cfg.name} (step {student_ckpt.step})",
    )
    save_figure_png(fig, out / copying.TRAVERSALS_FILE)
    seconds["compare"] = round(time.perf_counter() - t2, 3)

    report = {
        "teacher": {
            **checkpoint_source(ckpt),  # its path, step and how it was trained (device, precision)
            "name": tcfg.name,
            "prior": tcfg.prior.describe(),
            "latent_dim": tcfg.model.latent_dim,
            "seed": tcfg.seed,
        },
        "student": {
            "run_dir": str(run_dir),
            "checkpoint": str(student_ckpt.path),
            "step": student_ckpt.step,
            "name": cfg.name,
            "prior": cfg.prior.describe(),
            "seed": cfg.seed,
        },
        **report,
        "traversals": copying.TRAVERSALS_FILE,
        "notes": notes,
        "settings": {
            "n_codes": len(codes),
            "codes": "posterior means of the first n_codes images of the teacher's training stream "
            f"(train_batch at steps 0, 1, … of its dataset built with seed {tcfg.seed})",
            "n_eval": len(images),
            "eval": "the first n_eval images of the teacher's held-out split, encoded by both (posterior means)",
            "permutations": permutations,
            "comparison_seed": cfg.seed,
            "kernel": "rbf×{0.5,1,2}·median (pooled, fixed over permutations), biased MMD²",
            "bandwidth": bandwidth,
            "untrained": "the student's architecture at step 0, initialised with the student's seed",
            "device": dev.type,
            "seconds": seconds,
            "versions": versions,
        },
    }
    atomic_write_text(out / copying.REPORT_FILE, json.dumps(report, indent=2))
    return CopyRun(run_dir, report)
