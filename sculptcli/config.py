"""The run configuration: one pydantic schema (extra keys forbidden) fed by a preset or YAML file,
a budget and `key=value` overrides; its errors become short messages with key paths."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sculptcli.data import DATASETS
from sculptcli.errors import UserError, did_you_mean
from sculptcli.models import MODELS
from sculptcli.objectives import ObjectiveSpec
from sculptcli.presetfiles import preset_names, preset_path, presets_dir  # noqa: F401  (imported from here too)
from sculptcli.priors import PRIORS
from sculptcli.priors.files import expand_prior_ref
from sculptcli.registry import Spec
from sculptcli.trackers import TRACKERS
from sculptcli.validation import format_validation as format_validation
from sculptcli.yamlfile import StrictLoader, load_yaml_text, read_yaml  # noqa: F401  (imported from here too)

MAX_STEPS = 10**9  # a budget beyond this is a typo (1e300 epochs), not a plan


class TrainSpec(Spec):
    batch_size: PositiveInt = 512
    lr: PositiveFloat = 5e-4
    steps: PositiveInt | None = Field(None, le=MAX_STEPS, description="optimizer steps (or give epochs)")
    epochs: PositiveFloat | None = Field(None, le=1e6, description="passes over the training split (or give steps)")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="learning rate over the run: cosine decay to min_lr_frac·lr (default), or constant"
    )
    warmup_steps: NonNegativeInt = Field(0, description="linear learning-rate warm-up from 0 over these steps")
    min_lr_frac: float = Field(0.0, ge=0, le=1, description="cosine schedule: final lr as a fraction of lr")
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = Field(
        0.0, ge=0, description="adamw: decoupled decay of weight matrices (biases, norms, codebooks are not decayed)"
    )
    grad_clip: PositiveFloat | None = Field(None, description="clip the global gradient norm to this value")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 autocast on CUDA and on CPUs with bf16 instructions (AVX512-BF16, AMX), fp32 elsewhere",
    )
    threads: PositiveInt | None = Field(
        None, le=1024, description="CPU intra-op threads (default: OMP_NUM_THREADS, else the CPUs this process may use)"
    )
    compile: bool = False
    log_every: PositiveInt = 50
    eval_every: PositiveInt = 500
    save_every: PositiveInt = 1000
    eval_n: PositiveInt = Field(2000, description="held-out images for the periodic evaluation")
    eval_probes: list[Literal["linear", "lgbm", "mlp"]] | None = Field(
        None,
        description="LPS probes of the periodic evaluation (the nonlinear ones cost seconds per latent dimension); "
        "null: linear, lgbm and mlp, leaving out those the score leaves out on codes this wide",
    )
    loggers: list[Literal[tuple(TRACKERS)]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="experiment trackers beside metrics.jsonl: "
        + "; ".join(f"{t.name} ({t.help})" for t in TRACKERS.values()),
    )
    init_from: str | None = Field(
        None,
        description="start the encoder and decoder from this run directory or checkpoint (names and shapes "
        "that match; e.g. a pooled base model for the context module's frozen and fine-tune variants)",
    )
    freeze: list[Literal["encoder", "decoder"]] = Field(
        default_factory=list, description="parts not updated for the first freeze_frac of the steps"
    )
    freeze_frac: float = Field(1.0, gt=0, le=1, description="the share of steps `freeze` holds (1: the whole run)")

    @model_validator(mode="after")
    def _decay_needs_adamw(self):
        if self.weight_decay and self.optimizer != "adamw":
            raise ValueError("train.weight_decay needs train.optimizer=adamw (Adam's L2 is not decoupled decay)")
        return self

    @model_validator(mode="after")
    def _one_budget(self):
        if self.steps is None and self.epochs is None:
            raise ValueError("give train.steps or train.epochs")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give train.steps or train.epochs, not both")
        return self

    def total_steps(self, n_train: int) -> int:
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None
        return max(1, math.ceil(self.epochs * n_train / self.batch_size))


class ScoreSpec(Spec):
    n: PositiveInt = Field(10_000, description="held-out images encoded for scoring")
    probes: list[Literal["lgbm", "mlp", "linear"]] = Field(default_factory=lambda: ["lgbm", "mlp", "linear"])
    test_frac: float = Field(0.2, gt=0, lt=1)
    metrics: list[str] = Field(
        default_factory=lambda: ["fast"],
        description="metrics or sets (basic, fast, supervised, all) scored at the end of training",
    )

    @field_validator("metrics")
    @classmethod
    def _known(cls, v):
        from sculptcli.errors import UserError
        from sculptcli.metric_catalog import resolve

        try:
            resolve(v)
        except UserError as e:
            raise ValueError(e.what) from None
        return v


class RunConfig(Spec):
    name: str | None = None
    seed: int = Field(0, ge=0, le=2**63 - 1, description="the one seed behind everything (at most 2⁶³−1)")
    budget: str | None = Field(None, description="the budget applied from the preset (recorded)")
    data: DATASETS.union()  # type: ignore[valid-type]
    model: MODELS.union()  # type: ignore[valid-type]
    prior: PRIORS.union() = Field(default_factory=lambda: PRIORS.get("gaussian")())  # type: ignore[valid-type]
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    train: TrainSpec
    score: ScoreSpec = Field(default_factory=ScoreSpec)
    budgets: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named override sets, e.g. quick (CPU) and full (the paper's)"
    )
    # the dotted keys given on the command line (overrides): sizes there stay strict, a preset's shrink to the data
    _given: set[str] = PrivateAttr(default_factory=set)

    def __eq__(self, other: object) -> bool:
        """The same values: where a key came from (`_given`) is not part of a config's value."""
        if not isinstance(other, RunConfig):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    @model_validator(mode="after")
    def _fits_together(self):
        self._fit_context_module()
        try:
            self.prior.check_dim(self.model.latent_dim)
        except ValueError as e:
            raise ValueError(f"prior: {e}") from None
        try:
            self.objective.divergence.check(self.prior, self.model.stochastic)
        except ValueError as e:
            raise ValueError(f"objective.divergence: {e}") from None
        weights = getattr(self.objective.divergence, "dim_weights", None)
        if weights is not None and len(weights) != self.model.latent_dim:
            raise ValueError(
                f"objective.divergence.dim_weights has {len(weights)} entries for {self.model.latent_dim} latent dims"
            )
        for i, term in enumerate(self.objective.terms):
            try:
                term.check(self.prior, self.model)
            except ValueError as e:
                raise ValueError(f"objective.terms.{i}: {e}") from None
        if self.objective.needs_factors and self.data.has_factors() is False:
            raise ValueError(
                f"objective.terms: a term needs the factors of every training image, and dataset '{self.data.type}' "
                "has none (use dsprites, xy, galaxy, or a tensor file with 'factors')"
            )
        if self.prior.needs_factors and self.data.has_factors() is False:
            raise ValueError(
                f"prior: a {self.prior.type} prior needs the factors of every training image, and dataset "
                f"'{self.data.type}' has none (use dsprites, xy, galaxy, or a tensor file with 'factors')"
            )
        return self

    def _fit_context_module(self) -> None:
        """A context module takes its concepts from the data (recorded in the resolved config) and needs
        latent_dim = concepts × width."""
        cm = getattr(self.model, "context_module", None)
        if cm is None:
            return
        names = self.data.context_names()
        if names is None:
            raise ValueError(
                f"model.context_module needs data with context labels, and dataset '{self.data.type}' has none "
                "(use quad, or a tensor file with a 'context' column and data.contexts naming its labels)"
            )
        concepts = list(names[1:])
        if cm.concepts is None:
            cm.concepts = concepts
        elif cm.concepts != concepts:
            raise ValueError(
                f"model.context_module.concepts {cm.concepts} differ from the data's intervened concepts {concepts}"
            )
        want = len(concepts) * cm.width
        if self.model.latent_dim != want:
            raise ValueError(
                f"model.latent_dim {self.model.latent_dim} must be {len(concepts)} concepts × "
                f"context_module.width {cm.width} = {want} (set model.latent_dim={want})"
            )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude={"budgets"}), sort_keys=False)


# ---------------------------------------------------------------- presets


# ---------------------------------------------------------------- overrides


def parse_override(arg: str) -> tuple[list[str], Any]:
    """'train.lr=1e-3' -> (['train', 'lr'], 0.001). Forgiving: leading dashes are stripped."""
    text = arg.lstrip("-")
    if "=" not in text:
        raise UserError(f"override '{arg}' is not key=value", fix="write e.g. train.lr=1e-3")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise UserError(f"override '{arg}' has no key", fix="write e.g. train.lr=1e-3")
    try:
        value = load_yaml_text(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        value = raw
    return key.split("."), value


def _leaf_paths(model: type[Spec], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        out.append(prefix + name)
        if isinstance(ann, type) and issubclass(ann, Spec):
            out += _leaf_paths(ann, f"{prefix}{name}.")
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    for arg in overrides:
        path, value = parse_override(arg)
        if path[0] not in RunConfig.model_fields:
            leafs = [p for p in _leaf_paths(RunConfig) if p.split(".")[-1] == path[0]]
            hint = f" Did you mean '{leafs[0]}'?" if len(leafs) == 1 else did_you_mean(path[0], RunConfig.model_fields)
            raise UserError(
                f"unknown key '{path[0]}' in override '{arg}'.{hint}",
                fix=f"top-level keys: {', '.join(RunConfig.model_fields)}",
            )
        node = data
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                if nxt is not None:
                    raise UserError(f"'{'.'.join(path[: i + 1])}' is not a mapping", where=f"override '{arg}'")
                nxt = node[part] = {}
            node = nxt
        node[path[-1]] = value
    return data


def apply_budget(raw: dict[str, Any], budget: str | None) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    budgets = data.get("budgets") or {}
    if not isinstance(budgets, dict):
        raise UserError(f"budgets must be a mapping of named override sets, not {type(budgets).__name__}")
    if budget is None:
        return data
    if budget not in budgets:
        have = ", ".join(budgets) or "none"
        raise UserError(
            f"this config has no budget '{budget}'.{did_you_mean(budget, budgets)}", fix=f"budgets defined: {have}"
        )
    chosen = budgets[budget]
    if not isinstance(chosen, dict):
        raise UserError(
            f"budget '{budget}' must be a mapping of key: value overrides, not {type(chosen).__name__}",
            where=f"budgets.{budget}",
            fix="e.g. budgets: {quick: {train.steps: 1500}}",
        )
    pairs = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in chosen.items()]
    data = apply_overrides(data, pairs)
    data["budget"] = budget
    return data


# ---------------------------------------------------------------- validation


def validate_config(data: dict[str, Any], source: str) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(
            f"invalid config\n  {format_validation(e)}",
            where=source,
            fix="correct the keys above (see `sculpt presets show NAME` for a valid example)",
        ) from None


def _switch_data_type(raw: dict[str, Any], overrides: list[str], notes: list[str]) -> dict[str, Any]:
    """`raw` with `overrides` applied; when they change `data.type`, the preset's keys of the old type are left out
    (they belong to another dataset: `data: unknown key 'root'` otherwise), saying so in one note."""
    data = apply_overrides(raw, overrides)
    old, new = raw.get("data"), data.get("data")
    if not (isinstance(old, dict) and isinstance(new, dict)) or old.get("type") == new.get("type"):
        return data
    data = apply_overrides({**raw, "data": {}}, overrides)
    dropped = sorted(set(old) - set(data["data"]) - {"type"})
    if dropped:
        notes.append(
            f"data.type {old.get('type')} → {data['data'].get('type')}: the preset's data keys of "
            f"{old.get('type')} are left out ({', '.join(dropped)}); give data.KEY=VALUE to set those of the new type"
        )
    return data


def _auto_pad(raw: dict[str, Any], cfg: RunConfig, source: str, notes: list[str]) -> RunConfig:
    """Pad images whose sides the conv model's stride-2 layers cannot halve all the way (28×28 with 4 layers) to
    the next size they can, when the data has `pad_to` and it is not set; saying so in a note."""
    layers = getattr(cfg.model, "layers", None)
    check = getattr(cfg.model, "check_shape", None)
    if layers is None or check is None or "pad_to" not in type(cfg.data).model_fields or cfg.data.pad_to is not None:
        return cfg
    if "data.pad_to" in cfg._given:
        return cfg
    try:
        c, h, w = cfg.data.image_shape()
        check((c, h, w))
        return cfg
    except ValueError:
        pass
    except Exception:  # noqa: BLE001 - the data cannot say its shape yet (a missing file): the build will say why
        return cfg
    f = 2**layers
    side = -(-max(h, w) // f) * f
    fixed = validate_config({**raw, "data": {**raw["data"], "pad_to": side}}, source)
    fixed._given = cfg._given
    notes.append(
        f"data: {h}×{w} images are padded to {side}×{side} (data.pad_to={side}): model.layers={layers} stride-2 "
        f"layers need sides divisible by {f}; set data.pad_to or model.layers to choose otherwise"
    )
    return fixed


def given_key(arg: str) -> str:
    """The dotted key of a `key=value` override."""
    return ".".join(parse_override(arg)[0])


def load_config(
    preset: str | None = None,
    config: Path | None = None,
    overrides: list[str] | None = None,
    budget: str | None = None,
    device_is_cuda: bool = False,
    notes: list[str] | None = None,
) -> RunConfig:
    """preset or YAML -> budget -> overrides -> validated RunConfig.

    budget None means: 'full' on CUDA and 'quick' on CPU when the config defines them. What was adapted on the way
    (the old data type's keys left out, images padded for the model) is appended to `notes` for the caller to say;
    the override keys are recorded on the config (`_given`) so that sizes given there stay strict."""
    notes = [] if notes is None else notes
    if (preset is None) == (config is None):
        raise UserError(
            "give exactly one of --preset NAME or --config FILE", fix="e.g. sculpt train --preset dsprites-mmd-gaussian"
        )
    path = preset_path(preset) if preset else Path(config)  # type: ignore[arg-type]
    raw = read_yaml(path)
    raw.setdefault("name", preset or path.stem)
    if budget is None and isinstance(raw.get("budgets"), dict):
        auto = "full" if device_is_cuda else "quick"
        budget = auto if auto in raw["budgets"] else None
    raw = apply_budget(raw, budget)
    if "prior" in raw:  # a referenced prior file, inlined so that overrides can reach into it
        raw["prior"] = expand_prior_ref(raw["prior"], path.parent)
    raw = _switch_data_type(raw, overrides or [], notes)
    if "prior" in raw:  # `prior=NAME_OR_PATH` given as an override
        raw["prior"] = expand_prior_ref(raw["prior"], Path.cwd())
    cfg = validate_config(raw, str(path))
    cfg._given = {given_key(a) for a in overrides or []}
    return _auto_pad(raw, cfg, str(path), notes)


def load_prior_or_preset(target: str) -> Any:
    """A prior from a packaged prior name or a YAML path (`priors.files.load_prior`), else a run preset's prior."""
    from sculptcli.priors.files import load_prior

    try:
        return load_prior(target)
    except UserError:
        if target in preset_names():
            return load_config(preset=target).prior
        raise
