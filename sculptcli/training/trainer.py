"""The training loop, top to bottom: build (the build station), start or resume, then step, log, evaluate and
save until the budget is spent or a signal stops it. What is not the loop — the CPU share, faults, signals,
start-up warnings and the terminal — hangs on it as hooks (`training/hooks.py`); what a run writes goes through the
run station (`runfiles.py`). Under torchrun the window and the stop flag are reduced over processes (`Dist`, no-ops
in one process) and only rank 0 writes or reports."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sculptcli.build import Built, build_run
from sculptcli.build import place_model as place_model  # re-exported: tests and older imports
from sculptcli.config import RunConfig
from sculptcli.data.base import Batch
from sculptcli.data.heldout import heldout_size
from sculptcli.device import resolve_device as resolve_device  # re-exported: benchmarks and older imports
from sculptcli.errors import UserError
from sculptcli.models.base import Encoded
from sculptcli.models.context import context_mask
from sculptcli.objectives import Objective
from sculptcli.optim import lr_at, set_lr
from sculptcli.precision import bf16_autocast as bf16_autocast  # re-exported
from sculptcli.precision import cpu_has_bf16 as cpu_has_bf16  # re-exported
from sculptcli.runfiles import RunFiles, resume_state
from sculptcli.training.cpushare import CpuShare
from sculptcli.training.distributed import Dist
from sculptcli.training.evaluate import evaluate, live_probes
from sculptcli.training.health import run_warnings
from sculptcli.training.hooks import Curves, Health, Hook, Hooks, InjectFaults, Report, ShareCpus, StopOnSignal
from sculptcli.training.report import Reporter
from sculptcli.training.tracking import Track

INPUT_NORM_BATCHES = 4  # training batches the input standardisation is measured on


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total: int
    interrupted: bool
    last_eval: dict | None


def run_record(device: torch.device, use_bf16: bool, world: int = 1) -> dict:
    """How a run trains, as its checkpoints record it (`trained_with`) and scores repeat it: the device type, the
    effective precision (`precision: auto` resolved by hardware: bf16 on CUDA) and the number of processes."""
    return {"device": device.type, "precision": "bf16" if use_bf16 else "fp32", "world": world}


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The generator for the prior batch of `step`: a pure function of (seed, step), so resume is exact."""
    return torch.Generator(device=device).manual_seed((seed * 0x9E3779B1 + step * 0x85EBCA77 + 1) % 2**63)


def aux_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The generator of an auxiliary network's step (FactorVAE's column permutations), apart from the prior's."""
    return step_generator(seed + 0x51ED27, step, device)


def step_objective(
    forward: Callable[..., tuple[Encoded, torch.Tensor]],
    objective: Objective,
    batch: Batch,
    seed: int,
    step: int,
    device: torch.device,
    use_bf16: bool,
    n_concepts: int = 0,
) -> dict[str, torch.Tensor]:
    """One training step's forward pass and objective (the parts `Objective` returns, `loss` to backpropagate):
    the batch in channels_last on CUDA, the context module's intervention masks, bf16 autocast when `use_bf16`,
    the prior batch drawn with `step_generator(seed, step, device)`."""
    if device.type == "cuda":
        batch = batch.with_images(batch.images.contiguous(memory_format=torch.channels_last))
    ivn = context_mask(batch.context, n_concepts) if n_concepts and batch.context is not None else None
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        enc, logits = forward(batch.images, ivn)
        return objective(batch, enc, logits, step_generator(seed, step, device), step)


def init_weights(model: torch.nn.Module, target: str) -> set[str]:
    """Load the encoder, decoder and input standardisation of another run into `model`, where names and shapes
    match; the names loaded. A checkpoint whose encoder or decoder does not fit is a UserError."""
    from sculptcli.checkpoint import load_checkpoint
    from sculptcli.ckptfile import find_checkpoint

    try:
        path = find_checkpoint(Path(target).expanduser())
    except UserError as e:
        raise UserError(
            f"train.init_from: {e.what}",
            fix="train the model to start from first (for quad-cm-frozen/-finetune: `sculpt train --preset "
            "quad-base-pooled --out runs/quad-base-pooled`), or set train.init_from=PATH",
        ) from None
    weights = load_checkpoint(path).group("model")
    own = model.state_dict()
    parts = ("encoder.", "decoder.", "in_shift", "in_scale")
    take = {k: v for k, v in weights.items() if k.startswith(parts) and k in own}
    wrong = [k for k, v in take.items() if v.shape != own[k].shape]
    missing = [k for k in own if k.startswith(("encoder.", "decoder.")) and k not in take]
    if wrong or missing or not take:
        raise UserError(
            f"train.init_from: its encoder/decoder do not fit this model ({len(wrong)} tensors of another shape, "
            f"{len(missing)} missing)",
            where=str(path),
            fix="start from a run with the same model.type, layers, width and latent_dim",
        )
    model.load_state_dict(take, strict=False)
    return set(take)


@dataclass
class Loop:
    """A training run in progress: what it was built from, where it stands, and what hooks may look at."""

    cfg: RunConfig
    run_dir: Path
    device: torch.device
    dist: Dist
    built: Built
    files: RunFiles
    hooks: Hook
    step: int = 0
    best: float = math.inf  # the lowest held-out objective so far (best.safetensors)
    window: torch.Tensor | None = None  # [count, *logged] summed since the last log record
    logged: list[str] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # the held-out evaluations so far (for the health warnings)
    last_eval: dict | None = None
    eval_probes: tuple[str, ...] = ()  # the LPS probes of the held-out evaluations (`live_probes`)
    stop: threading.Event = field(default_factory=threading.Event)

    def message(self, text: str) -> None:
        if self.dist.main:
            self.hooks.on_message(self, text)

    def save(self, name: str, with_optimizer: bool = True) -> None:
        b = self.built
        aux = (b.objective.aux, b.objective.aux_optimizer) if b.objective.aux is not None else None
        trained_with = run_record(self.device, b.use_bf16, self.dist.world)
        optimizer = b.optimizer if with_optimizer else None
        self.files.save(name, self.cfg, b.model, self.step, optimizer, self.window, self.best, aux, trained_with)

    def check_finite(self) -> None:
        bad = not all(math.isfinite(v) for v in self.window.tolist())
        if self.dist.any(bad, self.device):  # every process stops together
            self.message(f"non-finite loss by step {self.step}; stopped. The last good checkpoint is kept.")
            raise UserError(
                f"the loss became non-finite by step {self.step}",
                where=str(self.run_dir),
                fix="lower train.lr or the divergence weight; `--resume` restarts from the last good checkpoint",
            )


def train(
    cfg: RunConfig,
    run_dir: Path,
    device: torch.device,
    reporter: Reporter,
    resume: bool = False,
    dist: Dist | None = None,
) -> TrainResult:
    """Train `cfg` into `run_dir`. Under torchrun (`dist` with world > 1) every process trains its share of each
    global batch with DDP, the divergence sees the all-gathered batch, and only rank 0 writes or reports."""
    dist = dist or Dist()
    with CpuShare(cfg.train.threads) as share:
        torch.set_num_threads(share.threads())
        hooks: list[Hook] = [ShareCpus(share), InjectFaults(), StopOnSignal()]
        if dist.main:
            hooks += [Report(reporter), Health(), Curves()]
            if cfg.train.loggers:
                hooks.append(Track(cfg.train.loggers))
        built = build_run(cfg, device, dist)
        loop = Loop(cfg, run_dir, device, dist, built, RunFiles(run_dir, writes=dist.main), Hooks(hooks))
        start_or_resume(loop, resume)
        return run_loop(loop)


def start_or_resume(loop: Loop, resume: bool) -> None:
    """A fresh start (weights from `train.init_from` if given, input standardisation measured, config written) or
    the state of the last checkpoint: model, optimizer, RNG, step, log window, best objective, metrics so far."""
    cfg, b = loop.cfg, loop.built
    loop.logged = ["loss", "recon", "div", *b.objective.term_names()]
    loop.window = torch.zeros(1 + len(loop.logged), device=loop.device)
    if resume:
        ckpt = loop.files.last()
        b.model.load_state_dict(ckpt.model_weights(b.model))
        ckpt.restore_optimizer(b.optimizer)
        if b.objective.aux is not None:
            b.objective.aux.load_state_dict(ckpt.group("aux"))
            ckpt.restore_optimizer(b.objective.aux_optimizer, "auxoptim")
        ckpt.restore_rng()
        loop.step = ckpt.step
        loop.window, loop.best = resume_state(ckpt, loop.window)
        loop.evals = loop.files.resume_records(loop.step)
        return
    loaded = init_weights(b.model, cfg.train.init_from) if cfg.train.init_from else set()
    if getattr(cfg.model, "input_norm", "none") == "data" and "in_shift" not in loaded:  # same on every process
        images = [b.data.train_batch(s, b.batch_size).images for s in range(INPUT_NORM_BATCHES)]
        b.model.fit_input_norm(torch.cat(images))
    loop.files.start_fresh(cfg)


def run_loop(loop: Loop) -> TrainResult:
    """Step, log, evaluate and save until the budget is spent or a signal asks to stop (then save and say how to
    resume)."""
    cfg, b, dist = loop.cfg, loop.built, loop.dist
    eval_images, eval_factors = (None, None)
    notes = list(b.notes)
    if dist.main:
        eval_n = heldout_size(cfg.train, "eval_n", int(b.data.heldout_index.numel()))
        eval_images, eval_factors = b.data.heldout(eval_n)
        loop.eval_probes, left_out = live_probes(cfg.train, cfg.model.latent_dim, eval_n)
        notes += left_out
    train_step = Stepper(loop)
    try:
        loop.hooks.on_start(loop)  # inside: a hook that fails to start still closes the others (the terminal)
        for note in notes:
            loop.message(f"note: {note}")
        clock = Throughput()
        while loop.step < b.total and not loop.stop.is_set():
            parts = train_step()
            loop.step += 1
            loop.hooks.after_step(loop)
            one = torch.ones((), device=loop.device)
            loop.window += torch.stack([one, *(parts[k].detach().float() for k in loop.logged)])
            clock.count(b.batch_size)
            if loop.step % cfg.train.log_every == 0 or loop.step == b.total:
                log_window(loop, clock)
            if dist.main and (loop.step % cfg.train.eval_every == 0 or loop.step == b.total):
                evaluate_heldout(loop, eval_images, eval_factors)
                clock.restart()
            if loop.step % cfg.train.save_every == 0 or loop.step == b.total:
                loop.check_finite()
                loop.save("last")
            if dist.enabled and dist.any(loop.stop.is_set(), loop.device):
                loop.stop.set()
        interrupted = loop.stop.is_set() and loop.step < b.total
        if interrupted:
            loop.check_finite()
            loop.save("last")
            loop.message(
                f"interrupted: saved step {loop.step} to {loop.run_dir / 'last.safetensors'}; "
                f"continue with `sculpt train --out {loop.run_dir} --resume`"
            )
    finally:
        loop.hooks.on_end(loop)
    return TrainResult(loop.run_dir, loop.step, b.total, interrupted, loop.last_eval)


class Stepper:
    """One optimisation step of a loop: the batch (this process's share), forward and objective, the learning rate
    of the step, backward, frozen parts, clipping, the optimizer and the auxiliary network's step."""

    def __init__(self, loop: Loop):
        self.loop = loop
        model, cfg = loop.built.model, loop.cfg
        self.n_concepts = len(model.concepts) if model.concepts else 0
        self.frozen = [p for part in cfg.train.freeze for p in getattr(model, part).parameters()]
        self.frozen_until = math.ceil(cfg.train.freeze_frac * loop.built.total) if self.frozen else 0
        model.train()

    def __call__(self) -> dict[str, torch.Tensor]:
        loop, b, cfg = self.loop, self.loop.built, self.loop.cfg
        step, device = loop.step, loop.device
        batch = b.data.train_batch(step, b.batch_size)
        if loop.dist.enabled:  # this process's contiguous share of the global batch
            batch = batch[b.shard]
        parts = step_objective(b.forward, b.objective, batch, cfg.seed, step, device, b.use_bf16, self.n_concepts)
        b.optimizer.zero_grad(set_to_none=True)
        set_lr(b.optimizer, lr_at(cfg.train, step, b.total))
        parts["loss"].backward()
        if step < self.frozen_until:  # a frozen part keeps its weights (Adam skips parameters without a gradient)
            for p in self.frozen:
                p.grad = None
        if cfg.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(b.model.parameters(), cfg.train.grad_clip)
        b.optimizer.step()
        b.model.after_step()
        if b.objective.aux is not None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=b.use_bf16):
                b.objective.aux_step(parts["z"], aux_generator(cfg.seed, step, device))
        return parts


class Throughput:
    """Images per second since the last log record (evaluations excluded)."""

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        self.t0, self.seen = time.perf_counter(), 0

    def count(self, images: int) -> None:
        self.seen += images

    def rate(self) -> float:
        return self.seen / max(time.perf_counter() - self.t0, 1e-9)


def log_window(loop: Loop, clock: Throughput) -> None:
    """A log record: the window's means (the only host sync on the hot path), the same on every process."""
    loop.dist.mean_(loop.window)  # recon over the global batch
    loop.check_finite()
    n, *sums = loop.window.tolist()
    record = {
        "step": loop.step,
        **{k: v / n for k, v in zip(loop.logged, sums, strict=True)},
        "img_per_s": clock.rate(),
        "time": time.time(),
    }
    if loop.dist.main:
        loop.files.log(record)
        loop.hooks.on_log(loop, record)
    loop.window.zero_()
    clock.restart()


def evaluate_heldout(loop: Loop, images, factors) -> None:
    """The held-out evaluation (objective, NMSE, MMD², prior test, live LPS, warnings): logged, reported, and the
    best model by held-out objective kept."""
    b, cfg = loop.built, loop.cfg
    record = {
        "step": loop.step,
        "split": "heldout",
        **evaluate(b.model, b.objective.local(), images, b.prior, cfg.seed, loop.step, factors,
                   probes=loop.eval_probes),
    }  # fmt: skip
    loop.evals.append(record)
    record["warnings"] = run_warnings(loop.evals, cfg.model.latent_dim, b.objective.div.weight > 0)
    loop.last_eval = record
    loop.files.log(record)
    loop.hooks.on_eval(loop, record)
    if record["heldout_loss"] < loop.best:
        loop.best = record["heldout_loss"]
        loop.save("best", with_optimizer=False)
