"""MNIST, CIFAR-10, Tiny ImageNet and image-folder datasets, read from tiny fakes in the real on-disk formats."""

from __future__ import annotations

import gzip
import os
import pickle
import time
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sculptcli.data import DATASETS, vision
from sculptcli.data import folder as folder_mod
from sculptcli.errors import UserError
from tests.conftest import assert_user_error, small_config

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- fake data in the real formats


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def fake_mnist(root: Path, gz: bool = False, nested: bool = True) -> dict[str, np.ndarray]:
    d = root / "MNIST" / "raw" if nested else root
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": RNG.integers(0, 10, 40, dtype=np.uint8),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": RNG.integers(0, 10, 12, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(d / (name + (".gz" if gz else "")), arr)
    return arrays


def cifar_batches(n_train: int = 6, n_test: int = 10) -> list[tuple[str, np.ndarray, list[int]]]:
    out = []
    for i in range(1, 6):
        out.append((f"data_batch_{i}", RNG.integers(0, 256, (n_train, 3072), dtype=np.uint8), []))
    out.append(("test_batch", RNG.integers(0, 256, (n_test, 3072), dtype=np.uint8), []))
    return [(name, data, RNG.integers(0, 10, len(data)).tolist()) for name, data, _ in out]


def fake_cifar_py(root: Path, keys: str = "bytes", protocol: int = 2) -> list:
    """The python version: one pickled dict per batch (bytes keys as in the official Python 2 files)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    k = (lambda s: s.encode()) if keys == "bytes" else (lambda s: s)
    batches = cifar_batches()
    for name, data, labels in batches:
        obj = {
            k("batch_label"): k(f"batch {name}"),
            k("labels"): labels,
            k("data"): data,
            k("filenames"): [k(f"img_{i}.png") for i in range(len(data))],
        }
        (d / name).write_bytes(pickle.dumps(obj, protocol=protocol))
    meta = {k("num_cases_per_batch"): 6, k("label_names"): [k(f"class{i}") for i in range(10)], k("num_vis"): 3072}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return batches


def fake_cifar_bin(root: Path) -> list:
    """The binary version: records of 1 label byte + 3072 pixel bytes."""
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    batches = cifar_batches()
    for name, data, labels in batches:
        rec = np.concatenate([np.asarray(labels, np.uint8)[:, None], data], axis=1)
        (d / f"{name}.bin").write_bytes(rec.tobytes())
    (d / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)))
    return batches


WNIDS = ["n02", "n01", "n03"]  # deliberately unsorted: label = position in sorted order


def fake_tiny(root: Path, per_class: int = 4) -> Path:
    tree = root / "tiny-imagenet-200"
    (tree / "val" / "images").mkdir(parents=True)
    (tree / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for w in WNIDS:
        d = tree / "train" / w / "images"
        d.mkdir(parents=True)
        (tree / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in range(per_class):
            Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{i}.JPEG", "JPEG")
    lines = []
    for i in range(8):
        w = WNIDS[i % 3]
        Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            tree / "val" / "images" / f"val_{i}.JPEG", "JPEG"
        )
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (tree / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tree


def age_tree(top: Path, seconds: float = 100.0) -> None:
    """Set every mtime under `top` into the past, so a cache written now is strictly newer."""
    t = time.time() - seconds
    for dirpath, _, files in os.walk(top):
        for f in files:
            os.utime(Path(dirpath) / f, (t, t))
        os.utime(dirpath, (t, t))


def fake_folder(root: Path, classes: bool, n: int = 12, size: int = 16) -> dict[str, np.ndarray]:
    """PNG images (lossless), flat or in class subfolders; returns relative name -> RGB pixels (H, W, 3)."""
    out = {}
    for i in range(n):
        rel = f"c{i % 2}/img{i:02d}.png" if classes else f"img{i:02d}.png"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        px = RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(px).save(p)
        out[rel] = px
    return out


def build(type_: str, seed: int = 0, **fields):
    return DATASETS.get(type_)(**fields).build(seed, "cpu")


def check_common(data, n_train: int, n_held: int, shape: tuple[int, int, int]) -> None:
    assert data.shape == shape and data.n_train == n_train and data.binary is False
    assert data.images.dtype == torch.uint8
    x = data.train_batch(1, 4).images
    assert x.shape == (4, *shape) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    im, f = data.heldout()
    assert im.shape == (n_held, *shape) and im.min() >= 0 and im.max() <= 1
    assert not set(data.heldout_index.tolist()) & set(data.train_index.tolist())


# ---------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz, nested", [(False, True), (True, True), (True, False)])
def test_mnist_reads_idx_files(tmp_path, gz, nested):
    arrays = fake_mnist(tmp_path, gz=gz, nested=nested)
    spec = DATASETS.get("mnist")(root=str(tmp_path))
    assert spec.image_shape() == (1, 32, 32)
    data = spec.build(0, "cpu")
    check_common(data, 40, 12, (1, 32, 32))
    assert data.factor_names == ("label",) and data.factor_sizes == (10,)
    im, f = data.heldout(5)
    assert f.shape == (5, 1) and f.dtype == torch.float32
    assert f[:, 0].tolist() == arrays["t10k-labels-idx1-ubyte"][:5].tolist()
    # exact pixels, centred in the 32×32 frame with a zero border of 2
    want = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][:5]).float() / 255
    assert torch.equal(im[:, 0, 2:30, 2:30], want)
    assert im[:, :, :2].abs().sum() == 0 and im[:, :, :, 30:].abs().sum() == 0
    # training batches: exact training images, deterministic for a seed
    idx = data.train_indices(3, 8)
    want = torch.from_numpy(arrays["train-images-idx3-ubyte"][idx.numpy()]).float() / 255
    assert torch.equal(data.train_batch(3, 8).images[:, 0, 2:30, 2:30], want)
    assert torch.equal(data.train_batch(3, 8).images, spec.build(0, "cpu").train_batch(3, 8).images)
    assert not torch.equal(data.train_batch(0, 8).images, spec.build(1, "cpu").train_batch(0, 8).images)


def test_mnist_unpadded_and_root_from_env(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setenv("SCULPT_DATA_DIR", str(tmp_path))
    spec = DATASETS.get("mnist")(pad_to=None)
    assert spec.image_shape() == (1, 28, 28)
    data = spec.build(0, "cpu")
    assert data.shape == (1, 28, 28) and data.heldout(2)[0].shape == (2, 1, 28, 28)
    assert spec.root == str(tmp_path.resolve())  # resolved at build and recorded in the config


def test_mnist_corrupt_files(tmp_path):
    arrays = fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    good = (raw / "train-images-idx3-ubyte").read_bytes()
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + good[4:])
    with pytest.raises(UserError, match="magic number") as e:
        build("mnist", root=str(tmp_path))
    assert "train-images-idx3-ubyte" in str(e.value)
    (raw / "train-images-idx3-ubyte").write_bytes(good[:-100])  # truncated
    with pytest.raises(UserError, match="truncated"):
        build("mnist", root=str(tmp_path))
    write_idx(raw / "train-images-idx3-ubyte", arrays["train-images-idx3-ubyte"])
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz"):
        build("mnist", root=str(tmp_path))
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match="incomplete.*t10k-labels-idx1-ubyte"):
        build("mnist", root=str(tmp_path))


# ---------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("fmt", ["py-bytes-2", "py-str-5", "bin"])
def test_cifar_both_formats_round_trip(tmp_path, fmt):
    if fmt == "bin":
        batches = fake_cifar_bin(tmp_path)
    else:
        _, keys, protocol = fmt.split("-")
        batches = fake_cifar_py(tmp_path, keys, int(protocol))
    data = build("cifar10", root=str(tmp_path))
    check_common(data, 30, 10, (3, 32, 32))
    assert data.factor_sizes == (10,)
    im, f = data.heldout()
    _, test_data, test_labels = batches[5]
    assert torch.equal(im, torch.from_numpy(test_data).view(-1, 3, 32, 32).float() / 255)
    assert f[:, 0].tolist() == test_labels
    train = np.concatenate([b[1] for b in batches[:5]]).reshape(-1, 3, 32, 32)
    idx = data.train_indices(2, 8)
    assert torch.equal(data.train_batch(2, 8).images, torch.from_numpy(train[idx.numpy()]).float() / 255)
    assert torch.equal(data.train_batch(2, 8).images, build("cifar10", root=str(tmp_path)).train_batch(2, 8).images)


class Evil:
    """A pickle payload that would create a file when unpickled by the plain pickle module."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_malicious_pickle_is_refused(tmp_path, protocol):
    fake_cifar_py(tmp_path)
    marker = tmp_path / "pwned"
    payload = {b"data": np.zeros((6, 3072), np.uint8), b"labels": Evil(marker)}
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UserError, match="refusing to load .*data_batch_3: it contains code") as e:
        build("cifar10", root=str(tmp_path))
    assert "system" in str(e.value)
    assert not marker.exists()


def test_cifar_corrupt_files(tmp_path):
    fake_cifar_py(tmp_path / "py")
    p = tmp_path / "py" / "cifar-10-batches-py" / "test_batch"
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(UserError, match="corrupt or truncated") as e:
        build("cifar10", root=str(tmp_path / "py"))
    assert "test_batch" in str(e.value)
    fake_cifar_bin(tmp_path / "bin")
    p = tmp_path / "bin" / "cifar-10-batches-bin" / "data_batch_2.bin"
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(UserError, match="3073-byte records"):
        build("cifar10", root=str(tmp_path / "bin"))
    p.unlink()
    with pytest.raises(UserError, match="incomplete.*data_batch_2.bin"):
        build("cifar10", root=str(tmp_path / "bin"))


# ---------------------------------------------------------------- missing data and downloads


@pytest.mark.parametrize(
    "type_, looked, layout",
    [
        ("mnist", "MNIST/raw", "t10k-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py", "data_batch_1.bin"),
        ("tinyimagenet", "tiny-imagenet-200/wnids.txt", "val_annotations.txt"),
    ],
)
def test_missing_data_is_a_user_error(tmp_path, type_, looked, layout):
    spec = DATASETS.get(type_)(root=str(tmp_path / "nothere"))  # validation never touches the disk
    with pytest.raises(UserError) as e:
        spec.build(0, "cpu")
    msg = str(e.value)
    assert str(tmp_path / "nothere" / looked) in msg and layout in msg
    assert "--data-dir" in msg and "--download" in msg and "data.root=DIR" in msg


@pytest.mark.parametrize("type_", ["mnist", "cifar10", "tinyimagenet"])
def test_download_without_network_is_a_user_error(tmp_path, monkeypatch, type_):
    from torchvision.datasets import utils as tv_utils

    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(UserError, match="could not download") as e:
        build(type_, root=str(tmp_path), download=True)
    assert "Name or service not known" in str(e.value) and "check the connection" in str(e.value)
    assert calls and str(tmp_path) in str(e.value)


def test_download_is_skipped_when_the_data_is_there(tmp_path, monkeypatch):
    from torchvision.datasets import utils as tv_utils

    def fail(*args, **kwargs):
        raise AssertionError("no download expected")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fail)
    fake_cifar_bin(tmp_path)
    fake_mnist(tmp_path)
    assert build("cifar10", root=str(tmp_path), download=True).n_train == 30
    assert build("mnist", root=str(tmp_path), download=True).n_train == 40


def test_validation_needs_no_data():
    for type_, shape in [("mnist", (1, 32, 32)), ("cifar10", (3, 32, 32)), ("tinyimagenet", (3, 64, 64))]:
        assert DATASETS.get(type_)(root="/no/such/dir").image_shape() == shape
    assert DATASETS.get("folder")(path="/no/such/dir", size=24, channels=1).image_shape() == (1, 24, 24)
    assert DATASETS.get("cifar10")(pad_to=40).image_shape() == (3, 40, 40)
    with pytest.raises(ValueError, match="pad_to"):
        DATASETS.get("mnist")(pad_to=20)
    with pytest.raises(ValueError, match="pad_to"):
        DATASETS.get("folder")(path="x", size=32, pad_to=16)
    with pytest.raises(ValueError, match="heldout"):
        DATASETS.get("folder")(path="x", heldout=1.5)


# ---------------------------------------------------------------- Tiny ImageNet


def test_tinyimagenet_decodes_and_caches(tmp_path, monkeypatch):
    tree = fake_tiny(tmp_path)
    age_tree(tree)
    data = build("tinyimagenet", root=str(tmp_path))
    check_common(data, 12, 8, (3, 64, 64))
    assert data.factor_sizes == (3,)
    im, f = data.heldout()
    # labels: the wnid's position in sorted wnids.txt, val in annotation order
    assert f[:, 0].tolist() == [sorted(WNIDS).index(WNIDS[i % 3]) for i in range(8)]
    want = np.array(Image.open(tree / "val" / "images" / "val_4.JPEG").convert("RGB"))
    assert torch.equal(im[4], torch.from_numpy(want).permute(2, 0, 1).float() / 255)
    train_labels = data.labels[data.train_index].tolist()
    assert train_labels == [0] * 4 + [1] * 4 + [2] * 4
    assert (tree / ".sculpt-cache-v1.safetensors").is_file()

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(vision, "decode_all", no_decode)
    again = build("tinyimagenet", root=str(tmp_path))
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)
    assert torch.equal(again.train_batch(1, 4).images, data.train_batch(1, 4).images)
    # a changed tree (an image added to a class) is decoded again
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tree / "train" / "n01" / "images" / "n01_9.JPEG")
    with pytest.raises(AssertionError, match="decoded again"):
        build("tinyimagenet", root=str(tmp_path))
    monkeypatch.undo()
    assert build("tinyimagenet", root=str(tmp_path)).n_train == 13


def test_tinyimagenet_bad_files(tmp_path):
    tree = fake_tiny(tmp_path)
    bad = tree / "train" / "n03" / "images" / "n03_1.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(UserError, match="cannot read the image") as e:
        build("tinyimagenet", root=str(tmp_path))
    assert str(bad) in str(e.value)
    (tree / "val" / "images" / "val_2.JPEG").unlink()
    bad.unlink()
    with pytest.raises(UserError, match="val_2.JPEG"):
        build("tinyimagenet", root=str(tmp_path))


# ---------------------------------------------------------------- image folders


def test_folder_flat_round_trips_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SCULPT_CACHE_DIR", str(tmp_path / "cache"))
    pixels = fake_folder(tmp_path / "imgs", classes=False)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / ".hidden.png").write_bytes(b"junk")
    spec = DATASETS.get("folder")(path=str(tmp_path / "imgs"), size=16, heldout=3, pad_to=20)
    data = spec.build(0, "cpu")
    check_common(data, 9, 3, (3, 20, 20))
    assert data.factor_names is None and data.heldout()[1] is None
    names = sorted(pixels)
    im, _ = data.heldout()
    for row, i in enumerate(data.heldout_index.tolist()):
        want = torch.from_numpy(pixels[names[i]]).permute(2, 0, 1).float() / 255
        assert torch.equal(im[row, :, 2:18, 2:18], want)
    assert torch.equal(data.heldout_index, spec.build(7, "cpu").heldout_index)  # independent of the run seed
    assert len(list((tmp_path / "cache" / "folder").glob("*.safetensors"))) == 1

    monkeypatch.setattr(folder_mod, "decode_all", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    again = spec.build(0, "cpu")
    assert torch.equal(again.images, data.images)
    assert torch.equal(again.train_batch(2, 4).images, data.train_batch(2, 4).images)


def test_folder_classes_resize_and_grayscale(tmp_path, monkeypatch):
    monkeypatch.setenv("SCULPT_CACHE_DIR", str(tmp_path / "cache"))
    fake_folder(tmp_path / "imgs", classes=True, n=10)
    Image.fromarray(np.full((10, 30), 200, np.uint8)).save(tmp_path / "imgs" / "c1" / "wide.bmp")
    (tmp_path / "imgs" / "c1" / "deeper").mkdir()
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(tmp_path / "imgs" / "c1" / "deeper" / "x.JPG")
    (tmp_path / "imgs" / "loose.png").write_bytes(b"ignored: with class folders, top-level files do not count")
    data = build("folder", path=str(tmp_path / "imgs"), size=8, channels=1, heldout=0.25)
    assert data.shape == (1, 8, 8) and data.classes == ["c0", "c1"] and data.factor_sizes == (2,)
    assert len(data.images) == 12 and data.n_train == 9
    assert data.labels.tolist() == [0] * 5 + [1] * 7
    files = folder_mod.scan((tmp_path / "imgs").resolve())[0]
    assert torch.all(data.images[files.index((tmp_path / "imgs" / "c1" / "wide.bmp").resolve())] == 200)
    im, f = data.heldout()
    assert f.shape == (3, 1) and f[:, 0].tolist() == data.labels[data.heldout_index].float().tolist()


def test_folder_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SCULPT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="image folder not found") as e:
        build("folder", path=str(tmp_path / "nothere"))
    assert str(tmp_path / "nothere") in str(e.value) and "cats/x.jpg" in str(e.value)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="no images in"):
        build("folder", path=str(tmp_path / "empty"))
    fake_folder(tmp_path / "imgs", classes=False, n=4)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(UserError, match="cannot read the image") as e:
        build("folder", path=str(tmp_path / "imgs"))
    assert "broken.jpg" in str(e.value)
    (tmp_path / "imgs" / "broken.jpg").unlink()
    with pytest.raises(UserError, match="heldout"):
        build("folder", path=str(tmp_path / "imgs"), heldout=4)


# ---------------------------------------------------------------- end to end through the CLI


def config(data: dict) -> dict:
    return small_config(data, batch_size=4, recon="mse", score_n=6)


@pytest.mark.parametrize("family", ["mnist", "cifar10", "tinyimagenet", "folder"])
def test_train_through_the_cli(cli, tmp_path, monkeypatch, family):
    monkeypatch.setenv("SCULPT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "datadir"
    if family == "mnist":
        fake_mnist(root, gz=True)
    elif family == "cifar10":
        fake_cifar_py(root)
    elif family == "tinyimagenet":
        fake_tiny(root, per_class=2)
    else:
        fake_folder(root, classes=True, n=24)
    data = (
        {"type": family, "path": str(root), "heldout": 8} if family == "folder" else {"type": family, "root": str(root)}
    )
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config(data)))
    code, out, err = cli("train", "--config", cfg, "--out", tmp_path / "run", "--max-steps", "3", "-q", "--no-score")
    assert code == 0, err
    assert (tmp_path / "run" / "last.safetensors").is_file()

    missing = tmp_path / "missing"
    key = "path" if family == "folder" else "root"
    cfg.write_text(yaml.safe_dump(config({**data, key: str(missing)})))
    fragments = [str(missing)] + ([] if family == "folder" else ["expected layout", "--data-dir", "--download"])
    assert_user_error(cli("train", "--config", cfg, "--out", tmp_path / "run2", "-q", "--no-score"), *fragments)


def test_root_is_recorded_in_the_run_config(cli, tmp_path, monkeypatch):
    root = tmp_path / "datadir"
    fake_cifar_bin(root)
    monkeypatch.setenv("SCULPT_DATA_DIR", str(root))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config({"type": "cifar10"})))
    code, out, err = cli("train", "--config", cfg, "--out", tmp_path / "run", "--max-steps", "2", "-q", "--no-score")
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["root"] == str(root.resolve())
