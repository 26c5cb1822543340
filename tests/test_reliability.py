"""Reliability by fault injection (SCULPT_FAULT, see sculptcli/faults.py): kills at seeded points, signals, two
writers, a full disk. Every surviving file parses, and --resume ends bit-identical to an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import TINY

pytestmark = pytest.mark.slow  # long end-to-end runs (still run by default; `-m 'not slow'` skips them)

STEPS = 12
CFG = {**TINY, "train": {**TINY["train"], "steps": STEPS, "log_every": 1, "save_every": 2, "eval_every": 6}}


def sculpt(args: list, cwd: Path, fault: str | None = None, wait: bool = True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("SCULPT_FAULT", None)
    if fault:
        env["SCULPT_FAULT"] = fault
    cmd = [sys.executable, "-m", "sculptcli", *map(str, args)]
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return p
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    (root / "tiny.yaml").write_text(yaml.safe_dump(CFG))
    code, _, err = sculpt(["train", "--config", "tiny.yaml", "--out", "ref", "-q", "--no-score"], root)
    assert code == 0, err
    return root


def weights(run: Path) -> dict:
    return {k: v for k, v in load_file(str(run / "last.safetensors")).items() if k.startswith("model.")}


def assert_parses(run: Path) -> None:
    """Every file a reader could open parses; only half-written temporaries (.*.tmp, never renamed) may not."""
    from sculptcli.checkpoint import load_checkpoint

    for f in run.iterdir():
        if f.name.endswith(".tmp"):
            continue
        if f.suffix == ".safetensors":
            load_checkpoint(f)
        elif f.suffix == ".yaml":
            assert isinstance(yaml.safe_load(f.read_text()), dict), f
        elif f.suffix == ".jsonl" or f.name == ".lock":
            for line in f.read_text().splitlines():
                json.loads(line)
        elif f.suffix == ".json":
            json.loads(f.read_text())


def assert_complete_and_identical(run: Path, ref: Path) -> None:
    assert not list(run.glob(".*.tmp"))
    assert_parses(run)
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in recs if "loss" in r]
    assert logged == list(range(1, STEPS + 1)), logged  # every step exactly once
    assert [r["step"] for r in recs if r.get("split") == "heldout"] == [6, 12]
    a, b = weights(run), weights(ref)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "weights differ from the reference"
    ref_recs = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()]
    ref_loss = [r["loss"] for r in ref_recs if "loss" in r]
    assert [r["loss"] for r in recs if "loss" in r] == ref_loss


# 5 kills right after a step, 5 inside an atomic write (2 at start: config, metrics; then the checkpoints)
POINTS = sorted(random.Random(13).sample([f"kill-at-step:{k}" for k in range(1, STEPS)], 5)) + sorted(
    random.Random(14).sample([f"write-kill:{n}" for n in range(1, 10)], 5)
)


def run_all(jobs: list[tuple[list, str | None]], cwd: Path, at_once: int = 3) -> list[tuple[int, str, str]]:
    """Run several sculpt commands, `at_once` at a time (one thread each): the kill points are independent runs."""
    results: list = []
    for i in range(0, len(jobs), at_once):
        procs = [sculpt(args, cwd, fault, wait=False) for args, fault in jobs[i : i + at_once]]
        for p in procs:
            out, err = p.communicate(timeout=300)
            results.append((p.returncode, out, err))
    return results


def test_sigkill_at_ten_points_then_resume_is_bit_identical(work):
    """SIGKILL at 10 seeded points — 5 right after an optimizer step, 5 inside an atomic write (the config, the
    metrics reset, the checkpoints) — then the same command line with --resume auto: it continues from the last
    checkpoint (or restarts a run that never saved one) and ends with the reference's weights and loss curve."""
    runs = {fault: ["train", "--config", "tiny.yaml", "--out", f"kill-{fault.replace(':', '-')}", "-q", "--no-score"]
            for fault in POINTS}  # fmt: skip
    killed = run_all([(cmd, fault) for fault, cmd in runs.items()], work)
    for fault, (code, _, err) in zip(runs, killed, strict=True):
        assert code == -signal.SIGKILL, (fault, code, err)
        assert_parses(work / runs[fault][4])
    resumed = run_all([([*cmd, "--resume", "auto"], None) for cmd in runs.values()], work)
    for fault, (code, _, err) in zip(runs, resumed, strict=True):
        assert code == 0, (fault, err)
        assert_complete_and_identical(work / runs[fault][4], work / "ref")


@pytest.mark.parametrize("sig", ["int", "term"])
def test_sigint_and_sigterm_save_and_resume(work, sig):
    run = f"sig-{sig}"
    code, out, err = sculpt(["train", "--config", "tiny.yaml", "--out", run, "--no-score"], work, f"{sig}-at-step:5")
    assert code == 130, err
    assert "interrupted: saved step 5" in out
    from sculptcli.checkpoint import load_checkpoint

    assert load_checkpoint(work / run / "last.safetensors").step == 5
    code, _, err = sculpt(["train", "--out", run, "--resume", "-q", "--no-score"], work)
    assert code == 0, err
    assert_complete_and_identical(work / run, work / "ref")


def test_a_second_writer_exits_2_naming_the_first(work):
    cmd = ["train", "--config", "tiny.yaml", "--out", "race", "-q", "--no-score"]
    first = sculpt(cmd, work, "term-at-step:1000", wait=False)  # never fires: just the same environment
    second = sculpt(cmd, work, wait=False)
    results = [(p, *p.communicate(timeout=300)) for p in (first, second)]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, e) for p, _, e in results]
    loser = next((p, e) for p, _, e in results if p.returncode == 2)
    winner = next(p for p, _, _ in results if p.returncode == 0)
    assert f"process {winner.pid}" in loser[1] or "already holds a run" in loser[1], loser[1]
    assert "Traceback" not in loser[1]
    assert_complete_and_identical(work / "race", work / "ref")


def test_config_only_directory_restarts_with_or_without_resume(work):
    for i, extra in enumerate(([], ["--resume"])):
        run = f"cfgonly-{i}"
        cmd = ["train", "--config", "tiny.yaml", "--out", run, "-q", "--no-score"]
        code, _, _ = sculpt(cmd, work, "kill-at-step:1")
        assert code == -signal.SIGKILL
        assert (work / run / "config.yaml").is_file() and not (work / run / "last.safetensors").exists()
        args = ["train", "--out", run, "--no-score", *extra] + ([] if extra else ["--config", "tiny.yaml"])
        code, out, err = sculpt(args, work)
        assert code == 0, err
        assert "never saved a checkpoint: starting it again" in out
        assert_complete_and_identical(work / run, work / "ref")


@pytest.mark.parametrize("fault", ["write-error:4:ENOSPC", "write-error:6:EIO", "append-error:7:ENOSPC"])
def test_a_failed_write_exits_2_and_keeps_the_previous_files(work, fault):
    run = f"fail-{fault.split(':')[0]}-{fault.split(':')[1]}"
    code, out, err = sculpt(["train", "--config", "tiny.yaml", "--out", run, "-q", "--no-score"], work, fault)
    assert code == 2, (out, err)
    assert err.startswith("error:") and "could not write" in err and run in err
    assert "Traceback" not in err
    assert_parses(work / run)
    code, _, err = sculpt(["train", "--out", run, "--resume", "-q", "--no-score"], work)
    assert code == 0, err
    assert_complete_and_identical(work / run, work / "ref")


def test_a_stale_lock_is_taken_over_saying_so(work):
    run = work / "stale"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": "elsewhere", "since": "then"}))
    code, out, err = sculpt(["train", "--config", "tiny.yaml", "--out", "stale", "--no-score"], work)
    assert code == 0, err
    assert f"took over the lock of process {int(dead.stdout)} on elsewhere" in out
    assert (run / ".lock").read_text() == ""  # released at the end


def test_a_reader_scores_a_run_that_is_still_training(work):
    """score reads the last complete checkpoint of a live run (writes are atomic renames)."""
    cfg = {**CFG, "train": {**CFG["train"], "steps": 400, "save_every": 1}}
    (work / "long.yaml").write_text(yaml.safe_dump(cfg))
    p = sculpt(["train", "--config", "long.yaml", "--out", "live", "-q", "--no-score"], work, wait=False)
    try:
        for _ in range(600):
            if (work / "live" / "last.safetensors").exists() or p.poll() is not None:
                break
            time.sleep(0.1)
        assert p.poll() is None, "the run ended before the reader could read it"
        for _ in range(3):
            code, out, err = sculpt(["score", "live", "--json", "-m", "lps", "--probes", "linear", "--n", "50"], work)
            assert code == 0, err
            assert json.loads(out)["settings"]["step"] >= 1
    finally:
        p.terminate()
        p.communicate(timeout=120)


def test_a_lock_seen_before_its_holder_wrote_its_record_still_names_the_holder(tmp_path):
    """The race CI hit: the second writer fails `flock` in the instant between the first's lock and its record."""
    import fcntl
    import threading

    from sculptcli.errors import UserError
    from sculptcli.rundir import LOCK, RunLock

    fd = os.open(tmp_path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, record not yet written

    def write_record_late():
        time.sleep(0.2)
        os.pwrite(fd, json.dumps({"pid": 424242, "host": "elsewhere", "since": "then"}).encode(), 0)

    writer = threading.Thread(target=write_record_late)
    writer.start()
    try:
        with pytest.raises(UserError, match="process 424242 on elsewhere"):
            RunLock(tmp_path).acquire()
    finally:
        writer.join()
        os.close(fd)
