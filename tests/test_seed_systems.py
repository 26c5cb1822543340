"""QLAE, XFactors and Aux-VAE end to end and their parts: quantisation, decay groups, SSIM, the discrete InfoMEC
path, the subspace-aware FactorVAE share, swaps and codebook traversals."""

import json

import numpy as np
import pytest
import torch
import yaml

from sculptcli.checkpoint import load_checkpoint
from sculptcli.config import TrainSpec, load_config
from sculptcli.io import read_jsonl
from sculptcli.metrics.factors import subspace_vote_share
from sculptcli.metrics.information import infomec
from sculptcli.metrics.recon import ssim_images
from sculptcli.models.base import Quantizer
from sculptcli.optim import make_optimizer
from tests.conftest import TINY


def test_quantizer_snaps_to_the_codebook_with_a_straight_through_gradient():
    q = Quantizer(3, 5, -1.0, 1.0)
    z = torch.tensor([[0.1, -0.9, 2.0], [0.45, 0.55, -0.26]], requires_grad=True)
    st, raw = q(z)
    book = torch.linspace(-1, 1, 5)
    want = torch.stack([book[(z.detach()[:, j, None] - book).abs().argmin(1)] for j in range(3)], 1)
    assert torch.equal(st, want) and torch.equal(raw, want)
    (st * torch.arange(6.0).view(2, 3)).sum().backward()
    assert torch.equal(z.grad, torch.arange(6.0).view(2, 3))  # identity gradient to the continuous code
    assert q.codebook.grad is None  # the straight-through path does not train the codebook
    raw.sum().backward()
    assert q.codebook.grad.sum().item() == pytest.approx(6.0)  # each chosen entry gets its code's gradient


def test_adamw_decays_weight_matrices_only():
    cfg = load_config("dsprites-qlae")
    model = cfg.model.build((1, 64, 64))
    opt = make_optimizer(cfg.train, model)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2 and "codebook" not in name), name
    assert opt.param_groups[0]["weight_decay"] == 0.1
    with pytest.raises(ValueError, match="adamw"):
        TrainSpec(steps=1, weight_decay=0.1)


def loop_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two 2-D images by an explicit loop over every window inside the image (σ 1.5, 11 taps)."""
    r = 5
    t = np.arange(-r, r + 1)
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(r, x.shape[0] - r):
        for j in range(r, x.shape[1] - r):
            a, b = x[i - r : i + r + 1, j - r : j + r + 1], y[i - r : i + r + 1, j - r : j + r + 1]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * a * a).sum() - ma**2, (w * b * b).sum() - mb**2
            cab = (w * a * b).sum() - ma * mb
            vals.append(((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_a_plain_window_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 20, 18, generator=g)
    y = (x + 0.2 * torch.randn(2, 1, 20, 18, generator=g)).clamp(0, 1)
    got = ssim_images(x, y)
    for i in range(2):
        assert got[i].item() == pytest.approx(loop_ssim(x[i, 0].double().numpy(), y[i, 0].double().numpy()), rel=1e-9)
    assert ssim_images(x, x).tolist() == pytest.approx([1.0, 1.0])


def test_infomec_discrete_path_uses_the_plug_in_mi():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(0)
    f = rng.integers(0, 4, (3000, 2))
    z = np.stack([f[:, 0] * 0.25 - 0.5, f[:, 1] * 0.1, np.zeros(3000)], 1)  # codebook-like values, one dead latent
    v, s = infomec(z, f)
    assert s["latents"].startswith("discrete") and s["active_latents"] == [0, 1]
    h1 = mutual_info_score(f[:, 1], f[:, 1])
    assert s["nmi"][1][0] == pytest.approx(mutual_info_score(f[:, 1], f[:, 0]) / h1)  # plug-in, tiny but not 0
    assert s["nmi"][0][0] == pytest.approx(1.0)
    assert v["m"] == pytest.approx(1.0, abs=0.01) and v["c"] == pytest.approx(1.0, abs=0.01) and v["e"] > 0.99


def test_subspace_vote_share():
    votes = np.array([[8, 2, 0, 0, 0], [0, 0, 5, 5, 0], [1, 0, 0, 0, 9]])  # factors × dims
    layout = {0: [0, 1], 1: [2, 3]}  # factor 2 untargeted: its right place is the residual dim 4
    assert subspace_vote_share(votes, layout) == pytest.approx((10 + 10 + 9) / 30)
    # scored columns that skip a collapsed dim 1: the columns are dims 0, 2, 3, 4
    assert subspace_vote_share(votes[:, [0, 2, 3, 4]], layout, dims=[0, 2, 3, 4]) == pytest.approx(27 / 28)


def tiny(**over) -> dict:
    cfg = json.loads(json.dumps(TINY))
    for key, value in over.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


@pytest.fixture
def run(cli, tmp_path):
    def go(cfg: dict, *extra: str):
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = tmp_path / "run"
        code, stdout, err = cli("train", "--config", path, "--out", out, "--quiet", *extra)
        assert code == 0, err
        return out

    return go


def test_qlae_trains_codes_that_take_only_codebook_values(run, cli, tmp_path):
    out = run(
        tiny(
            **{
                "model.quantize": {"values": 6},
                "model.latent_dim": 4,
                "objective.divergence": {"type": "none"},
                "objective.terms": [{"type": "quantize"}],
                "train.optimizer": "adamw",
                "train.weight_decay": 0.1,
                "train.grad_clip": 1.0,
                "train.schedule": "constant",  # this tiny run collapses 3 of 4 codes under cosine decay
                "score.metrics": ["lps", "infomec"],
            }
        )  # fmt: skip
    )
    ck = load_checkpoint(out / "last.safetensors")
    model = ck.build_model()
    images, _ = ck.config.data.build(0).heldout(200)
    z = model.embed(images)
    book = model.quantizer.codebook.detach()
    for j in range(4):
        assert set(z[:, j].tolist()) <= set(book[j].tolist())
    assert any(r.get("quantize") is not None for r in read_jsonl(out / "metrics.jsonl") if "loss" in r)
    scores = json.loads((out / "scores.json").read_text())
    assert scores["settings"]["infomec"]["latents"].startswith("discrete")
    code, _, err = cli("traverse", out, "--dim", "0", "--out", tmp_path / "q.png", "--seeds", "2")
    assert code == 0, err  # auto range: the codebook, one column per value


def test_xfactors_scores_its_subspaces_and_swaps(run, cli, tmp_path):
    out = run(
        tiny(
            **{
                "model.latent_dim": 6,
                "model.stochastic": True,
                "objective.divergence": {"type": "kl", "weight": 1e-6, "dim_weights": [1, 1, 1, 1, 5, 5]},
                "objective.terms": [{"type": "infonce", "factors": [1, 3], "temperature": 0.07}],
                "score.metrics": ["factorvae"],
            }
        )  # fmt: skip
    )
    code, stdout, err = cli("score", out, "--json", "-m", "factorvae", "--votes", "300")
    assert code == 0, err
    r = json.loads(stdout)
    assert 0.0 <= r["factorvae_subspace"] <= 1.0 and r["settings"]["subspaces"] == {"1": [0, 1], "3": [2, 3]}
    png = tmp_path / "swap.png"
    code, stdout, err = cli("traverse", out, "--swap", "--out", png, "--seeds", "3")
    assert code == 0, err
    assert png.is_file() and "3 pairs × 4 columns" in stdout
    code, _, err = cli("traverse", out, "--swap", "--dim", "1", "--out", png)
    assert code == 2 and "--swap" in err


def test_swap_needs_subspaces(run, cli, tmp_path):
    out = run(tiny(**{"score.metrics": ["lps"]}))
    code, _, err = cli("traverse", out, "--swap", "--out", tmp_path / "s.png")
    assert code == 2 and "no factor subspaces" in err


def test_aux_vae_aligns_its_auxiliary_latents_with_their_factors(run, cli):
    """Known answer: on dSprites a short Aux-VAE run makes each auxiliary latent track its factor (|corr| ≥ 0.8)."""
    out = run(
        tiny(
            **{
                "model.latent_dim": 4,
                "model.stochastic": True,
                "model.layers": 3,
                "model.width": 16,
                "prior": {"type": "conditional", "factors": ["pos_x", "pos_y"]},
                "objective.divergence": {"type": "kl", "weight": 0.005},
                "objective.terms": [{"type": "corr_inter", "weight": 0.4}, {"type": "corr_intra", "weight": 0.5}],
                "train.steps": 250,
                "train.batch_size": 64,
                "train.eval_every": 250,
                "train.save_every": 250,
                "score.n": 300,
                "score.metrics": ["aux_corr", "lds"],
            }
        )  # fmt: skip
    )
    scores = json.loads((out / "scores.json").read_text())
    assert scores["aux_corr"]["pos_x"] >= 0.8 and scores["aux_corr"]["pos_y"] >= 0.8, scores["aux_corr"]
