"""A campaign of generated malformed inputs: configs, overrides, prior files, checkpoints and latents files. Each must
exit 2 with a short message (`error: …`, naming what is wrong), no traceback, nothing written, no code executed.

The cases are generated from valid inputs by rule (every key of the tiny config with a value of the wrong type, sign
or range; truncations of a real checkpoint at many offsets; …), so the campaign grows with the schema. The count per
category is printed by `pytest tests/test_fuzz_inputs.py -s` (the summary test runs last)."""

import copy
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from tests.conftest import TINY

SENTINEL = "PWNED"  # a pickle payload would create this file


def leaves(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += leaves(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def set_path(d: dict, path: str, value) -> dict:
    d = copy.deepcopy(d)
    node = d
    *head, last = path.split(".")
    for p in head:
        node = node[p]
    node[last] = value
    return d


def del_path(d: dict, path: str) -> dict:
    d = copy.deepcopy(d)
    node = d
    *head, last = path.split(".")
    for p in head:
        node = node[p]
    del node[last]
    return d


# ---------------------------------------------------------------- configs: (name, YAML text)


def config_cases() -> list[tuple[str, str]]:
    cases = []
    for path, value in leaves(TINY):
        if path.endswith(".type") or isinstance(value, list):
            continue
        bad = ["not-a-value", [1, 2], {"x": 1}]
        if isinstance(value, bool):
            bad = ["maybe", [True]]
        elif isinstance(value, int | float):
            bad += [-1, -1e9] + ([0.5] if isinstance(value, int) else [])
        for b in bad:
            cases.append((f"{path}={b!r}", yaml.safe_dump(set_path(TINY, path, b))))
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        typo = path.rsplit(".", 1)[-1] + "x"
        if parent:
            cases.append((f"unknown {parent}.{typo}", yaml.safe_dump(set_path(TINY, f"{parent}.{typo}", 1))))
    for section in ("data", "model", "objective.divergence"):
        cases.append((f"{section}.type unknown", yaml.safe_dump(set_path(TINY, f"{section}.type", "nosuch"))))
        cases.append((f"{section}.type missing", yaml.safe_dump(del_path(TINY, f"{section}.type"))))
    for section in ("data", "model", "train"):
        cases.append((f"{section} missing", yaml.safe_dump(del_path(TINY, section))))
    for value in ("nan", ".inf", "-.inf"):
        cases.append((f"train.lr={value}", yaml.safe_dump(TINY).replace("lr: 0.001", f"lr: {value}")))
    structural = {
        "empty": "",
        "a list": "- 1\n- 2\n",
        "a scalar": "42\n",
        "binary": "\x00\x01\x02garbage",
        "unclosed flow": "data: {type: dsprites\n",
        "tab indent": "data:\n\ttype: dsprites\n",
        "duplicate key": yaml.safe_dump(TINY) + "seed: 3\nseed: 4\n",
        "duplicate nested key": "train: {lr: 1, lr: 2}\n"
        + yaml.safe_dump({k: v for k, v in TINY.items() if k != "train"}),
        "python tag": "data: !!python/object/apply:os.system ['touch PWNED']\n",
        "python name tag": "seed: !!python/name:os.system\n",
        "bad float tag": yaml.safe_dump(TINY) + 'name: !!float "abc"\n',
        "bad int tag": yaml.safe_dump(TINY) + 'name: !!int "x"\n',
        "deep list": "seed: " + "[" * 3000 + "]" * 3000 + "\n",
        "deep map": "seed: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n",
        "seed huge": yaml.safe_dump(set_path(TINY, "seed", 2**64)),
        "seed negative": yaml.safe_dump(set_path(TINY, "seed", -3)),
        "epochs absurd": yaml.safe_dump(set_path(del_path(TINY, "train.steps"), "train.epochs", 1e300)),
        "steps absurd": yaml.safe_dump(set_path(TINY, "train.steps", 10**15)),
        "steps and epochs": yaml.safe_dump(set_path(TINY, "train.epochs", 2)),
        "no steps or epochs": yaml.safe_dump(del_path(TINY, "train.steps")),
        "budget not a map": yaml.safe_dump({**TINY, "budgets": 3}),
        "budget value not a map": yaml.safe_dump({**TINY, "budgets": {"quick": 1}}),
        "layers 7 on 64x64": yaml.safe_dump(set_path(TINY, "model.layers", 7)),
        "fc_hidden huge": yaml.safe_dump(set_path(TINY, "model.fc_hidden", 10**9)),
        "batch beyond data": yaml.safe_dump(set_path(TINY, "train.batch_size", 10**7)),
        "latent_dim 0": yaml.safe_dump(set_path(TINY, "model.latent_dim", 0)),
        "prior dims mismatch": yaml.safe_dump(
            {**TINY, "prior": {"type": "mvn", "mean": [0, 0], "cov": [[1, 0], [0, 1]]}}
        ),  # noqa: E501
        "prior missing file": yaml.safe_dump({**TINY, "prior": "no/such/prior.yaml"}),
        "kl with deterministic encoder": yaml.safe_dump(set_path(TINY, "objective.divergence", {"type": "kl"})),
        "conditional unknown factor": yaml.safe_dump({**TINY, "prior": {"type": "conditional", "factors": ["x"]}}),
        "term without its prior": yaml.safe_dump(set_path(TINY, "objective.terms", [{"type": "corr_intra"}])),
        "unknown term": yaml.safe_dump(set_path(TINY, "objective.terms", [{"type": "nosuch"}])),
        "weight decay with adam": yaml.safe_dump(set_path(TINY, "train.weight_decay", 0.1)),
        "quantize stochastic": yaml.safe_dump(
            set_path(set_path(TINY, "model.quantize", {"values": 4}), "model.stochastic", True)
        ),
    }
    cases += list(structural.items())
    return cases


# ---------------------------------------------------------------- overrides: (name, list of key=value)


def override_cases() -> list[tuple[str, list[str]]]:
    cases = [
        ("no value", ["train.lr"]),
        ("no key", ["=3"]),
        ("unknown top key", ["trian.lr=1"]),
        ("unknown nested key", ["train.learning_rate=1"]),
        ("through a scalar", ["train.lr.x=1"]),
        ("prior file missing", ["prior=nope.yaml"]),
        ("bad prior type", ["prior.type=nosuch"]),
        ("stray word", ["foo"]),
        ("unknown dataset", ["data.type=mnistt"]),
        ("deep value", ["seed=" + "[" * 3000]),
        # held-out sizes given on the command line stay strict (a config file's shrink to the split, with a note)
        ("eval_n beyond held-out", ["train.eval_n=1000"]),
        ("score.n beyond held-out", ["score.n=5000"]),
    ]
    for path, value in leaves(TINY):
        if path.endswith(".type") or isinstance(value, list | bool):
            continue
        cases.append((f"{path} string", [f"{path}=abc"]))
        if isinstance(value, int | float) and value > 0:
            cases.append((f"{path} negative", [f"{path}=-5"]))
        cases.append((f"{path} mapping", [f"{path}={{a: 1}}"]))
    return cases


# ---------------------------------------------------------------- prior files: (name, YAML text)


def prior_cases() -> list[tuple[str, str]]:
    good = {
        "gaussian": {"type": "gaussian", "mean": 0.0, "std": 1.0},
        "uniform": {"type": "uniform", "low": -1.0, "high": 1.0},
        "laplace": {"type": "laplace", "loc": 0.0, "scale": 1.0},
        "gmm": {"type": "gmm", "means": [-1.0, 1.0], "stds": 0.5},
        "mvn": {"type": "mvn", "mean": [0.0, 0.0], "cov": [[1.0, 0.0], [0.0, 1.0]]},
        "ring": {"type": "ring", "radius": 2.0, "noise": 0.1},
        "product": {"type": "product", "blocks": [{"type": "gaussian", "dims": 2}, {"type": "uniform"}]},
        "conditional": {"type": "conditional", "factors": [0]},
    }
    cases = []
    for name, spec in good.items():
        for key in spec:
            if key == "type":
                continue
            for bad in ("abc", {"x": 1}, None, -1, float("nan")):
                if bad == -1 and key in ("mean", "loc", "low", "means"):
                    continue
                cases.append((f"{name}.{key}={bad!r}", yaml.safe_dump({**spec, key: bad})))
        cases.append((f"{name} unknown key", yaml.safe_dump({**spec, "sdt": 1})))
        cases.append((f"{name} dims 0", yaml.safe_dump({**spec, "dims": 0})))
    cases += [
        ("unknown type", "type: gausian\n"),
        ("no type", "mean: 0\n"),
        ("uniform reversed", "type: uniform\nlow: 2\nhigh: 1\n"),
        ("gmm weights", "type: gmm\nmeans: [0, 1]\nweights: [0.9, 0.9]\n"),
        ("mvn not PD", "type: mvn\nmean: [0, 0]\ncov: [[1, 2], [2, 1]]\n"),
        ("mvn not square", "type: mvn\nmean: [0, 0]\ncov: [[1, 0]]\n"),
        ("empty", ""),
        ("list", "- 1\n"),
        ("python tag", "type: !!python/object/apply:os.system ['touch PWNED']\n"),
        ("duplicate", "type: gaussian\nstd: 1\nstd: 2\n"),
        ("deep", "type: " + "[" * 4000 + "]" * 4000 + "\n"),
        ("binary", "\x00\xff\xfe"),
        ("empirical missing source", "type: empirical\nsource: nope.npy\n"),
        ("empirical both", "type: empirical\nsource: a.npy\ncheckpoint: b\n"),
        ("transform bad fn", "type: transform\nfn: nosuch\nbase: {type: gaussian}\n"),
        ("product in product conditional", "type: product\nblocks: [{type: conditional, factors: [0]}]\n"),
    ]
    return cases


# ---------------------------------------------------------------- checkpoints: (name, writer(path, good))


def checkpoint_cases(good: Path) -> list[tuple[str, object]]:
    raw = good.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    cases = []
    for frac in np.linspace(0, 1, 31)[:-1]:  # truncated at 30 offsets, through header and tensors
        cut = int(frac * len(raw))
        cases.append((f"truncated at {cut}", lambda p, c=cut: p.write_bytes(raw[:c])))
    for cut in (1, 7, 8, 9, header_len // 2, header_len + 7, header_len + 8):
        cases.append((f"truncated at byte {cut}", lambda p, c=cut: p.write_bytes(raw[:c])))
    for n in (2**40, 2**63, 2**64 - 1, 0, 3):
        cases.append((f"header length {n}", lambda p, n=n: p.write_bytes(struct.pack("<Q", n) + raw[8:])))
    cases.append(("header not JSON", lambda p: p.write_bytes(struct.pack("<Q", 10) + b"not json!!" + raw[8:])))
    flipped = raw[:8] + raw[8 : 8 + header_len][::-1] + raw[8 + header_len :]
    cases.append(("flipped header", lambda p: p.write_bytes(flipped)))

    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    weight = next(k for k in tensors if k.startswith("model.") and k.endswith("weight"))

    def variant(change):
        def write(p):
            t, m = dict(tensors), dict(meta)
            change(t, m)
            save_file(t, str(p), metadata=m)

        return write

    cases += [
        ("wrong dtype", variant(lambda t, m: t.__setitem__(weight, t[weight].to(torch.int8)))),
        ("wrong shape", variant(lambda t, m: t.__setitem__(weight, t[weight].flatten()))),
        ("missing weight", variant(lambda t, m: t.pop(weight))),
        ("extra weight", variant(lambda t, m: t.__setitem__("model.extra.weight", torch.zeros(3)))),
        ("nan weight", variant(lambda t, m: t.__setitem__(weight, torch.full_like(t[weight], float("nan"))))),
        ("foreign format", variant(lambda t, m: m.__setitem__("format", "something-else"))),
        ("no metadata", lambda p: save_file(tensors, str(p))),
        ("config not JSON", variant(lambda t, m: m.__setitem__("config", "{oops"))),
        ("config invalid", variant(lambda t, m: m.__setitem__("config", json.dumps({"model": 1})))),
        ("step not a number", variant(lambda t, m: m.__setitem__("step", "many"))),
        ("foreign safetensors", lambda p: save_file({"w": torch.zeros(2, 2)}, str(p), metadata={"a": "b"})),
        ("empty file", lambda p: p.write_bytes(b"")),
        ("text file", lambda p: p.write_text("hello")),
        ("pickle", lambda p: p.write_bytes(pickle.dumps(_Payload()))),
        ("torch.save .pt bytes", lambda p: torch.save({"model": torch.zeros(2)}, p)),
        ("a directory", lambda p: p.mkdir()),
    ]
    return cases


class _Payload:
    def __reduce__(self):
        return (open, (SENTINEL, "w"))


# ---------------------------------------------------------------- latents files: (name, suffix, writer)


def latents_cases() -> list[tuple[str, str, object]]:
    def st(t: dict):
        return lambda p: save_file(t, str(p))

    def npz(**arrays):
        return lambda p: np.savez(p, **arrays)

    z = torch.randn(100, 3)
    cases = [
        ("1-D", ".safetensors", st({"latents": torch.randn(100)})),
        ("3-D", ".safetensors", st({"latents": torch.randn(10, 3, 2)})),
        ("d = 1", ".safetensors", st({"latents": torch.randn(100, 1)})),
        ("0 rows", ".safetensors", st({"latents": torch.zeros(0, 3)})),
        ("1 row", ".safetensors", st({"latents": torch.randn(1, 3)})),
        ("19 rows", ".safetensors", st({"latents": torch.randn(19, 3)})),
        ("NaN", ".safetensors", st({"latents": z.clone().index_fill_(0, torch.tensor([5]), float("nan"))})),
        ("inf", ".safetensors", st({"latents": z.clone().index_fill_(0, torch.tensor([7]), float("inf"))})),
        ("int", ".safetensors", st({"latents": torch.randint(0, 5, (100, 3))})),
        ("bool", ".safetensors", st({"latents": torch.ones(100, 3, dtype=torch.bool)})),
        ("no latents tensor", ".safetensors", st({"codes": z})),
        ("factors rows mismatch", ".safetensors", st({"latents": z, "factors": torch.zeros(99, 2)})),
        ("factors 1-D", ".safetensors", st({"latents": z, "factors": torch.zeros(100)})),
        ("npz object array", ".npz", npz(latents=np.array([object(), 1], dtype=object))),
        ("npz strings", ".npz", npz(latents=np.array([["a", "b"]] * 30))),
        ("npz complex", ".npz", npz(latents=np.ones((30, 2), dtype=complex))),
        ("npz 0 rows", ".npz", npz(latents=np.zeros((0, 2)))),
        ("npz NaN", ".npz", npz(latents=np.full((30, 2), np.nan))),
        ("npz no latents", ".npz", npz(x=np.zeros((30, 2)))),
        ("npz pickle", ".npz", lambda p: p.write_bytes(pickle.dumps(_Payload()))),
        (
            "truncated npz",
            ".npz",
            lambda p: (np.savez(p, latents=np.zeros((50, 2))), p.write_bytes(p.read_bytes()[:40])),
        ),  # noqa: E501
        ("wrong suffix", ".txt", lambda p: p.write_text("1 2\n3 4\n")),
        (
            "truncated safetensors",
            ".safetensors",
            lambda p: (save_file({"latents": z}, str(p)), p.write_bytes(p.read_bytes()[:50])),
        ),  # noqa: E501
        ("pickle as safetensors", ".safetensors", lambda p: p.write_bytes(pickle.dumps(_Payload()))),
        ("empty", ".safetensors", lambda p: p.write_bytes(b"")),
    ]
    return cases


# ---------------------------------------------------------------- the campaign


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def expect_clean_error(result, root: Path, before: set[str], allowed: set[str] = frozenset()) -> None:
    code, out, err = result
    assert code == 2, (code, out[-400:], err[-400:])
    assert err.startswith("error:") and len(err.strip()) > len("error:") + 5, err
    assert "Traceback" not in out + err
    assert not (root / SENTINEL).exists(), "a payload ran"
    assert snapshot(root) - before - set(allowed) == set(), snapshot(root) - before  # nothing written


@pytest.fixture(scope="module")
def good_checkpoint(tiny_run):
    return tiny_run / "last.safetensors"


def _ids(cases) -> list[str]:
    return [str(c[0])[:60] for c in cases]


CONFIG_CASES, OVERRIDE_CASES, PRIOR_CASES, LATENTS_CASES = (
    config_cases(),
    override_cases(),
    prior_cases(),
    latents_cases(),
)


@pytest.mark.parametrize(("name", "text"), CONFIG_CASES, ids=_ids(CONFIG_CASES))
def test_malformed_config(cli, tmp_path, name, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    before = snapshot(tmp_path)
    expect_clean_error(cli("train", "--config", path, "--out", tmp_path / "out"), tmp_path, before)


@pytest.mark.parametrize(("name", "overrides"), OVERRIDE_CASES, ids=_ids(OVERRIDE_CASES))
def test_malformed_override(cli, tmp_path, name, overrides):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    before = snapshot(tmp_path)
    result = cli("train", "--config", tmp_path / "tiny.yaml", "--out", tmp_path / "o", *overrides)
    expect_clean_error(result, tmp_path, before)


@pytest.mark.parametrize("i", range(len(PRIOR_CASES)), ids=_ids(PRIOR_CASES))
def test_malformed_prior_file(cli, tmp_path, i):
    path = tmp_path / "p.yaml"
    path.write_text(PRIOR_CASES[i][1], encoding="utf-8", errors="surrogateescape")
    before = snapshot(tmp_path)
    expect_clean_error(cli("prior", "validate", path), tmp_path, before)
    if i % 4 == 0:  # the same file as a run's prior
        cfg = tmp_path / "pc.yaml"
        cfg.write_text(yaml.safe_dump({**TINY, "prior": str(path)}))
        before = snapshot(tmp_path)
        expect_clean_error(cli("train", "--config", cfg, "--out", tmp_path / "po"), tmp_path, before)


def test_malformed_checkpoints(cli, tmp_path, good_checkpoint):
    """Every case runs; the failures are reported together (the cases are built from a trained checkpoint, so they
    are not parametrized at collection)."""
    failures = []
    cases = checkpoint_cases(good_checkpoint)
    for i, (name, write) in enumerate(cases):
        path = tmp_path / f"k{i}.safetensors"
        write(path)
        before = snapshot(tmp_path)
        for args in (("score", path, "--json", "--probes", "linear", "--n", "50"),
                     ("traverse", path, "--dim", "0", "--out", tmp_path / f"t{i}.png")):  # fmt: skip
            try:
                expect_clean_error(cli(*args), tmp_path, before)
            except AssertionError as e:
                failures.append(f"{name} ({args[0]}): {str(e).splitlines()[0][:200]}")
    assert not failures, f"{len(failures)} of {2 * len(cases)} checkpoint cases failed:\n" + "\n".join(failures)


@pytest.mark.parametrize("i", range(len(LATENTS_CASES)), ids=_ids(LATENTS_CASES))
def test_malformed_latents_file(cli, tmp_path, i):
    _name, suffix, write = LATENTS_CASES[i]
    path = tmp_path / f"z{suffix}"
    write(path)
    before = snapshot(tmp_path)
    expect_clean_error(cli("score", "--latents", path, "--json", "-m", "basic"), tmp_path, before)


def test_campaign_size():
    """The campaign's size by category, known at collection (each case above is its own test)."""
    counts = {
        "configs": len(CONFIG_CASES),
        "overrides": len(OVERRIDE_CASES),
        "prior files": len(PRIOR_CASES) + len(range(0, len(PRIOR_CASES), 4)),
        "latents files": len(LATENTS_CASES),
    }
    assert sum(counts.values()) >= 250, counts
    assert all(v >= 10 for v in counts.values()), counts
