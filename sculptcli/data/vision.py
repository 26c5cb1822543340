"""Standard image datasets read from their official files on disk: MNIST, CIFAR-10 and Tiny ImageNet.

Where the data lives: `data.root` (the `--data-dir` option), else the environment variable SCULPT_DATA_DIR,
else `./data`. The directory is resolved when the dataset is built and written back into the run's config,
so a run records where its data came from. Nothing is downloaded unless `download: true` (`--download`)
is asked for; missing or corrupt files are a UserError that names the path looked for and the layout expected.

    mnist         ROOT/MNIST/raw/ (or ROOT itself): train-images-idx3-ubyte, train-labels-idx1-ubyte,
                  t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each may also be .gz); 1×28×28, padded to
                  32×32 by default (pad_to) so that 4 or 5 stride-2 conv layers fit. The idx files are parsed
                  here with numpy; torchvision's processed .pt files (pickles) are never read.
    cifar10       ROOT/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin (the binary version, parsed
                  with numpy) or ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch} (the python version:
                  pickles, read with an unpickler that only rebuilds numpy arrays and refuses anything else,
                  so a tampered file cannot run code); 3×32×32.
    tinyimagenet  ROOT/tiny-imagenet-200/: wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and
                  val/val_annotations.txt; 3×64×64. Decoding the 110,000 JPEGs takes minutes, so the decoded
                  uint8 arrays are cached once in ROOT/tiny-imagenet-200/.sculpt-cache-v1.safetensors and reused
                  while that file is newer than the tree's folders and index files (delete it to force a
                  re-decode; when the tree is read-only the images are decoded on every build).

Labels: the class index (MNIST digit; CIFAR-10 label; Tiny ImageNet: the wnid's position in sorted
wnids.txt) is the one factor, `label`. The held-out split is the official test split (MNIST t10k, CIFAR-10
test_batch, Tiny ImageNet val, 10,000 images each) in file order (Tiny ImageNet: the order of
val_annotations.txt); training uses the whole training split. The images stay on the device as uint8
(CIFAR-10 150 MB, Tiny ImageNet 1.2 GB); each batch is converted to float in [0, 1] and padded there.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pickle
import textwrap
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from sculptcli.data import DATASETS
from sculptcli.data.base import Batch, DataSpec, ImageData
from sculptcli.errors import UserError
from sculptcli.io import atomic_write
from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import Tensor
else:
    np = lazy("numpy")
    torch = lazy("torch")
    F = lazy("torch.nn.functional")

DATA_DIR_ENV = "SCULPT_DATA_DIR"
DEFAULT_ROOT = "data"
FIX_MISSING = "pass --data-dir DIR (data.root=DIR) pointing at it, or --download (data.download=true) to fetch it"
DECODE_THREADS = min(8, os.cpu_count() or 1)


# ---------------------------------------------------------------- shared helpers


def resolve_root(root: str | None) -> Path:
    """The data directory: `root`, else $SCULPT_DATA_DIR, else ./data, as an absolute path."""
    raw = root if root is not None else (os.environ.get(DATA_DIR_ENV) or DEFAULT_ROOT)
    return Path(raw).expanduser().resolve()


def missing_error(name: str, looked: Sequence[Path], layout: str, fix: str = FIX_MISSING) -> UserError:
    """A UserError naming the paths looked for, the expected layout (a short tree) and the fix."""
    paths = " and ".join(str(p) for p in looked)
    return UserError(f"{name} not found: looked for {paths}{layout_text(layout)}", fix=fix)


def layout_text(layout: str) -> str:
    """The expected on-disk layout, indented under the message."""
    return "\n  expected layout:\n" + textwrap.indent(layout.strip(), "    ")


def corrupt_error(path: Path, problem: str, fix: str = "re-download the file or replace it") -> UserError:
    return UserError(f"corrupt or truncated file: {problem}", where=str(path), fix=fix)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def fetch(urls: Sequence[str], root: Path, filename: str, md5: str | None, what: str) -> None:
    """Download `filename` from the first of `urls` that works into `root` and extract it there; UserError if none."""
    try:
        from torchvision.datasets import utils as tv_utils
    except ImportError:  # pragma: no cover - torchvision is a dependency
        raise UserError(
            f"cannot download {what}: torchvision is not installed", fix=f"place the files in {root} by hand"
        ) from None
    errors = []
    for url in urls:
        try:
            tv_utils.download_and_extract_archive(url, download_root=str(root), filename=filename, md5=md5)
            return
        except Exception as e:  # noqa: BLE001 - URLError, HTTPError, OSError, md5 mismatch (RuntimeError), ...
            errors.append(f"{url}: {_short(e)}")
    raise UserError(
        f"could not download {what} ({'; '.join(errors)})",
        where=str(root),
        fix=f"check the connection, or place the files in {root} by hand (then run without --download)",
    )


def decode_image(path: Path, size: int | None, mode: str) -> np.ndarray:
    """One image file -> uint8 (C, H, W). With `size`, a non-square image is centre-cropped to a square
    (its shorter side) and resized to size × size (bilinear). `mode` is a PIL mode: "L" or "RGB"."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert(mode)
            if size is not None and im.size != (size, size):
                w, h = im.size
                s = min(w, h)
                left, top = (w - s) // 2, (h - s) // 2
                im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - any decoder failure (truncated, not an image, bomb) is a bad file
        raise UserError(
            f"cannot read the image ({_short(e)})", where=str(path), fix="replace or delete the file"
        ) from None
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def decode_all(paths: Sequence[Path], out: np.ndarray, decode: Callable[[Path], np.ndarray]) -> None:
    """out[i] = decode(paths[i]) for every i, on a few threads (PIL releases the GIL while decoding)."""
    n = len(paths)
    chunk = max(1, min(1024, -(-n // (4 * DECODE_THREADS))))

    def work(start: int) -> None:
        for i in range(start, min(start + chunk, n)):
            out[i] = decode(paths[i])

    with ThreadPoolExecutor(DECODE_THREADS) as ex:
        futures = [ex.submit(work, s) for s in range(0, n, chunk)]
        try:
            for f in futures:
                f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def load_cache(path: Path, metadata: dict[str, str]) -> dict[str, Tensor] | None:
    """The tensors of a cache file written by `save_cache` with the same metadata, or None (absent or unusable)."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            if (f.metadata() or {}) != metadata:
                return None
            names = f.keys()
            return {k: f.get_tensor(k) for k in names}
    except Exception:  # noqa: BLE001 - an unreadable cache is simply rebuilt
        return None


def save_cache(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bool:
    """Write a cache file atomically; False (and nothing written) when the place is not writable."""
    from safetensors.numpy import save_file

    try:
        atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata=metadata))
        return True
    except OSError:
        return False


DEVICE_FRACTION = 0.5  # hold a set on the GPU when it takes at most this share of the free memory


def placement(nbytes: int, device: torch.device) -> str:
    """'device' when the uint8 set fits comfortably in the training device's free memory, else 'host'."""
    if device.type != "cuda":
        return "device"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if nbytes <= DEVICE_FRACTION * free else "host"


class LabelledImages(ImageData):
    """uint8 images (N, C, H, W), optional integer labels, and fixed train / held-out ids.

    A set that fits (`placement`) lives on the training device: batches are gathered there, then converted to
    float in [0, 1] and zero-padded (centred) there, with no host-to-device copy. A set too large for the GPU
    stays in (pinned) host memory: each batch is gathered on the host into one of two pinned staging buffers and
    copied asynchronously (the buffer is reused only once its previous copy has finished); its epoch
    permutations are then drawn on the CPU.
    """

    binary = False
    classes: list[str] | None = None  # the class names, where the dataset knows them

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None,
        n_classes: int | None,
        train_index: Tensor,
        heldout_index: Tensor,
        pad_to: int | None,
        seed: int,
        device: torch.device | str,
        root: Path,
        place: str = "auto",
    ):
        self.device = torch.device(device)
        self.seed = seed
        self.root = root
        self.placement = placement(images.numel() * images.element_size(), self.device) if place == "auto" else place
        home = self.device if self.placement == "device" else torch.device("cpu")
        pin = self.placement == "host" and self.device.type == "cuda"
        self.images = images.to(home).pin_memory() if pin else images.to(home)
        self._staging: list[tuple[Tensor, torch.cuda.Event | None]] = []
        self._turn = 0
        self.labels = None if labels is None else labels.long().to(self.device)
        c, h, w = (int(s) for s in images.shape[1:])
        self.pad: tuple[int, int, int, int] | None = None
        if pad_to and (pad_to != h or pad_to != w):
            top, left = (pad_to - h) // 2, (pad_to - w) // 2
            self.pad = (left, pad_to - w - left, top, pad_to - h - top)
            h = w = pad_to
        self.shape = (c, h, w)
        self.factor_names = None if labels is None else ("label",)
        self.factor_sizes = None if labels is None else (int(n_classes or 0),)
        self.train_index = train_index.long().to(home)
        self.heldout_index = heldout_index.long().to(self.device)
        self.n_train = int(train_index.numel())

    def _gather(self, ids: Tensor) -> Tensor:
        """uint8 images of `ids` on the device: a device gather, or a host gather + asynchronous copy."""
        if self.placement == "device":
            return self.images[ids.to(self.device)]
        ids = ids.cpu()
        if self.device.type != "cuda":
            return self.images[ids].to(self.device)
        if len(self._staging) < 2:
            buf = torch.empty((len(ids), *self.images.shape[1:]), dtype=torch.uint8).pin_memory()
            self._staging.append((buf, None))
        buf, done = self._staging[self._turn % len(self._staging)]
        if buf.shape[0] < len(ids):
            buf = torch.empty((len(ids), *self.images.shape[1:]), dtype=torch.uint8).pin_memory()
        elif done is not None:
            done.synchronize()  # the copy that last read this buffer has finished
        out = torch.index_select(self.images, 0, ids, out=buf[: len(ids)])
        x = out.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._staging[self._turn % len(self._staging)] = (buf, event)
        self._turn += 1
        return x

    def to_float(self, x: Tensor) -> Tensor:
        """uint8 images -> float in [0, 1], padded to the dataset's shape."""
        x = x.float().div_(255.0)
        return F.pad(x, self.pad) if self.pad else x

    def train_batch(self, step: int, batch_size: int) -> Batch:
        ids = self.train_indices(step, batch_size)
        labels = None if self.labels is None else self.labels[ids.to(self.device)].float().unsqueeze(1)
        return Batch(self.to_float(self._gather(ids)), labels)

    def train_factors(self) -> Tensor | None:
        return None if self.labels is None else self.labels[self.train_index.to(self.device)].float().unsqueeze(1)

    def heldout(self, n: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The first `n` held-out images (all if n is None), in their fixed order, and their labels as (n, 1)."""
        total = self.heldout_index.numel()
        idx = self.heldout_index[: total if n is None else max(0, min(n, total))]
        labels = None if self.labels is None else self.labels[idx].float().unsqueeze(1)
        return self.to_float(self._gather(idx)), labels


def split_build(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    spec: RootSpec,
    root: Path,
    seed: int,
    device: torch.device | str,
) -> LabelledImages:
    """A dataset whose training split is `train` and whose held-out split is `test`, in file order."""
    n_train, n_test = len(train[0]), len(test[0])
    images = torch.from_numpy(np.concatenate([train[0], test[0]]))
    labels = torch.from_numpy(np.concatenate([train[1], test[1]]).astype(np.int64))
    return LabelledImages(
        images,
        labels,
        n_classes,
        torch.arange(n_train),
        torch.arange(n_train, n_train + n_test),
        spec.pad_to,
        seed,
        device,
        root,
    )


class RootSpec(DataSpec):
    """Fields shared by the datasets read from a data directory."""

    NATIVE: ClassVar[tuple[int, int, int]] = (3, 32, 32)

    root: str | None = Field(
        None, description=f"the data directory (default: ${DATA_DIR_ENV}, else ./data); resolved at build"
    )
    download: bool = Field(False, description="fetch the dataset into root when it is not there")
    pad_to: PositiveInt | None = Field(None, description="centred zero padding to pad_to × pad_to pixels")

    @model_validator(mode="after")
    def _check_pad(self):
        c, h, w = self.NATIVE
        if self.pad_to is not None and self.pad_to < max(h, w):
            raise ValueError(f"pad_to {self.pad_to} is smaller than the {h}×{w} images")
        return self

    def has_factors(self) -> bool:
        return True

    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.NATIVE
        return (c, self.pad_to, self.pad_to) if self.pad_to else (c, h, w)

    def resolved_root(self) -> Path:
        """Resolve the data directory and record it in the spec (so the run's config names it)."""
        root = resolve_root(self.root)
        if self.root is None:
            self.root = str(root)
        return root


# ---------------------------------------------------------------- MNIST

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_LAYOUT = """
DIR/MNIST/raw/                  (or DIR itself)
├── train-images-idx3-ubyte     (each file may also be .gz)
├── train-labels-idx1-ubyte
├── t10k-images-idx3-ubyte
└── t10k-labels-idx1-ubyte
"""


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx file of unsigned bytes with `ndim` dimensions (magic 0x0000080N), plain or gzipped -> uint8 array."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise corrupt_error(path, f"cannot read it ({_short(e)})") from None
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise corrupt_error(path, f"{len(raw)} bytes is too short for an idx header")
    magic, want = int.from_bytes(raw[:4], "big"), 0x0800 | ndim
    if magic != want:
        raise corrupt_error(path, f"not an MNIST idx file (magic number {magic:#010x}, expected {want:#010x})")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - head != size:
        raise corrupt_error(path, f"holds {len(raw) - head} data bytes, its header {list(dims)} says {size}")
    return np.frombuffer(raw, np.uint8, offset=head).reshape(dims).copy()


def find_mnist(root: Path) -> dict[str, Path]:
    """The four MNIST files under root, or a UserError naming what is missing."""
    best: tuple[Path, dict[str, Path]] | None = None
    dirs = (root / "MNIST" / "raw", root)
    for d in dirs:
        found = {}
        for key, name in MNIST_FILES.items():
            for cand in (d / name, d / f"{name}.gz"):
                if cand.is_file():
                    found[key] = cand
                    break
        if len(found) == len(MNIST_FILES):
            return found
        if found and (best is None or len(found) > len(best[1])):
            best = (d, found)
    if best is not None:
        d, found = best
        lacking = ", ".join(name for key, name in MNIST_FILES.items() if key not in found)
        raise UserError(
            f"MNIST is incomplete in {d}: missing {lacking} (plain or .gz){layout_text(MNIST_LAYOUT)}", fix=FIX_MISSING
        )
    raise missing_error("MNIST", dirs, MNIST_LAYOUT)


def read_mnist(root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    files = find_mnist(root)
    out = []
    for split in ("train", "test"):
        images = read_idx(files[f"{split}_images"], 3)
        labels = read_idx(files[f"{split}_labels"], 1)
        if images.shape[1:] != (28, 28):
            raise corrupt_error(files[f"{split}_images"], f"MNIST images must be 28×28, got {list(images.shape[1:])}")
        if len(images) != len(labels) or len(images) == 0:
            raise corrupt_error(
                files[f"{split}_labels"], f"{len(labels)} labels for {len(images)} images in {files[f'{split}_images']}"
            )
        if labels.max() > 9:
            raise corrupt_error(files[f"{split}_labels"], f"label {int(labels.max())} is not a digit 0–9")
        out.append((images[:, None], labels))
    return out[0], out[1]


def download_mnist(root: Path) -> None:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    for filename, md5 in MNIST.resources:
        plain = filename.removesuffix(".gz")
        if (raw / plain).is_file() or (raw / filename).is_file():
            continue
        fetch([f"{m}{filename}" for m in MNIST.mirrors], raw, filename, md5, f"MNIST {filename}")


@DATASETS.register
class MNISTSpec(RootSpec):
    """MNIST digits (1×28×28, padded to 32×32 by default) from the official idx files; label = the digit."""

    NATIVE: ClassVar[tuple[int, int, int]] = (1, 28, 28)

    type: Literal["mnist"] = "mnist"
    pad_to: PositiveInt | None = Field(
        32, description="centred zero padding to pad_to × pad_to pixels (32 fits 4–5 stride-2 layers; null: 28×28)"
    )

    def load(self, seed: int, device: torch.device | str = "cpu") -> LabelledImages:
        root = self.resolved_root()
        if self.download:
            try:
                find_mnist(root)
            except UserError:
                download_mnist(root)
        train, test = read_mnist(root)
        return split_build(train, test, 10, self, root, seed, device)


# ---------------------------------------------------------------- CIFAR-10

CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_TGZ = "cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_LAYOUT = """
DIR/cifar-10-batches-py/        (the python version: cifar-10-python.tar.gz, extracted)
├── data_batch_1 … data_batch_5
└── test_batch
or
DIR/cifar-10-batches-bin/       (the binary version: cifar-10-binary.tar.gz, extracted)
├── data_batch_1.bin … data_batch_5.bin
└── test_batch.bin
"""
CIFAR_RECORD = 1 + 3 * 32 * 32


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickled numpy array needs, under both the numpy 1.x and 2.x module names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    import _codecs

    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        out[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        if hasattr(numeric, "_frombuffer"):
            out[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    out[("_codecs", "encode")] = _codecs.encode  # how protocol-2 pickles store bytes
    return out


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, strings, numbers and numpy arrays; any other global (a function, a class:
    the way a pickle runs code) is refused with a UserError before anything is called."""

    def __init__(self, file: Any, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path
        self.allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UserError(
                f"refusing to load {self.path}: it contains code ({module}.{name}), not just CIFAR-10 arrays",
                where=str(self.path),
                fix="use the official CIFAR-10 files (cifar-10-batches-py or cifar-10-batches-bin)",
            ) from None


def _get(d: dict, key: str) -> Any:
    return d[key.encode()] if key.encode() in d else d.get(key)


def read_cifar_py(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the python version -> (uint8 (n, 3, 32, 32), uint8 labels (n,))."""
    try:
        with open(path, "rb") as f:
            d = ArraysOnlyUnpickler(f, path).load()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or not a pickle
        raise corrupt_error(path, f"not a CIFAR-10 batch ({_short(e)})") from None
    if not isinstance(d, dict):
        raise corrupt_error(path, f"not a CIFAR-10 batch (a pickled {type(d).__name__}, expected a dict)")
    data, labels = _get(d, "data"), _get(d, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise corrupt_error(path, f"'data' must be a uint8 [n, 3072] array, got {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0, dtype=np.int64) - 1
    if labels.shape != (len(data),):
        raise corrupt_error(path, f"'labels' must be {len(data)} integers, one per image")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the binary version (records of 1 label byte + 3072 pixel bytes) -> (images, labels)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise corrupt_error(path, f"cannot read it ({_short(e)})") from None
    if not raw or len(raw) % CIFAR_RECORD:
        raise corrupt_error(path, f"{len(raw)} bytes is not a whole number of {CIFAR_RECORD}-byte records")
    rec = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR_RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), rec[:, 0].astype(np.int64)


def find_cifar(root: Path) -> tuple[Path, Callable[[Path], tuple[np.ndarray, np.ndarray]], str]:
    """(folder, batch reader, file suffix) of the CIFAR-10 files under root, or a UserError."""
    candidates = (
        (root / "cifar-10-batches-bin", read_cifar_bin, ".bin"),
        (root / "cifar-10-batches-py", read_cifar_py, ""),
        (root, read_cifar_bin, ".bin"),
        (root, read_cifar_py, ""),
    )
    for d, reader, suffix in candidates:
        if all((d / f"{b}{suffix}").is_file() for b in CIFAR_BATCHES):
            return d, reader, suffix
    for d, _, suffix in candidates[:2]:
        present = [b for b in CIFAR_BATCHES if (d / f"{b}{suffix}").is_file()]
        if present:
            lacking = ", ".join(f"{b}{suffix}" for b in CIFAR_BATCHES if b not in present)
            raise UserError(
                f"CIFAR-10 is incomplete in {d}: missing {lacking}{layout_text(CIFAR_LAYOUT)}", fix=FIX_MISSING
            )
    raise missing_error("CIFAR-10", [root / "cifar-10-batches-py", root / "cifar-10-batches-bin"], CIFAR_LAYOUT)


def read_cifar(root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    d, reader, suffix = find_cifar(root)
    parts = []
    for b in CIFAR_BATCHES:
        images, labels = reader(d / f"{b}{suffix}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise corrupt_error(d / f"{b}{suffix}", f"label {int(labels.max())} is not a CIFAR-10 class 0–9")
        parts.append((images, labels))
    train = (np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]]))
    return train, parts[5]


@DATASETS.register
class CIFAR10Spec(RootSpec):
    """CIFAR-10 (3×32×32) from the official python or binary batches; label = the class 0–9."""

    NATIVE: ClassVar[tuple[int, int, int]] = (3, 32, 32)

    type: Literal["cifar10"] = "cifar10"

    def load(self, seed: int, device: torch.device | str = "cpu") -> LabelledImages:
        root = self.resolved_root()
        if self.download:
            try:
                find_cifar(root)
            except UserError:
                fetch([CIFAR_URL], root, CIFAR_TGZ, CIFAR_MD5, "CIFAR-10")
        train, test = read_cifar(root)
        return split_build(train, test, 10, self, root, seed, device)


# ---------------------------------------------------------------- Tiny ImageNet

TINY_DIR = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_ZIP = "tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_CACHE = ".sculpt-cache-v1.safetensors"
TINY_SIZE = 64
TINY_LAYOUT = """
DIR/tiny-imagenet-200/
├── wnids.txt                     (one class id per line, e.g. n01443537)
├── train/<wnid>/images/*.JPEG    (500 per class)
└── val/
    ├── images/*.JPEG             (10,000)
    └── val_annotations.txt       (filename <TAB> wnid <TAB> bbox …)
"""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})


def is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def tiny_wnids(tree: Path) -> list[str]:
    """The sorted class ids of wnids.txt, or a UserError when the tree is missing."""
    path = tree / "wnids.txt"
    if not path.is_file():
        raise missing_error(
            "Tiny ImageNet",
            [path],
            TINY_LAYOUT,
            fix=f"{FIX_MISSING} (the unzipped {TINY_ZIP} from {TINY_URL})",
        )
    try:
        wnids = sorted({w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()})
    except (OSError, UnicodeDecodeError) as e:
        raise corrupt_error(path, f"cannot read it ({_short(e)})") from None
    if not wnids:
        raise corrupt_error(path, "lists no class ids")
    return wnids


def tiny_stamp_paths(tree: Path, wnids: Sequence[str]) -> list[Path]:
    """The folders and index files whose modification times say whether the tree changed since caching."""
    train = tree / "train"
    # not the tree's own folder: writing the cache into it changes its modification time
    out = [tree / "wnids.txt", train, tree / "val", tree / "val" / "images", tree / "val" / "val_annotations.txt"]
    for w in wnids:
        out += [train / w, train / w / "images"]
    return out


def _newest_mtime(paths: Sequence[Path]) -> int:
    newest = 0
    for p in paths:
        with contextlib.suppress(OSError):
            newest = max(newest, p.stat().st_mtime_ns)
    return newest


def tiny_listing(tree: Path, wnids: Sequence[str]) -> tuple[list[Path], list[int], list[Path], list[int]]:
    """(train files, their labels, val files, their labels) of the tree, or a UserError naming what is missing."""
    index = {w: i for i, w in enumerate(wnids)}
    train_files: list[Path] = []
    train_labels: list[int] = []
    for w in wnids:
        d = tree / "train" / w / "images"
        if not d.is_dir():
            raise missing_error(f"Tiny ImageNet class {w}", [d], TINY_LAYOUT)
        files = sorted(p for p in d.iterdir() if is_image(p))
        if not files:
            raise missing_error(f"images of Tiny ImageNet class {w}", [d / "*.JPEG"], TINY_LAYOUT)
        train_files += files
        train_labels += [index[w]] * len(files)
    ann = tree / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise missing_error("the Tiny ImageNet validation labels", [ann], TINY_LAYOUT)
    val_files: list[Path] = []
    val_labels: list[int] = []
    try:
        lines = ann.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise corrupt_error(ann, f"cannot read it ({_short(e)})") from None
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or cols[1].strip() not in index:
            raise corrupt_error(ann, f"line {no} is not 'filename<TAB>wnid…' with a wnid of wnids.txt: {line[:80]!r}")
        f = tree / "val" / "images" / cols[0].strip()
        if not f.is_file():
            raise missing_error("a Tiny ImageNet validation image", [f], TINY_LAYOUT)
        val_files.append(f)
        val_labels.append(index[cols[1].strip()])
    if not val_files:
        raise corrupt_error(ann, "lists no validation images")
    return train_files, train_labels, val_files, val_labels


def decode_tiny(path: Path) -> np.ndarray:
    return decode_image(path, TINY_SIZE, "RGB")


def read_tinyimagenet(tree: Path) -> tuple[Tensor, Tensor, int, int]:
    """(uint8 images (N, 3, 64, 64), labels (N,), n_train, n_classes): train first, then val; cached."""
    wnids = tiny_wnids(tree)
    cache = tree / TINY_CACHE
    meta = {"format": "sculpt-tinyimagenet-v1", "wnids": json.dumps(wnids)}
    if cache.is_file() and cache.stat().st_mtime_ns > _newest_mtime(tiny_stamp_paths(tree, wnids)):
        arrays = load_cache(cache, meta)
        if arrays is not None and {"images", "labels", "n_train"} <= arrays.keys():
            images, labels, n_train = arrays["images"], arrays["labels"], int(arrays["n_train"][0])
            ok = images.dtype == torch.uint8 and tuple(images.shape[1:]) == (3, TINY_SIZE, TINY_SIZE)
            if ok and len(labels) == len(images) > n_train > 0:
                return images, labels.long(), n_train, len(wnids)
    train_files, train_labels, val_files, val_labels = tiny_listing(tree, wnids)
    files = train_files + val_files
    images = np.empty((len(files), 3, TINY_SIZE, TINY_SIZE), dtype=np.uint8)
    decode_all(files, images, decode_tiny)
    labels = np.asarray(train_labels + val_labels, dtype=np.int64)
    n_train = len(train_files)
    save_cache(cache, {"images": images, "labels": labels, "n_train": np.array([n_train], np.int64)}, meta)
    return torch.from_numpy(images), torch.from_numpy(labels), n_train, len(wnids)


@DATASETS.register
class TinyImageNetSpec(RootSpec):
    """Tiny ImageNet (3×64×64, 200 classes) from the standard tiny-imagenet-200 tree; label = the class."""

    NATIVE: ClassVar[tuple[int, int, int]] = (3, TINY_SIZE, TINY_SIZE)

    type: Literal["tinyimagenet"] = "tinyimagenet"

    def load(self, seed: int, device: torch.device | str = "cpu") -> LabelledImages:
        root = self.resolved_root()
        tree = root / TINY_DIR
        if self.download and not (tree / "wnids.txt").is_file():
            fetch([TINY_URL], root, TINY_ZIP, TINY_MD5, "Tiny ImageNet")
        images, labels, n_train, n_classes = read_tinyimagenet(tree)
        n = len(images)
        return LabelledImages(
            images,
            labels,
            n_classes,
            torch.arange(n_train),
            torch.arange(n_train, n),
            self.pad_to,
            seed,
            device,
            root,
        )
