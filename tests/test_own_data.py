"""Your data in one flag (issue 22, point 1): `sculpt train --preset P --data FILE_OR_DIR`, the old data type's keys
left out, a preset's held-out sizes fitted to a small split, images padded for the model, every problem in one
message, and every fix a message suggests a valid override."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path
from typing import Annotated, Union, get_args, get_origin

import numpy as np
import torch
import yaml
from pydantic import BaseModel

from sculptcli.cli.train import _data_flag
from sculptcli.config import RunConfig, load_config
from sculptcli.training.health import input_scale_warning
from tests.conftest import assert_user_error

# a small net and the linear probe only: the end-to-end test takes seconds
SMALL = ["model.width=4", "model.fc_hidden=16", "train.batch_size=16", "train.eval_probes=[linear]"]


def _file(tmp_path: Path, n: int = 200) -> Path:
    """A file of n random 28×28 grayscale images: the new user's "small file of 28×28 images"."""
    path = tmp_path / "my.npz"
    np.savez(path, images=np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8))
    return path


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines at the terminal width


def test_data_flag_trains_a_preset_recipe_on_a_tensor_file(cli, tmp_path):
    f = _file(tmp_path)
    code, out, err = cli(
        "train", "--preset", "mnist-mmd-gaussian", "--data", f, "--max-steps", "1", "--out", tmp_path / "run",
        "--no-score", *SMALL,
    )  # fmt: skip
    assert code == 0, err
    said = _flat(out)
    assert "data.type mnist → tensor: the preset's data keys of mnist are left out (pad_to, root)" in said
    assert "28×28 images are padded to 32×32 (data.pad_to=32)" in said
    assert "train.eval_n 10000 → 20: the held-out split has 20 images" in said
    assert "score.n 10000 → 20" in said
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["data"]["type"] == "tensor" and cfg["data"]["path"] == str(f.resolve())
    assert cfg["data"]["pad_to"] == 32 and cfg["train"]["eval_n"] == 20 and cfg["score"]["n"] == 20
    assert (tmp_path / "run" / "curves.png").is_file()


def test_sizes_given_on_the_command_line_stay_strict_and_every_problem_is_in_one_message(cli, tmp_path):
    f = _file(tmp_path)
    result = cli(
        "train", "--preset", "mnist-mmd-gaussian", "--data", f, "--max-steps", "1", "--out", tmp_path / "run", "-q",
        "train.eval_n=1000", "score.n=5000", "data.pad_to=30", *SMALL,
    )  # fmt: skip
    assert_user_error(result, "3 problems", "train.eval_n is 1000", "score.n is 5000", "divisible by 16, got 30x30")
    assert not (tmp_path / "run").exists()


def test_changing_data_type_by_override_drops_the_old_keys(tmp_path):
    f = _file(tmp_path)
    notes: list[str] = []
    cfg = load_config("galaxy-mmd-gaussian", overrides=["data.type=tensor", f"data.path={f}"], notes=notes)
    assert cfg.data.type == "tensor" and cfg.data.heldout == 0.1  # galaxy's heldout count is not carried over
    assert notes[0].startswith("data.type galaxy → tensor") and "(heldout, n, pad_to)" in notes[0]
    assert "data.pad_to=32" in notes[1]  # 28×28 under the quick budget's 4 layers (galaxy's own 64 left out)
    kept = load_config("galaxy-mmd-gaussian", overrides=["data.type=tensor", f"data.path={f}", "data.pad_to=48"])
    assert kept.data.pad_to == 48  # a key of the new type given with the switch is kept
    same: list[str] = []
    load_config("galaxy-mmd-gaussian", overrides=["data.n=2000", "data.heldout=200"], notes=same)
    assert same == []  # no switch, no note


def test_data_flag_maps_files_and_folders_and_refuses_the_rest(cli, tmp_path):
    (tmp_path / "imgs").mkdir()
    assert _data_flag(tmp_path / "imgs")[0] == "data.type=folder"
    assert _data_flag(_file(tmp_path)) == ["data.type=tensor", f'data.path="{(tmp_path / "my.npz").resolve()}"']
    (tmp_path / "x.csv").write_text("1,2\n")
    assert_user_error(cli("train", "--preset", "mnist-mmd-gaussian", "--data", tmp_path / "x.csv"), ".csv")
    assert_user_error(cli("train", "--preset", "mnist-mmd-gaussian", "--data", tmp_path / "nope"), "no such file")


# ---------------------------------------------------------------- every suggested fix is an override that works

DOTTED = re.compile(r"(?<![\w.\-/])([a-z_]+(?:\.[a-z_0-9]+)+)=")
BARE = re.compile(r"\b(?:consider|set|use|or|with|give)\s+`?([a-z_]+)=")
NOT_CONFIG = {"allow_pickle", "test_frac", "trust_code", "dim"}  # Python keyword arguments named in messages


def _suggestions() -> list[tuple[str, str]]:
    out = []
    for p in sorted(Path(__file__).parents[1].joinpath("sculptcli").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out += [(f"{p.name}:{node.lineno}", m.group(1)) for m in DOTTED.finditer(node.value)]
                out += [(f"{p.name}:{node.lineno}", m.group(1)) for m in BARE.finditer(node.value)]
    return out


def _specs(ann) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    if get_origin(ann) in (Annotated, Union, types.UnionType, list):
        return [c for a in get_args(ann) for c in _specs(a)]
    return []


def _known(path: str) -> bool:
    """Whether `path` names a config key (for a union such as data or model: a key of any registered member)."""
    classes: list[type[BaseModel]] = [RunConfig]
    for i, part in enumerate(path.split(".")):
        fields = [c.model_fields[part] for c in classes if part in c.model_fields]
        if not fields:
            return False
        if i < len(path.split(".")) - 1:
            classes = [c for f in fields for c in _specs(f.annotation)]
    return True


def test_every_suggested_override_names_a_config_key():
    found = _suggestions()
    assert any(k == "objective.recon" for _, k in found)  # the faint-image advice is among them
    bad = [(where, key) for where, key in found if key not in NOT_CONFIG and not _known(key)]
    assert bad == []


def test_the_faint_image_advice_runs(tmp_path):
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 4, 4] = 0.02
    advice = input_scale_warning(x, standardised=True) + " " + input_scale_warning(x, standardised=False)
    fixes = re.findall(r"(?<![\w.])((?:objective|data|model)\.[a-z_.]+=[a-z_]+)", advice)
    assert "objective.recon=log_mse" in fixes and "data.normalize=asinh" in fixes and "model.input_norm=data" in fixes
    f = _file(tmp_path, 40)
    for fix in fixes:
        load_config("mnist-mmd-gaussian", overrides=["data.type=tensor", f"data.path={f}", fix])
