"""The training loop, top to bottom: build, (resume), step, log, evaluate, save; Ctrl-C saves."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sculptcli import faults
from sculptcli.build import build_prior
from sculptcli.checkpoint import load_checkpoint, save_checkpoint
from sculptcli.config import RunConfig
from sculptcli.data.base import Batch
from sculptcli.data.heldout import heldout_size
from sculptcli.device import resolve_device as resolve_device  # re-exported: benchmarks and older imports
from sculptcli.errors import UserError
from sculptcli.io import append_jsonl, atomic_write_text, read_jsonl, write_jsonl
from sculptcli.models.base import Encoded
from sculptcli.models.context import context_mask
from sculptcli.objectives import Objective
from sculptcli.training.cpushare import CpuShare
from sculptcli.training.distributed import Dist
from sculptcli.training.evaluate import evaluate
from sculptcli.training.health import input_scale_warning, run_warnings
from sculptcli.training.preflight import check_run
from sculptcli.training.report import Reporter
from sculptcli.viz.curves import redraw_curves

INPUT_NORM_BATCHES = 4  # training batches the input standardisation is measured on


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total: int
    interrupted: bool
    last_eval: dict | None


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX). Without them autocast emulates bf16 and a
    conv step is an order of magnitude slower than fp32 (measured 15× on an AVX2-only EPYC)."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        try:
            if getattr(torch.cpu, probe)():
                return True
        except Exception:  # private probes: absent or failing on some builds means "not known to have it"
            continue
    return False


def bf16_autocast(precision: str, device: torch.device) -> bool:
    """Whether training runs under bf16 autocast: `bf16`, or `auto` where the hardware runs it natively (CUDA, and
    CPUs with AVX512-BF16 or AMX: 1.4× the fp32 step rate on a 2-core Xeon with AMX); fp32 elsewhere, since
    emulated bf16 is far slower than fp32."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return precision == "bf16"


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


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` on the training device; on CUDA in channels_last too, in one conversion."""
    if device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


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
    with CpuShare(cfg.train.threads) as share:
        return _train(cfg, run_dir, device, reporter, resume, dist or Dist(), share)


def _train(
    cfg: RunConfig, run_dir: Path, device: torch.device, reporter: Reporter, resume: bool, dist: Dist, share: CpuShare
) -> TrainResult:
    # ---- build everything from the config
    torch.set_num_threads(share.threads())
    torch.manual_seed(cfg.seed)
    use_bf16 = bf16_autocast(cfg.train.precision, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    data = cfg.data.build(cfg.seed, device)
    for note in check_run(cfg, data, device):  # sizes against the data and the memory, before allocating
        reporter.message(f"note: {note}")
    model = place_model(cfg.model.build(data.shape), device)
    prior = build_prior(cfg.prior, cfg.model.latent_dim, device, data)
    objective = Objective(
        cfg.objective, prior, n_data=data.n_train, latent_dim=cfg.model.latent_dim, gather=dist.gather
    )
    optimizer = cfg.train.make_optimizer(model)
    bs = cfg.train.batch_size
    if bs > data.n_train:
        raise UserError(
            f"train.batch_size {bs} is larger than the {data.n_train} training images",
            fix=f"set train.batch_size={max(1, data.n_train // 4)} or smaller, or add data",
        )
    if bs % dist.world:
        raise UserError(
            f"train.batch_size {bs} is not divisible by the {dist.world} processes",
            fix="choose a batch size that is a multiple of --nproc",
        )
    shard = slice(dist.rank * bs // dist.world, (dist.rank + 1) * bs // dist.world)
    net: torch.nn.Module = model
    if dist.enabled:
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    forward = torch.compile(net) if cfg.train.compile else net
    total = cfg.train.total_steps(data.n_train)
    eval_n = heldout_size(cfg.train, "eval_n", int(data.heldout_index.numel()))
    eval_images, eval_factors = data.heldout(eval_n) if dist.main else (None, None)
    metrics_path = run_dir / "metrics.jsonl"
    aux = (objective.aux, objective.aux_optimizer) if objective.aux is not None else None

    # ---- start fresh or resume: model, optimizer, RNG, step, running window, metrics up to that step
    logged = ["loss", "recon", "div", *objective.term_names()]  # window = [count, *logged] sums since last log
    step, window = 0, torch.zeros(1 + len(logged), device=device)
    best = math.inf
    evals: list[dict] = []  # the held-out evaluations so far (for the health warnings)
    if resume:
        ckpt = load_checkpoint(run_dir / "last.safetensors")
        model.load_state_dict(ckpt.model_weights(model))
        ckpt.restore_optimizer(optimizer)
        if aux is not None:
            aux[0].load_state_dict(ckpt.group("aux"))
            ckpt.restore_optimizer(aux[1], "auxoptim")
        ckpt.restore_rng()
        step = ckpt.step
        window = ckpt.tensors.get("extra.window", window).to(device)
        best = float(ckpt.tensors.get("extra.best", torch.tensor(math.inf)))
        if dist.main:
            kept = [r for r in read_jsonl(metrics_path) if r["step"] <= step]
            write_jsonl(metrics_path, kept)
            evals = [r for r in kept if r.get("split") == "heldout"]
    else:
        loaded = init_weights(model, cfg.train.init_from) if cfg.train.init_from else set()
        if getattr(cfg.model, "input_norm", "none") == "data" and "in_shift" not in loaded:  # same on every process
            model.fit_input_norm(torch.cat([data.train_batch(s, bs).images for s in range(INPUT_NORM_BATCHES)]))
        if dist.main:  # a fresh start: what a dead run of this directory left (no checkpoint) goes
            for stale in ("best.safetensors", "scores.json"):
                (run_dir / stale).unlink(missing_ok=True)
            write_jsonl(metrics_path, [])
            atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())

    trained_with = run_record(device, use_bf16, dist.world)

    def save(path: Path, with_optimizer: bool = True) -> None:
        if dist.main:
            extra = {"window": window, "best": torch.tensor(best)}
            save_checkpoint(path, cfg, model, step, optimizer if with_optimizer else None, extra, aux, trained_with)

    def check_finite() -> None:
        bad = not all(math.isfinite(v) for v in window.tolist())
        if dist.any(bad, device):  # every process stops together
            reporter.message(f"non-finite loss by step {step}; stopped. The last good checkpoint is kept.")
            raise UserError(
                f"the loss became non-finite by step {step}",
                where=str(run_dir),
                fix="lower train.lr or the divergence weight; `--resume` restarts from the last good checkpoint",
            )

    # ---- Ctrl-C or SIGTERM (a scheduler's notice): the first finishes the current step, saves and stops; a second
    # Ctrl-C aborts at once
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}

    reporter.start(cfg, run_dir, device, total, step, use_bf16)
    if dist.main and step == 0:
        scale = input_scale_warning(data.train_batch(0, bs).images, getattr(cfg.model, "input_norm", "none") == "data")
        if scale:
            reporter.message(f"warning: {scale}")
        if use_bf16 and device.type == "cpu" and not cpu_has_bf16():
            reporter.message(
                "warning: train.precision=bf16 on a CPU without bf16 instructions: autocast emulates it, about 15× "
                "slower than fp32; set train.precision=auto (fp32 on this CPU)"
            )
    last_eval = None
    t_window, seen_window = time.perf_counter(), 0
    n_concepts = len(model.concepts) if model.concepts else 0
    frozen = [p for part in cfg.train.freeze for p in getattr(model, part).parameters()]
    frozen_until = math.ceil(cfg.train.freeze_frac * total) if frozen else 0
    model.train()
    try:
        while step < total and not stop.is_set():
            # ---- one optimisation step
            batch = data.train_batch(step, bs)
            if dist.enabled:  # this process's contiguous share of the global batch
                batch = batch[shard]
            parts = step_objective(forward, objective, batch, cfg.seed, step, device, use_bf16, n_concepts)
            optimizer.zero_grad(set_to_none=True)
            lr = cfg.train.lr_at(step, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            parts["loss"].backward()
            if step < frozen_until:  # a frozen part keeps its weights (Adam skips parameters without a gradient)
                for p in frozen:
                    p.grad = None
            if cfg.train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()
            model.after_step()
            if aux is not None:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    objective.aux_step(parts["z"], aux_generator(cfg.seed, step, device))
            step += 1
            if share.due() and (threads := share.threads()) != torch.get_num_threads():
                torch.set_num_threads(threads)  # a run started or ended beside this one (checked once a second)
            faults.at_step(step)  # test-only fault injection (SCULPT_FAULT); nothing otherwise
            window += torch.stack([torch.ones((), device=device), *(parts[k].detach().float() for k in logged)])
            seen_window += bs

            # ---- log a window mean (the only host sync on the hot path)
            if step % cfg.train.log_every == 0 or step == total:
                dist.mean_(window)  # the same window on every process: recon over the global batch
                check_finite()
                n, *sums = window.tolist()
                now = time.perf_counter()
                record = {
                    "step": step,
                    **{k: v / n for k, v in zip(logged, sums, strict=True)},
                    "img_per_s": seen_window / max(now - t_window, 1e-9),
                    "time": time.time(),
                }
                if dist.main:
                    append_jsonl(metrics_path, record)
                    reporter.update(record)
                window.zero_()
                t_window, seen_window = now, 0

            # ---- evaluate on held-out data; keep the best model by held-out objective
            if dist.main and (step % cfg.train.eval_every == 0 or step == total):
                last_eval = {
                    "step": step,
                    "split": "heldout",
                    **evaluate(
                        model,
                        objective.local(),
                        eval_images,
                        prior,
                        cfg.seed,
                        step,
                        eval_factors,
                        probes=tuple(cfg.train.eval_probes),
                    ),
                }
                evals.append(last_eval)
                last_eval["warnings"] = run_warnings(evals, cfg.model.latent_dim, objective.div.weight > 0)
                append_jsonl(metrics_path, last_eval)
                redraw_curves(run_dir, reporter.message)  # curves.png; a plotting failure only warns
                reporter.evaluation(last_eval)
                if last_eval["heldout_loss"] < best:
                    best = last_eval["heldout_loss"]
                    save(run_dir / "best.safetensors", with_optimizer=False)
                t_window, seen_window = time.perf_counter(), 0

            if step % cfg.train.save_every == 0 or step == total:
                check_finite()
                save(run_dir / "last.safetensors")
            if dist.enabled and dist.any(stop.is_set(), device):
                stop.set()
        if stop.is_set() and step < total:
            check_finite()
            save(run_dir / "last.safetensors")
            reporter.message(
                f"interrupted: saved step {step} to {run_dir / 'last.safetensors'}; "
                f"continue with `sculpt train --out {run_dir} --resume`"
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reporter.stop()
    return TrainResult(run_dir, step, total, stop.is_set() and step < total, last_eval)
