"""The CUDA code paths traced without a GPU (issue 23): with the device set to `cuda` under fake tensors
(tests/cuda_trace.py), a tensor made on the CPU in a CUDA path, or a CPU generator drawing CUDA tensors, fails here.

Traced: data generated on the device; the model placed (channels_last); one training step's forward and objective
under bf16 autocast for every registered model type × prior family × divergence the config accepts, and for every
preset whose data is generated (at its CUDA budget); the auxiliary network's loss (FactorVAE); the optimiser steps
given gradients; the held-out evaluation's losses and codes; scoring's encoding; traversal decoding and subspace
swaps; copy-latent's teacher codes; the empirical prior's code loading (file and checkpoint); the context module.

Not traceable without a device, and why:
- the backward pass: autograd's engine asks the CUDA driver for the device's context (the gradients are stood in);
- `torch.compile`: Inductor generates and runs Triton kernels;
- DDP with NCCL: a process group needs real GPUs;
- whatever reads CUDA values on the host: the logged window (`tolist`), the finiteness checks, `float(loss)` in the
  evaluation, the probes and metrics fed from codes (numpy), XFactors' InfoNCE term (it skips a factor without
  positives in the batch: traced up to that branch), and the context module's grouping of a batch by intervention
  set (`torch.unique`: traced with one set stood in)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensor, FakeTensorDeviceMismatchError

from sculptcli.build import build_prior
from sculptcli.checkpoint import load_checkpoint, save_checkpoint
from sculptcli.codes import training_codes
from sculptcli.config import load_config, preset_names, validate_config
from sculptcli.errors import UserError
from sculptcli.models import MODELS
from sculptcli.objectives import DIVERGENCES, Objective
from sculptcli.optim import make_optimizer
from sculptcli.priors import PRIORS
from sculptcli.run import Run, encode_heldout
from sculptcli.training.evaluate import heldout_losses
from sculptcli.training.trainer import aux_generator, bf16_autocast, place_model, step_objective
from sculptcli.viz import traverse as tv
from tests.cuda_trace import CUDA, fake_cuda
from tests.test_prior_cli import GOOD as PRIOR_EXAMPLES  # one valid spec of every registered prior

BATCH, EVAL_N = 16, 40


def galaxy(tmp: Path) -> dict:
    return {"type": "galaxy", "n": 200, "heldout": 20, "workers": 1, "cache_dir": str(tmp / "cache"), "pad_to": None}


# the smallest data and size of each model type (a registered model without an entry fails the test)
def custom_data(tmp: Path) -> dict:
    """dSprites, with the user's own encoder and decoder written to tmp (the test's working directory)."""
    from tests.test_custom_model import MODULE

    (tmp / "mymodels_trace.py").write_text(MODULE)
    return {"type": "dsprites", "heldout": 300}


CUSTOM = {
    "encoder": {"target": "mymodels_trace:Encoder", "args": {"width": 4}},
    "decoder": {"target": "mymodels_trace:Decoder", "args": {"width": 4}},
}
MODEL_SETUPS = {
    "conv": (lambda tmp: {"type": "dsprites", "heldout": 300}, {"layers": 3, "width": 4, "fc_hidden": 16}),
    "auxcnn": (galaxy, {"width": 4}),
    "custom": (custom_data, CUSTOM),
}


def run_config(tmp: Path, model: str, prior: dict, divergence: str) -> dict:
    data, size = MODEL_SETUPS[model]
    spec = PRIORS.get(prior["type"])(**prior)
    stochastic = DIVERGENCES.get(divergence).needs_stochastic_encoder
    return {
        "data": data(tmp),
        "model": {"type": model, "latent_dim": spec.covered_dims(3), "stochastic": stochastic, **size},
        "prior": prior,
        "objective": {"recon": "bce", "divergence": {"type": divergence}},
        "train": {"batch_size": BATCH, "steps": 2, "eval_n": EVAL_N, "precision": "bf16"},
    }


def assert_cuda(t: torch.Tensor, what: str) -> None:
    assert t.device.type == "cuda", f"{what} is on {t.device}, not cuda"


def trace_training(cfg, data=None) -> dict:
    """What `sculptcli.training.trainer._train` does on CUDA but the backward pass (its gradients stood in), and the
    held-out evaluation's device work: everything on the fake CUDA device, checked to stay there."""
    data = data if data is not None else cfg.data.build(cfg.seed, CUDA)
    model = place_model(cfg.model.build(data.shape), CUDA)
    prior = build_prior(cfg.prior, cfg.model.latent_dim, CUDA, data)
    objective = Objective(cfg.objective, prior, n_data=data.n_train, latent_dim=cfg.model.latent_dim)
    bs = cfg.train.batch_size
    if getattr(cfg.model, "input_norm", "none") == "data":
        model.fit_input_norm(torch.cat([data.train_batch(s, bs).images for s in range(2)]))
    n_concepts = len(model.concepts) if model.concepts else 0
    model.train()
    batch = data.train_batch(0, bs)
    assert_cuda(batch.images, "a training batch")
    seen = []
    hook = model.encoder.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    use_bf16 = bf16_autocast(cfg.train.precision, CUDA)
    assert use_bf16, "precision auto and bf16 are bf16 autocast on CUDA"
    parts = step_objective(model, objective, batch, cfg.seed, 0, CUDA, use_bf16, n_concepts)
    hook.remove()
    assert seen == [torch.bfloat16], f"the encoder ran in {seen}, not under bf16 autocast"
    for k, v in parts.items():
        assert_cuda(v, f"the objective's {k}")
    assert parts["loss"].ndim == 0 and parts["loss"].dtype == torch.float32
    for k, v in model.state_dict().items():  # autocast keeps fp32 weights: a CUDA checkpoint holds fp32
        assert_cuda(v, f"model.{k}")
        assert v.dtype == torch.float32 or not v.is_floating_point(), (k, v.dtype)
        assert v.ndim != 4 or v.is_contiguous(memory_format=torch.channels_last), f"model.{k} is not channels_last"
    if objective.aux is not None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            aux = objective.div.aux_loss(objective.aux, parts["z"].detach(), aux_generator(cfg.seed, 0, CUDA))
        assert_cuda(aux, "the auxiliary network's loss")
    # ---- the optimiser steps, given gradients (the backward pass needs a real device: they are stood in)
    optimizers = [(model, make_optimizer(cfg.train, model))]
    if objective.aux is not None:
        optimizers.append((objective.aux, objective.aux_optimizer))
    for net, optimizer in optimizers:
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        if cfg.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.train.grad_clip)
        optimizer.step()
        for state in optimizer.state.values():
            for k, v in state.items():
                if k != "step":  # Adam's step count stays on the host unless capturable
                    assert_cuda(v, f"the optimiser's {k}")
    model.after_step()
    # ---- the held-out evaluation (training/evaluate.py): its objective per batch and the codes
    images, factors = data.heldout(min(EVAL_N, int(data.heldout_index.numel())))
    model.eval()
    with torch.no_grad():
        for loss, _ in heldout_losses(model, objective.local(), images, cfg.seed, factors):
            assert_cuda(loss, "a held-out loss")
        z = model.embed(images)
    assert_cuda(z, "the held-out codes")
    return {"model": model, "data": data, "parts": parts, "codes": z}


def test_the_fake_device_fails_a_cpu_tensor_in_a_cuda_path():
    with fake_cuda():
        x = torch.ones(4, 3, device="cuda")
        assert_cuda(x, "x")
        with pytest.raises(FakeTensorDeviceMismatchError):
            x + torch.ones(3)  # a tensor made on the CPU
        with pytest.raises(RuntimeError, match="generator on cpu"):
            torch.randn(3, generator=torch.Generator().manual_seed(0), device="cuda")
        torch.randn(3, generator=torch.Generator(device="cuda").manual_seed(0), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert (x @ x.T).dtype == torch.bfloat16  # the CUDA autocast path, not disabled
        assert int(torch.arange(5).sum()) == 10  # CPU work still runs for real


@pytest.mark.parametrize("model_type", MODELS.names())
def test_a_training_step_traces_on_cuda_for_every_prior_and_divergence(model_type, tmp_path, monkeypatch):
    assert set(MODEL_SETUPS) >= set(MODELS.names()), "give every model type a setup in MODEL_SETUPS"
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "codes.npy", np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    traced: set[tuple[str, str]] = set()
    data = None
    with fake_cuda():
        for prior in sorted(PRIOR_EXAMPLES):
            for div in DIVERGENCES.names():
                try:
                    cfg = validate_config(run_config(tmp_path, model_type, PRIOR_EXAMPLES[prior], div), "trace")
                except UserError:  # a combination the config refuses (KL with a non-Gaussian prior, …)
                    continue
                if data is None:
                    data = cfg.data.build(cfg.seed, CUDA)
                trace_training(cfg, data)
                traced.add((prior, div))
    assert {p for p, _ in traced} == set(PRIORS.names())
    assert {d for _, d in traced} == set(DIVERGENCES.names())


# objective terms whose forward branches on CUDA values (traced up to there, see test_infonce_branches_on_values)
UNTRACEABLE_TERMS = {"infonce"}
GENERATED = [
    p for p in preset_names() if load_config(p, None, [], None).data.type not in ("cifar10", "mnist", "tinyimagenet")
]


@pytest.mark.parametrize("preset", GENERATED)
def test_every_generated_data_preset_traces_on_cuda_at_its_cuda_budget(preset, tmp_path, monkeypatch):
    """Each preset as `sculpt train --preset P --device cuda` resolves it (the full budget), on a small data set:
    the objective terms, QLAE quantisation, the conditional prior and the context module with its masks."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(preset, None, [], None, device_is_cuda=True)
    raw = cfg.model_dump(mode="json", exclude={"budgets"})
    if raw["data"]["type"] == "galaxy":
        raw["data"].update(galaxy(tmp_path), pad_to=raw["data"]["pad_to"])
    raw["train"].update(init_from=None, compile=False, batch_size=BATCH, eval_n=EVAL_N, precision="auto")
    raw["objective"]["terms"] = [t for t in raw["objective"]["terms"] if t["type"] not in UNTRACEABLE_TERMS]
    cfg = validate_config(raw, preset)
    context = cfg.model.context_module is not None
    with fake_cuda(dynamic_shapes=context), one_intervention_set(context):
        out = trace_training(cfg)
        if context:
            assert_cuda(out["data"].train_batch(0, BATCH).context, "the batch's contexts")


@contextlib.contextmanager
def one_intervention_set(on: bool = True) -> Iterator[None]:
    """The context module groups a batch's rows by intervention set with `torch.unique(ivn, dim=0)`: how many sets
    there are is a value on the device, so no trace can know it. This stands in one set (the first row's) for a
    CUDA tensor and traces everything after it (each set's weights, built on the device, and the rows it picks)."""
    if not on:
        yield
        return
    real = torch.unique

    def unique(x, *args, dim=None, return_inverse=False, **kw):
        if isinstance(x, FakeTensor) and dim == 0 and return_inverse:
            return x[:1], torch.zeros(len(x), dtype=torch.long, device=x.device)
        return real(x, *args, dim=dim, return_inverse=return_inverse, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "unique", unique)
        yield


def test_infonce_branches_on_values(tmp_path, monkeypatch):
    """XFactors' InfoNCE term skips a factor none of whose values repeats in the batch (`if not has.any()`): a
    branch on CUDA values (one host sync per factor and step), so its trace ends there."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config("dsprites-xfactors", None, ["train.batch_size=16", "model.layers=4"], "quick")
    with fake_cuda(), pytest.raises(DataDependentOutputException) as failed:
        trace_training(cfg)
    where = [e for e in failed.traceback if "sculptcli" in str(e.path)][-1]
    assert Path(where.path).name == "terms.py" and "has.any()" in str(where.statement), where


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A CPU-made checkpoint of a small stochastic conv model on dSprites (untrained weights)."""
    cfg = validate_config(run_config(tmp_path, "conv", {"type": "gaussian"}, "kl"), "trace")
    model = cfg.model.build(cfg.data.image_shape())
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, cfg, model, 0, trained_with={"device": "cuda", "precision": "bf16", "world": 1})
    return path


def test_scoring_traversal_and_copying_encode_and_decode_on_cuda(checkpoint):
    ckpt = load_checkpoint(checkpoint)
    d = ckpt.config.model.latent_dim
    prior = build_prior(ckpt.config.prior, d, "cpu")
    values = tv.sweep_values(tv.parse_range("prior"), 5, prior=prior, dim=d, seed=0)
    with fake_cuda():
        # scoring (`sculpt score`, scoring.checkpoint_input): the model and data built on the device, codes
        run = Run(ckpt, CUDA)
        model, data = run.model, run.data
        images, factors, latents = encode_heldout(run, 30)
        assert_cuda(images, "the held-out images")
        assert_cuda(latents, "the scored codes")
        assert next(model.parameters()).device.type == "cuda"
        codes = latents.cpu()
        # traversal (`sculpt traverse`): CPU codes and sweep values, decoded on the device, back on the CPU
        shown = tv.traverse_images(model, codes[:2], list(range(d)), values)
        assert shown.device.type == "cpu" and shown.shape[:3] == (d, 2, 5)
        swaps = tv.swap_images(model, codes[:2], codes[2:4], tv.iid_groups(prior.spec, d))
        assert swaps.device.type == "cpu"
        # copy-latent's teacher codes (and an empirical prior's `checkpoint:` codes): the training stream encoded
        z = training_codes(model, data, 40, batch_size=16)
        assert z.device.type == "cpu" and z.shape == (40, d)


def test_the_empirical_prior_loads_its_codes_on_cuda(tmp_path, checkpoint):
    np.save(tmp_path / "codes.npy", np.ones((10, 3), np.float32))
    from_file = PRIORS.get("empirical")(source=str(tmp_path / "codes.npy"), bandwidth=0.1)
    from_ckpt = PRIORS.get("empirical")(checkpoint=str(checkpoint), n=10)
    with fake_cuda():
        for spec in (from_file, from_ckpt):
            if spec.needs_codes():  # what copying.resolve_prior_codes hands over (encoded on the CPU)
                spec.use_codes(torch.ones(10, 3))
            sampler = spec.build(3, CUDA)
            assert_cuda(spec.codes(CUDA), "the empirical codes")
            s = sampler.sample(8, torch.Generator(device="cuda").manual_seed(0))
            assert_cuda(s, "an empirical prior draw")
