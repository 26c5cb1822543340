"""The context module (arXiv 2507.04754) and the quad set: masks against loops over blocks, cut parents, the
[0, 1] clamp, the SCM's interventions, one context per batch and never a composition, SWD against POT and a
plain implementation, the tensor file's context column, and the variants end to end."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from sculptcli.checkpoint import load_checkpoint
from sculptcli.config import load_config
from sculptcli.data.quad import (
    COMPOSITIONS,
    CONCEPTS,
    CONTEXTS,
    INT_MEAN,
    INT_VAR,
    VARIABLES,
    QuadSpec,
    colour_map,
    render,
)
from sculptcli.io import read_jsonl
from sculptcli.metrics.context import sliced_wasserstein
from sculptcli.models.context import CausalLayer, ContextModule, InterventionBlock, context_mask, intervention_mask
from tests.conftest import assert_user_error


def _block(m: torch.Tensor, i: int, j: int, w: int) -> torch.Tensor:
    return m[i * w : (i + 1) * w, j * w : (j + 1) * w]


@pytest.mark.parametrize("ivn", [(), (1,), (0, 2), (0, 1, 2, 3)])
def test_intervention_block_matches_a_loop_over_blocks(ivn):
    n, w = 4, 3
    torch.manual_seed(0)
    layer = InterventionBlock(n, w)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[list(ivn)] = True
    got = layer.weight(mask)
    for i in range(n):
        for j in range(n):
            src = layer.ivn_weight if j in ivn else layer.obs_weight
            want = _block(src, i, j, w) if i == j else torch.zeros(w, w)
            assert torch.equal(_block(got, i, j, w), want), (i, j)


@pytest.mark.parametrize("ivn", [(), (2,), (0, 3), (1, 2, 3)])
def test_causal_layer_matches_a_loop_over_blocks(ivn):
    n, w = 4, 2
    torch.manual_seed(1)
    layer = CausalLayer(n, w)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[list(ivn)] = True
    got = layer.weight(mask)
    for i in range(n):
        for j in range(n):
            if i == j:
                want = torch.eye(w)  # diagonal blocks fixed to the identity
            elif i in ivn:
                want = torch.zeros(w, w)  # an intervened concept has no parents
            else:
                want = _block(layer.ivn_weight if j in ivn else layer.obs_weight, i, j, w)
            assert torch.equal(_block(got, i, j, w), want), (i, j)


def test_an_intervened_concept_depends_only_on_its_own_noise():
    """Jacobian of the causal layer's output block of an intervened concept: zero for every other input block."""
    n, w = 3, 2
    torch.manual_seed(2)
    layer = CausalLayer(n, w)
    with torch.no_grad():
        layer.obs_weight.fill_(0.7)
        layer.ivn_weight.fill_(0.4)
    for ivn in ((1,), (0, 1)):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[list(ivn)] = True
        jac = torch.autograd.functional.jacobian(
            lambda e, m=mask: torch.nn.functional.linear(e, layer.weight(m)), torch.randn(n * w)
        )
        for i in ivn:
            rows = jac[i * w : (i + 1) * w]
            for j in range(n):
                cols = rows[:, j * w : (j + 1) * w]
                assert torch.allclose(cols, torch.eye(w)) if i == j else bool((cols == 0).all()), (ivn, i, j)
        # a non-intervened concept still hears its parents
        assert (jac[2 * w :, :w] != 0).any()


def test_the_module_routes_each_row_through_its_own_context_and_clamps_after_a_step():
    torch.manual_seed(3)
    n, w = 3, 4
    module = ContextModule(n, w, 2, 2, latent_dim=10)
    module.eval()  # BatchNorm with running statistics: rows independent of each other
    z = torch.randn(6, n * w)
    masks = intervention_mask(["a", "b", "c"], "b", 6)
    masks[:3] = False  # rows 0–2 observational, 3–5 do(b)
    mixed = module(z, masks)
    assert torch.allclose(mixed[:3], module(z[:3], None), atol=1e-6)
    assert torch.allclose(mixed[3:], module(z[3:], masks[3:]), atol=1e-6)
    assert not torch.allclose(mixed[3:], module(z[3:], None), atol=1e-4)  # the labels matter
    module.train()
    opt = torch.optim.SGD(module.parameters(), lr=100.0)
    module(z, masks).pow(2).sum().backward()
    opt.step()
    module.after_step()
    for p in (module.causal.obs_weight, module.causal.ivn_weight):
        assert float(p.detach().min()) >= 0.0 and float(p.detach().max()) <= 1.0
    pooled = ContextModule(n, w, 2, 2, latent_dim=10, pooled=True).eval()
    assert torch.equal(pooled(z, masks), pooled(z, None))  # CM pooled ignores the labels


def test_context_labels_become_masks():
    labels = torch.tensor([0, 1, 3])
    assert context_mask(labels, 3).tolist() == [[False] * 3, [True, False, False], [False, False, True]]
    assert intervention_mask(["a", "b", "c"], "a+c", 1).tolist() == [[True, False, True]]
    with pytest.raises(ValueError, match="unknown concept"):
        intervention_mask(["a", "b"], "a+z", 1)


# ---------------------------------------------------------------- the quad set


def test_quad_renders_quadrants_in_their_colours_and_a_centred_shape():
    f = torch.tensor([[0.0, 0.25, 0.5, 1.0, 0.5, 0.9, 0.0, 0.0]])  # a circle of 24 px in colour 0.9
    img = render(f)[0]
    want = colour_map(torch.tensor([0.0, 0.25, 0.5, 1.0]))
    corners = [
        (60, 2),
        (60, 61),
        (2, 2),
        (2, 61),
    ]  # quad1 bottom-left, quad2 bottom-right, quad3 top-left, quad4 top-right
    for k, (r, c) in enumerate(corners):
        assert torch.allclose(img[:, r, c], torch.floor(want[k] * 255 + 1e-4) / 255), k
    centre = torch.floor(colour_map(torch.tensor([0.9]))[0] * 255 + 1e-4) / 255
    assert torch.allclose(img[:, 32, 32], centre)
    inside = (img == centre.view(3, 1, 1)).all(0)
    assert abs(int(inside.sum()) - math.pi * 12**2) < 0.1 * math.pi * 12**2  # area of the circle of radius 12
    anchors = colour_map(torch.tensor([0.0, 0.2, 0.4, 0.5, 1.0]))
    assert torch.allclose(anchors, torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0.5], [1, 0, 1.0]]), atol=1e-6)


def test_quad_interventions_cut_the_parents_of_the_causal_scm():
    data = QuadSpec(variant="causal", n=4000, heldout=4000).build(0)
    q1, q2 = VARIABLES.index("quad1"), VARIABLES.index("quad2")  # the released W has the edge quad2 -> quad1

    def corr(context):
        f = data.heldout_factors(context)
        return float(np.corrcoef(f[:, q1].numpy(), f[:, q2].numpy())[0, 1])

    assert corr("obs") < -0.3  # W[quad2, quad1] = −1.23
    assert abs(corr("quad1")) < 0.06  # do(quad1): its parent no longer matters
    obs, ivn = data.heldout_factors("obs")[:, q1], data.heldout_factors("quad1")[:, q1]
    # do(quad1 ~ N(1.17, 1.95)), standardised by the observational std s: E Φ(N(m, v)) = Φ(m / √(1 + v))
    s = float(data.scm.std[q1])
    m, v = INT_MEAN[q1] / s, INT_VAR[q1] / s**2
    assert abs(float(ivn.mean()) - 0.5 * (1 + math.erf(m / math.sqrt(1 + v) / math.sqrt(2)))) < 0.015
    assert abs(float(obs.mean()) - 0.5) < 0.015 and float(ivn.mean()) > float(obs.mean()) + 0.05
    indep = QuadSpec(variant="independent", n=4000, heldout=4000).build(0).heldout_factors("obs")
    assert abs(float(np.corrcoef(indep[:, q1].numpy(), indep[:, q2].numpy())[0, 1])) < 0.06
    assert abs(float(indep[:, q1].mean()) - 0.5) < 0.02  # Φ of a standard normal: uniform


def test_training_batches_come_from_one_context_and_never_a_composition():
    data = QuadSpec(n=300, heldout=50).build(5)
    seen = set()
    for step in range(60):
        b = data.train_batch(step, 16)
        labels = set(b.context.tolist())
        assert len(labels) == 1
        (c,) = labels
        table = data.tables[c]
        assert all(bool((table == row).all(1).any()) for row in b.factors)  # every row drawn from that context
        seen.add(c)
    assert seen == set(range(len(CONTEXTS)))  # every training context, and only those: no composition has a label
    assert torch.equal(data.train_batch(7, 16).images, data.train_batch(7, 16).images)  # a pure function of step
    base = QuadSpec(n=300, heldout=50, train_contexts=["obs"]).build(5)
    assert {int(base.train_batch(s, 8).context[0]) for s in range(20)} == {0}
    # the held-out compositions intervene on both of their concepts
    f = data.heldout_factors("quad1+quad2")
    assert f.shape == (50, 8) and len(COMPOSITIONS) == 9 and all("+" in c for c in COMPOSITIONS)


# ---------------------------------------------------------------- sliced Wasserstein


def plain_swd(x: np.ndarray, y: np.ndarray, projections: int, rng: np.random.Generator) -> float:
    """SW_2 by hand: random unit directions, the 1-D W_2 between sorted projections (equal sizes)."""
    total = 0.0
    for _ in range(projections):
        theta = rng.normal(size=x.shape[1])
        theta /= np.linalg.norm(theta)
        total += np.mean((np.sort(x @ theta) - np.sort(y @ theta)) ** 2)
    return math.sqrt(total / projections)


def test_swd_matches_pot_a_plain_loop_and_the_known_gaussian_answer():
    rng = np.random.default_rng(0)
    d, n = 8, 4000
    shift = np.full(d, 0.5)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, d)) + shift
    ours = sliced_wasserstein(torch.tensor(x), torch.tensor(y), seed=0, projections=400)
    hand = plain_swd(x, y, 400, np.random.default_rng(1))
    known = math.sqrt(float(shift @ shift) / d)  # E_θ[(θᵀm)²] = |m|²/d for θ uniform on the sphere
    assert abs(ours - hand) < 0.05 and abs(ours - known) < 0.06, (ours, hand, known)
    same = sliced_wasserstein(torch.tensor(x[: n // 2]), torch.tensor(x[n // 2 :]), seed=0)
    assert same < 0.1


# ---------------------------------------------------------------- config, tensor files, end to end


def _cfg(**over):
    cfg = {
        "data": {"type": "quad", "n": 200, "heldout": 40},
        "model": {
            "type": "conv", "layers": 3, "width": 4, "latent_dim": 12, "fc_hidden": 16, "stochastic": True,
            "norm": "batch", "context_module": {"width": 2, "out_width": 2, "depth": 2},
        },
        "prior": {"type": "gaussian"},
        "objective": {"recon": "bce", "reduction": "sum", "divergence": {"type": "kl", "weight": 1.0}},
        "train": {"batch_size": 8, "lr": 1e-3, "steps": 4, "log_every": 2, "eval_every": 4, "save_every": 4,
                  "eval_n": 20, "eval_probes": ["linear"]},
        "score": {"n": 20, "probes": ["linear"], "metrics": ["context", "nmse"]},
    }  # fmt: skip
    for key, value in over.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return cfg


def _train(cli, tmp_path, cfg, name="run"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / name
    code, _, err = cli("train", "--config", path, "--out", out, "--quiet")
    assert code == 0, err
    return out


def test_config_fills_the_concepts_and_checks_the_latent_size(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_cfg()))
    cfg = load_config(config=path)
    assert cfg.model.context_module.concepts == list(CONCEPTS)  # from the data, recorded in config.yaml
    for over, needle in (
        ({"model.latent_dim": 10}, "model.latent_dim=12"),
        ({"data": {"type": "dsprites", "heldout": 100}}, "context labels"),
        ({"model.context_module": {"width": 2, "concepts": ["a", "b"]}}, "differ from the data"),
    ):
        path.write_text(yaml.safe_dump(_cfg(**over)))
        with pytest.raises(Exception, match=needle.replace(".", r"\.")):
            load_config(config=path)


def test_bad_context_inputs_exit_2(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_cfg(**{"model.latent_dim": 10})))
    assert_user_error(cli("train", "--config", path, "--out", tmp_path / "r"), "model.latent_dim")
    assert not (tmp_path / "r").exists()
    path.write_text(yaml.safe_dump(_cfg(**{"data.train_contexts": ["obs", "quad1+quad2"]})))
    assert_user_error(cli("train", "--config", path, "--out", tmp_path / "r"), "compositions are held out")


def test_a_tensor_file_with_context_labels_trains_one_context_per_batch(cli, tmp_path):
    from safetensors.torch import save_file

    from sculptcli.data.tensor import TensorSpec

    g = torch.Generator().manual_seed(0)
    images = (torch.rand(120, 1, 16, 16, generator=g) * 255).to(torch.uint8)
    context = torch.arange(120) % 3
    file = tmp_path / "ctx.safetensors"
    save_file({"images": images, "context": context}, str(file))
    data = TensorSpec(path=str(file), heldout=20, contexts=["obs", "left", "right"]).build(0)
    for step in range(10):
        b = data.train_batch(step, 8)
        assert len(set(b.context.tolist())) == 1
        flat = (images.float() / 255).flatten(1)
        for x, label in zip(b.images.flatten(1), b.context.tolist(), strict=True):
            idx = int((flat == x).all(1).nonzero()[0])
            assert int(context[idx]) == label  # each image carries its own label from the file
    cfg = _cfg(**{
        "data": {"type": "tensor", "path": str(file), "heldout": 20, "contexts": ["obs", "left", "right"]},
        "model.layers": 2, "model.latent_dim": 4, "score.metrics": ["context", "nmse"],
    })  # fmt: skip
    out = _train(cli, tmp_path, cfg)
    assert load_checkpoint(out / "last.safetensors").config.model.context_module.concepts == ["left", "right"]
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["swd"]) == {"obs", "left", "right"} and scores["swd_composition"] is None  # no pairs in a file
    no_names = _cfg(**{"data": {"type": "tensor", "path": str(file), "heldout": 20}, "model.layers": 2,
                       "model.latent_dim": 4})  # fmt: skip
    path = tmp_path / "nonames.yaml"
    path.write_text(yaml.safe_dump(no_names))
    assert_user_error(cli("train", "--config", path, "--out", tmp_path / "r2"), "context labels")


def test_context_runs_score_swd_and_bpd_and_draw_compositions(cli, tmp_path):
    cm = _train(cli, tmp_path, _cfg(), "cm")
    (last,) = [r for r in read_jsonl(cm / "metrics.jsonl") if r.get("split") == "heldout"]
    assert "lps_linear" in last and "lps_lgbm" not in last  # train.eval_probes
    scores = json.loads((cm / "scores.json").read_text())
    assert set(scores["swd"]) == set(CONTEXTS) | set(COMPOSITIONS)
    assert all(v > 0 for v in scores["swd"].values())
    assert scores["swd_composition"] > 0 and scores["bpd"] > scores["recon_bpd"] > 0  # the ELBO adds the KL
    assert abs(scores["bpd_pixel"] - 3 * scores["bpd"]) < 1e-9  # per pixel = 3 channels × per dimension
    png = tmp_path / "compose.png"
    code, out, err = cli("traverse", cm, "--compose", "quad1+quad2", "--out", png, "--seeds", "3")
    assert code == 0 and png.is_file(), err
    assert_user_error(cli("traverse", cm, "--compose", "quad1+quad9", "--out", png), "quad1+quad")
    # base (no module, observational data only): scored the same way, generating one distribution for all
    base = _train(cli, tmp_path, _cfg(**{"model.context_module": None, "data.train_contexts": ["obs"]}), "base")
    b = json.loads((base / "scores.json").read_text())
    assert b["swd"]["obs"] > 0 and b["bpd"] > 0


def test_frozen_and_fine_tune_variants_start_from_a_pooled_model(cli, tmp_path):
    fast = {"score.metrics": ["nmse"]}
    pooled = _train(cli, tmp_path, _cfg(**{"model.context_module": None, **fast}), "pooled")
    before = load_checkpoint(pooled / "last.safetensors").group("model")
    frozen = _train(
        cli,
        tmp_path,
        _cfg(**{"train.init_from": str(pooled), "train.freeze": ["encoder", "decoder"], **fast}),
        "frozen",
    )
    ck = load_checkpoint(frozen / "last.safetensors")
    after = ck.group("model")
    for k, v in before.items():
        if k.startswith(("encoder.", "decoder.")) and "running" not in k and "num_batches" not in k:
            assert torch.equal(after[k], v), k  # frozen for the whole run
    torch.manual_seed(ck.config.seed)  # the module as the trainer initialised it
    init = ck.config.model.build((3, 64, 64)).state_dict()
    assert any(not torch.equal(after[k], init[k]) for k in after if k.startswith("context_module.") and "weight" in k)
    tuned = _train(
        cli, tmp_path,
        _cfg(**{"train.init_from": str(pooled), "train.freeze": ["encoder"], "train.freeze_frac": 0.5, **fast}),
        "tuned",
    )  # fmt: skip
    enc = load_checkpoint(tuned / "last.safetensors").group("model")
    assert any(not torch.equal(enc[k], before[k]) for k in before if k.startswith("encoder.") and k.endswith("weight"))
    wrong = _train(cli, tmp_path, _cfg(**{"model.context_module": None, "model.width": 8, **fast}), "wide")
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(_cfg(**{"train.init_from": str(wrong)})))
    assert_user_error(cli("train", "--config", path, "--out", tmp_path / "r3"), "init_from")


def test_every_quad_preset_validates(cli):
    for name in (
        "quad-cm",
        "quad-base",
        "quad-base-pooled",
        "quad-cm-pooled",
        "quad-cm-frozen",
        "quad-cm-finetune",
        "quad-cm-mmd",
    ):
        cfg = load_config(preset=name, budget="quick")
        assert cfg.data.type == "quad" and cfg.model.latent_dim == 192
        assert (cfg.model.context_module is None) == (name.startswith("quad-base"))


def test_bits_are_the_summed_bce_and_kl_of_each_image():
    from sculptcli.metrics.context import bits
    from sculptcli.models.conv import ConvAESpec

    torch.manual_seed(4)
    model = ConvAESpec(layers=2, width=4, latent_dim=4, stochastic=True).build((3, 8, 8)).eval()
    x = torch.rand(5, 3, 8, 8)
    recon, elbo = bits(model, x, "obs", batch_size=2)
    bce = kl = 0.0
    with torch.no_grad():
        for xi in x:  # one image at a time, by hand
            enc = model.encode(xi[None], sample=False)
            p = torch.sigmoid(model.decode(enc.mean))[0]
            bce += float(-(xi * torch.log(p) + (1 - xi) * torch.log(1 - p)).sum())
            m, lv = enc.mean[0], enc.logvar[0]
            kl += float(0.5 * (m**2 + lv.exp() - 1 - lv).sum())
    assert abs(recon - bce / 5) < 1e-3 and abs(elbo - (bce + kl) / 5) < 1e-3
    det = ConvAESpec(layers=2, width=4, latent_dim=4).build((3, 8, 8)).eval()
    assert bits(det, x, "obs")[1] is None  # no ELBO without a posterior


def test_the_module_trains_with_mmd_too(cli, tmp_path):
    cfg = _cfg(**{"model.stochastic": False, "objective.reduction": "mean",
                  "objective.divergence": {"type": "mmd", "weight": 0.3}})  # fmt: skip
    out = _train(cli, tmp_path, cfg, "mmd")
    scores = json.loads((out / "scores.json").read_text())
    assert scores["bpd"] is None and scores["recon_bpd"] > 0 and scores["swd_composition"] > 0  # no ELBO to report
