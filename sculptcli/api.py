"""The public Python API: sculpt's declared priors, the paper's MMD loss, LPS and scoring in anyone's training loop,
and training and opening runs from Python. Reached through `import sculptcli as sculpt` (lazily: importing the
package imports no torch).

Every bad input raises `sculptcli.UserError` (what, where, fix), the exception the CLI turns into exit code 2."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor, nn

from sculptcli.errors import UserError
from sculptcli.metrics.lps import LPSResult
from sculptcli.run import Run, open_run

__all__ = ["LPSScore", "MMDLoss", "Prior", "Run", "lps", "open_run", "prior", "score", "train"]


class Prior:
    """A declared prior bound to a latent size: `sample(n)` draws (n, dim) float32 codes."""

    def __init__(self, spec, dim: int, device: str | torch.device = "cpu"):
        from sculptcli.build import build_prior

        self.spec, self.dim = spec, int(dim)
        self.sampler = build_prior(spec, self.dim, device)

    def sample(self, n: int, seed: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, dim) float32; `seed` (or a `generator`) makes them reproducible."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"sample takes a positive number of draws, got {n!r}", where="Prior.sample")
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.sampler.device).manual_seed(seed)
        return self.sampler.sample(n, generator)

    def describe(self) -> str:
        """One line saying what the prior is, e.g. `gaussian(mean=0.0, std=1.0)`."""
        return self.spec.describe()

    def __repr__(self) -> str:
        return f"Prior({self.describe()}, dim={self.dim})"


def prior(spec: str | Path | Mapping[str, Any], dim: int | None = None) -> Prior:
    """A prior from a packaged prior name (`sculpt prior list`), a run preset's name (its prior), a YAML file, or a
    mapping such as `{"type": "gaussian"}`. `dim` is the latent size; a prior with its own size (a product of
    blocks, a packaged prior) gives it, a 1-D prior (d i.i.d. copies) needs it."""
    from sculptcli.config import load_prior_or_preset as load_prior
    from sculptcli.priors.files import adapter

    if isinstance(spec, Prior):
        return spec if dim is None or dim == spec.dim else Prior(spec.spec, dim)
    if isinstance(spec, Mapping):
        from sculptcli.validation import format_validation

        try:
            parsed = adapter().validate_python(copy.deepcopy(dict(spec)))
        except ValidationError as e:
            raise UserError(
                f"invalid prior\n  {format_validation(e, 'prior')}",
                where="sculpt.prior(mapping)",
                fix="see `sculpt prior list` for the prior types and their parameters",
            ) from None
    elif isinstance(spec, str | Path):
        parsed = load_prior(str(spec))
    else:
        raise UserError(f"prior takes a name, a path or a mapping, not {type(spec).__name__}", where="sculpt.prior")
    if dim is None:
        dim = parsed.dims or parsed.event_dim()
        if dim is None:
            raise UserError(
                f"the prior {parsed.describe()} is 1-D (one copy per latent dimension): its size is yours to say",
                where="sculpt.prior",
                fix="give dim=, e.g. sculpt.prior('gaussian-like', dim=10)",
            )
    try:
        parsed.check_dim(int(dim))
    except ValueError as e:
        raise UserError(str(e), where="sculpt.prior", fix="give the prior's own dim, or leave dim out") from None
    return Prior(parsed, int(dim))


class MMDLoss(nn.Module):
    """MMD² between a batch of codes and draws of a declared prior, differentiable in the codes: the training
    objective's divergence, so `loss = recon + 0.3 * mmd(z)` trains as `sculpt train` does.

    Defaults are the paper's estimator: its kernel (a sum of Gaussian RBFs at 0.5, 1 and 2 × the pooled median
    distance), the biased estimator and as many prior draws as codes. `sculpt train`'s default adds finer scales and
    1,024 draws (`MMDLoss(prior, scales=[0.1, 0.2, 0.5, 1, 2], prior_n=1024)`, README "Where sculpt departs from the
    paper"). Any key of that divergence may be given: `kernel` (rbf, imq), `scales`, `bandwidth` ("median" or a
    number), `estimator` (biased, unbiased), `prior_n`."""

    def __init__(self, prior: Prior | str | Path | Mapping[str, Any], dim: int | None = None, **options: Any):
        super().__init__()
        from sculptcli.objectives import DIVERGENCES

        self.prior = globals()["prior"](prior, dim)
        if self.prior.spec.needs_factors:
            raise UserError(
                "a conditional prior needs each code's factors; MMDLoss matches the aggregate codes only",
                where="MMDLoss",
                fix="use an unconditional prior, or train it with `sculpt train`",
            )
        if "type" in options or "weight" in options:
            raise UserError("MMDLoss takes the divergence's kernel options, not type or weight", where="MMDLoss",
                            fix="multiply the loss by your weight (the paper's λ = 0.3)")  # fmt: skip
        from sculptcli.objectives.divergences import PAPER_SCALES

        options = {"scales": list(PAPER_SCALES), "prior_n": None, **options}
        try:
            self.spec = DIVERGENCES.get("mmd")(**options)
        except ValidationError as e:
            from sculptcli.validation import format_validation

            raise UserError(
                f"invalid MMD options\n  {format_validation(e, 'divergence')}", where="MMDLoss",
                fix="options: kernel, scales, bandwidth, estimator, prior_n",
            ) from None  # fmt: skip
        self._samplers: dict[torch.device, Any] = {}

    def forward(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """MMD² (a scalar tensor) between codes z (n, dim) and fresh prior draws on z's device."""
        from sculptcli.models.base import Encoded

        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.prior.dim:
            got = list(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise UserError(f"MMDLoss takes codes [n, {self.prior.dim}], got {got}", where="MMDLoss")
        sampler = self._samplers.get(z.device)
        if sampler is None:
            sampler = self._samplers[z.device] = self.prior.sampler.to(z.device)
        return self.spec(Encoded(z, None, z), sampler, generator)

    def extra_repr(self) -> str:
        s = self.spec
        return f"prior={self.prior.describe()}, dim={self.prior.dim}, kernel={s.kernel}, scales={s.scales}, " \
               f"bandwidth={s.bandwidth}, estimator={s.estimator}"  # fmt: skip


@dataclasses.dataclass
class LPSScore(LPSResult):
    """An LPS result: `score` (the LPS, mean held-out R² over dimensions), `per_dim`, `probe`, `settings`."""

    @property
    def score(self) -> float:
        return self.mean


def lps(z: Tensor | Any, probe: str = "lgbm", *, seed: int = 0, test_frac: float = 0.2, **kwargs: Any) -> LPSScore:
    """Latent Predictability Score of codes z (N, d): how well each dimension is predicted from the others by
    `probe` (lgbm by default; mlp, linear), as held-out R². `r.score`, `r.per_dim`."""
    from sculptcli.metrics.lps import lps as _lps

    r = _lps(z, probe, seed=seed, test_frac=test_frac, **kwargs)
    return LPSScore(probe=r.probe, mean=r.mean, per_dim=list(r.per_dim), settings=r.settings)


def score(
    z: Tensor | Any,
    factors: Tensor | Any | None = None,
    *,
    metrics: str | Sequence[str] = "all",
    prior: Prior | str | Path | Mapping[str, Any] | None = None,
    probes: Sequence[str] = ("lgbm", "mlp", "linear"),
    test_frac: float = 0.2,
    seed: int = 0,
    **options: Any,
) -> dict[str, Any]:
    """Score codes z (N, d) (and ground-truth `factors` (N, k)) as `sculpt score --latents FILE --json` does: the
    same metrics, defaults and keys. With `prior`, the distances to it are scored too. Other `options` are the CLI's
    (`dci_model`, `bins`, `votes`, `intervene`)."""
    from sculptcli.metrics import METRICS, ScoreInput
    from sculptcli.scoring import run_metrics

    z = _matrix(z, "z")
    f = None if factors is None else _matrix(factors, "factors")
    if f is not None and len(f) != len(z):
        raise UserError(f"factors has {len(f)} rows for {len(z)} codes", where="sculpt.score")
    names = METRICS.resolve([metrics] if isinstance(metrics, str) else list(metrics))
    opts = {"probes": list(probes), "test_frac": test_frac, "dci_model": "gbt", "bins": 20, "intervene": "codes"}
    opts.update(options)
    sampler = None if prior is None else globals()["prior"](prior, z.shape[1]).sampler
    report = run_metrics(ScoreInput(latents=z, factors=f, prior=sampler, seed=seed, options=opts), names)
    report["settings"]["latents"] = "python"
    return report


def _matrix(x: Any, name: str) -> Tensor:
    t = torch.as_tensor(x.detach().cpu() if isinstance(x, Tensor) else x)
    if t.ndim != 2 or not t.is_floating_point() and t.dtype not in (torch.int32, torch.int64):
        raise UserError(
            f"{name} must be a 2-D array [N, d] of numbers, got shape {list(t.shape)}", where="sculpt.score"
        )
    if not bool(torch.isfinite(t.float()).all()):
        raise UserError(f"{name} holds non-finite values", where="sculpt.score")
    return t.float()


def train(
    preset_or_config: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    out: str | Path | None = None,
    *,
    budget: str | None = None,
    seed: int | None = None,
    max_steps: int | None = None,
    device: str = "auto",
    score: bool = True,
    quiet: bool = True,
) -> Run:
    """Train a run as `sculpt train` does and open it: a preset name, a YAML file or a config mapping, then
    `overrides` (`{"train.steps": 200}` or `["train.steps=200"]`), into `out` (default runs/<name>/<time>). The budget
    is chosen as on the CLI (quick on CPU, full on CUDA); with `score`, the held-out scores go to scores.json."""
    from sculptcli.device import resolve_device
    from sculptcli.training.launch import launch
    from sculptcli.training.report import make_reporter

    dev = resolve_device(device)
    extra = ([f"seed={seed}"] if seed is not None else []) + (
        [f"train.steps={max_steps}", "train.epochs=null"] if max_steps is not None else []
    )
    cfg = _config(preset_or_config, _override_list(overrides) + extra, budget, dev.type == "cuda")
    launched = launch(cfg, None if out is None else Path(out), "new", dev, make_reporter(quiet))
    if launched.result.interrupted:
        where = launched.run_dir
        raise KeyboardInterrupt(f"training interrupted; continue it with `sculpt train --out {where} --resume`")
    run = open_run(launched.run_dir, "last", dev, trust_code=True)  # the code this call was told to train
    if score:
        from sculptcli.training.tracking import log_final_scores

        log_final_scores(launched.cfg.train.loggers, launched.run_dir, run.checkpoint.step, run.score(save=True))
    return run


def _override_list(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return [str(o) for o in overrides]


def _config(source: str | Path | Mapping[str, Any], overrides: list[str], budget: str | None, cuda: bool):
    """A validated RunConfig from a preset name, a YAML path or a mapping (budget, prior reference, overrides)."""
    from sculptcli.config import apply_budget, apply_overrides, load_config, preset_names, validate_config

    if isinstance(source, Mapping):
        from sculptcli.priors.files import expand_prior_ref

        raw = copy.deepcopy(dict(source))
        raw.setdefault("name", "run")
        if budget is None and isinstance(raw.get("budgets"), dict):
            auto = "full" if cuda else "quick"
            budget = auto if auto in raw["budgets"] else None
        raw = apply_budget(raw, budget)
        if "prior" in raw:
            raw["prior"] = expand_prior_ref(raw["prior"], Path.cwd())
        raw = apply_overrides(raw, overrides)
        if "prior" in raw:
            raw["prior"] = expand_prior_ref(raw["prior"], Path.cwd())
        return validate_config(raw, "sculpt.train(config mapping)")
    if isinstance(source, str) and source in preset_names():
        return load_config(preset=source, overrides=overrides, budget=budget, device_is_cuda=cuda)
    if isinstance(source, str | Path) and (Path(source).suffix in (".yaml", ".yml") or Path(source).is_file()):
        return load_config(config=Path(source), overrides=overrides, budget=budget, device_is_cuda=cuda)
    return load_config(preset=str(source), overrides=overrides, budget=budget, device_is_cuda=cuda)  # did-you-mean
