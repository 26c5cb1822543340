"""Config loading: presets, budgets, overrides, and errors that name the key path with a did-you-mean."""

import pytest
import yaml

from sculptcli.config import RunConfig, apply_overrides, load_config, parse_override, preset_names
from sculptcli.errors import UserError

BASELINES = ["ae", "vae-kl", "betavae-kl", "tcvae", "factorvae"]
PRESETS = [
    "dsprites-mmd-gaussian",
    "dsprites-mmd-hybrid",
    "dsprites-vae-kl",
    "dsprites-betavae-kl",
    "dsprites-ae",
    "dsprites-tcvae",
    "dsprites-factorvae",
    *[f"{ds}-{m}" for ds in ("xy", "xyc", "xycs", "cifar") for m in ["mmd-gaussian", *BASELINES]],
    "xy-mmd-uniform",
    "xy-mmd-gmm",
    "xyc-mmd-hybrid",
    "xycs-mmd-hybrid",
    "tinyimagenet-mmd-gaussian",
    "mnist-mmd-gaussian",
    "mnist-ae-kld",
    "galaxy-mmd-gaussian",
]
# per dataset: latent d, conv layers under the quick and the full budget, full-budget epochs (the paper's Table 3;
# the XY family takes 5 layers on 96×96, the galaxy set is not in the paper)
SHAPES = {
    "dsprites": (5, 4, 6, 50),
    "xy": (2, 4, 5, 500),
    "xyc": (3, 4, 5, 250),
    "xycs": (4, 4, 5, 125),
    "cifar10": (64, 4, 4, 250),
    "tinyimagenet": (64, 4, 6, 75),
    "mnist": (12, 4, 4, 250),
    "galaxy": (5, 4, 6, 250),
}


def test_all_issue_presets_exist():
    assert set(PRESETS) <= set(preset_names())


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("budget", ["quick", "full"])
def test_every_preset_and_budget_validates(name, budget):
    cfg = load_config(preset=name, budget=budget)
    assert cfg.budget == budget
    d, quick_layers, full_layers, epochs = SHAPES[cfg.data.type]
    assert cfg.model.latent_dim == d and cfg.model.layers == (quick_layers if budget == "quick" else full_layers)
    cfg.model.check_shape(cfg.data.image_shape())
    if budget == "full":
        assert (cfg.train.batch_size, cfg.train.lr, cfg.train.epochs) == (512, 5e-4, epochs)


def test_full_budget_is_the_papers():
    cfg = load_config(preset="dsprites-mmd-gaussian", budget="full")
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.epochs) == (512, 5e-4, 50)
    assert cfg.objective.divergence.type == "mmd" and cfg.objective.divergence.weight == 0.3
    assert cfg.objective.divergence.estimator == "biased"
    assert cfg.train.total_steps(727_280) == 71_024  # ceil(50 · 727,280 / 512)


def test_auto_budget_follows_the_device():
    assert load_config(preset="dsprites-mmd-gaussian").budget == "quick"
    assert load_config(preset="dsprites-mmd-gaussian", device_is_cuda=True).budget == "full"


def test_overrides_are_typed_and_validated():
    cfg = load_config(
        preset="dsprites-mmd-gaussian", overrides=["train.lr=1e-3", "--model.latent_dim=8", "prior.std=2"]
    )
    assert cfg.train.lr == 1e-3 and cfg.model.latent_dim == 8 and cfg.prior.std == 2.0


def test_override_parsing():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("--a=[1, 2]") == (["a"], [1, 2])
    with pytest.raises(UserError):
        parse_override("novalue")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.lr_rate=1", "Did you mean 'lr'"),
        ("lr=1e-3", "Did you mean 'train.lr'"),
        ("modle.latent_dim=3", "Did you mean 'model'"),
        ("prior.type=gausian", "Did you mean 'gaussian'"),
        ("train.batch_size=-1", "train.batch_size"),
        ("model.latent_dim=4", "latent size"),  # the hybrid prior covers 5 dims
        ("objective.divergence={type: kl, weight: 1}", "stochastic"),
        ("objective.divergence={type: kl, kernel: rbf}", "unknown key 'kernel'"),  # mmd's keys do not fit kl
    ],
)
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(UserError) as e:
        load_config(preset="dsprites-mmd-hybrid", overrides=[override])
    assert fragment in str(e.value)


def test_unknown_preset_suggests():
    with pytest.raises(UserError) as e:
        load_config(preset="dsprites-mmd-gausian")
    assert "Did you mean 'dsprites-mmd-gaussian'" in str(e.value)


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {type: dsprites\nmodel: [")
    with pytest.raises(UserError, match="malformed YAML"):
        load_config(config=bad)
    tagged = tmp_path / "tag.yaml"
    tagged.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="malformed YAML"):
        load_config(config=tagged)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(UserError, match="empty"):
        load_config(config=empty)
    with pytest.raises(UserError, match="no such file"):
        load_config(config=tmp_path / "missing.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(preset="dsprites-mmd-hybrid", overrides=["seed=7"])
    again = RunConfig.model_validate(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg.model_copy(update={"budgets": {}})
    assert again.prior.block_dims() == [1, 1, 1, 2]


def test_apply_overrides_creates_nested_maps():
    assert apply_overrides({"seed": 1}, ["score.n=200"]) == {"seed": 1, "score": {"n": 200}}


def _preset_budgets() -> list[tuple[str, str | None]]:
    """Every packaged run preset with every budget it defines (None: a preset without budgets), read from disk."""
    from sculptcli.config import preset_path

    pairs = []
    for name in preset_names():
        budgets = yaml.safe_load(preset_path(name).read_text()).get("budgets") or {}
        pairs += [(name, b) for b in sorted(budgets)] or [(name, None)]
    return pairs


PRESET_BUDGETS = _preset_budgets()


def test_the_enumeration_covers_every_preset():
    names = {name for name, _ in PRESET_BUDGETS}
    assert names == set(preset_names()) and len(names) >= 52
    assert {"dsprites-auxvae", "dsprites-xfactors", "xycs-qlae", "galaxy-auxvae-mmd"} <= names
    assert set(PRESETS) <= names


@pytest.mark.parametrize(("name", "budget"), PRESET_BUDGETS, ids=[f"{n}-{b}" for n, b in PRESET_BUDGETS])
def test_every_packaged_preset_and_budget_validates_and_builds(name, budget):
    import torch

    cfg = load_config(preset=name, budget=budget)
    assert cfg.budget == budget and cfg.name == name
    shape = cfg.data.image_shape()
    with torch.device("meta"):  # the model fits its data (nothing allocated)
        model = cfg.model.build(shape)
    assert model.latent_dim == cfg.model.latent_dim
    assert cfg.train.steps is not None or cfg.train.epochs is not None


def test_unknown_objective_term_type_names_the_terms():
    from sculptcli.config import preset_path, validate_config

    raw = yaml.safe_load(preset_path("dsprites-mmd-gaussian").read_text())
    raw["objective"]["terms"] = [{"type": "infonse"}]
    with pytest.raises(UserError) as e:
        validate_config(raw, "t.yaml")
    msg = str(e.value)
    assert "objective.terms[0].type: unknown term type 'infonse'. Did you mean 'infonce'?" in msg, msg
    assert "Choices: corr_cross" in msg and "prior" not in msg
