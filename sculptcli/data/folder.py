"""Any folder of images: `data: {type: folder, path: DIR}`, flat or with one subfolder per class.

    DIR/a.png, DIR/b.jpg, …                     flat: no labels
    DIR/<class>/x.png, DIR/<class>/sub/y.jpg     class subfolders (torchvision ImageFolder layout): label =
                                                 the class's position among the sorted subfolder names

Images are .png, .jpg, .jpeg, .bmp or .webp (any case); hidden files and folders are skipped. With class
subfolders, images lying directly in DIR are ignored (as ImageFolder does). Each image is turned upright
(EXIF orientation), converted to `channels` (1: grayscale, 3: RGB; an alpha channel is dropped),
centre-cropped to a square (its shorter side) and resized to size × size (bilinear). The decoded uint8 images
are cached in $SCULPT_CACHE_DIR/folder/ (default ~/.cache/sculpt/folder/), under a name that hashes the
folder's path, every image's name, size and modification time, and the settings, so that a changed folder
is decoded again. Nothing is read at config validation; the folder is scanned when the dataset is built.

A fixed seeded split (the same for every run seed) of `heldout` images is held out and never trained on:
a fraction (default 0.1, at most 10,000 images) or a count.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveInt, model_validator

from sculptcli.data import DATASETS
from sculptcli.data.base import DataSpec
from sculptcli.data.vision import (
    LabelledImages,
    decode_all,
    decode_image,
    is_image,
    layout_text,
    load_cache,
    save_cache,
)
from sculptcli.errors import UserError
from sculptcli.lazy import lazy

if TYPE_CHECKING:
    import numpy as np
    import torch
else:
    np = lazy("numpy")
    torch = lazy("torch")

HELDOUT_SEED = 1_000_033  # the held-out split is drawn with this seed, never with the run seed
MAX_HELDOUT = 10_000  # a fractional held-out split is capped at this many images
CACHE_ENV = "SCULPT_CACHE_DIR"
CACHE_VERSION = "sculpt-folder-v1"
FOLDER_LAYOUT = """
DIR/                     flat: no labels
├── a.png
└── b.jpg …
or
DIR/                     one subfolder per class: label = the class
├── cats/x.jpg …
└── dogs/y.png …
"""
FIX_FOLDER = (
    "give data.path=DIR (path: DIR in a config file's data section), a folder of .png/.jpg/.jpeg/.bmp/.webp images"
)


def cache_dir() -> Path:
    """$SCULPT_CACHE_DIR, else $XDG_CACHE_HOME/sculpt, else ~/.cache/sculpt."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "sculpt"


def _images_under(d: Path, recursive: bool) -> list[Path]:
    """The image files in d (and its non-hidden subfolders when recursive), sorted by relative path."""
    if not recursive:
        return sorted(p for p in d.iterdir() if p.is_file() and is_image(p))
    out = []
    for dirpath, dirnames, filenames in os.walk(d):
        dirnames[:] = [n for n in dirnames if not n.startswith(".")]
        out += [Path(dirpath) / f for f in filenames if is_image(Path(f))]
    return sorted(out, key=lambda p: p.relative_to(d).as_posix())


def scan(path: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """(image files, their labels or None, class names or None) of the folder, or a UserError."""
    if not path.exists():
        raise UserError(f"image folder not found: looked for {path}{layout_text(FOLDER_LAYOUT)}", fix=FIX_FOLDER)
    if not path.is_dir():
        raise UserError(f"not a folder: {path}{layout_text(FOLDER_LAYOUT)}", fix=FIX_FOLDER)
    try:
        subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        classes, files, labels = [], [], []
        for d in subdirs:
            found = _images_under(d, recursive=True)
            if found:
                labels += [len(classes)] * len(found)
                classes.append(d.name)
                files += found
        if classes:
            return files, labels, classes
        files = _images_under(path, recursive=False)
    except OSError as e:
        raise UserError(f"cannot list the folder ({e})", where=str(path), fix=FIX_FOLDER) from None
    if not files:
        raise UserError(f"no images in {path}{layout_text(FOLDER_LAYOUT)}", fix=FIX_FOLDER)
    return files, None, None


def cache_key(path: Path, files: list[Path], size: int, channels: int) -> str:
    """A hash of the folder's path, each image's relative name, byte size and modification time, and the settings."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, str(path), size, channels]).encode())
    for f in files:
        try:
            st = f.stat()
        except OSError as e:
            raise UserError(f"cannot read the image ({e})", where=str(f), fix="replace or delete the file") from None
        h.update(json.dumps([f.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()[:40]


def read_folder(path: Path, size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None]:
    """(uint8 images (N, channels, size, size), labels or None, class names or None), decoded once and cached."""
    files, labels, classes = scan(path)
    key = cache_key(path, files, size, channels)
    cache = cache_dir() / "folder" / f"{key}.safetensors"
    meta = {"format": CACHE_VERSION, "key": key, "classes": json.dumps(classes)}
    arrays = load_cache(cache, meta)
    if arrays is not None and "images" in arrays:
        images = arrays["images"]
        if images.dtype == torch.uint8 and tuple(images.shape) == (len(files), channels, size, size):
            return images, None if labels is None else torch.tensor(labels, dtype=torch.long), classes
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    mode = "L" if channels == 1 else "RGB"
    decode_all(files, out, lambda f: decode_image(f, size, mode))
    save_cache(cache, {"images": out}, meta)
    return torch.from_numpy(out), None if labels is None else torch.tensor(labels, dtype=torch.long), classes


@DATASETS.register
class FolderSpec(DataSpec):
    """Your own folder of images (flat, or one subfolder per class), resized to size × size."""

    type: Literal["folder"] = "folder"
    path: str = Field(description="a folder of images, flat or with one subfolder per class")
    size: PositiveInt = Field(64, description="images are centre-cropped to a square and resized to size × size")
    channels: Literal[1, 3] = Field(3, description="1: grayscale, 3: RGB")
    heldout: PositiveInt | float = Field(
        0.1, description="the fixed held-out split: a fraction in (0, 1) of the images (at most 10,000), or a count"
    )
    pad_to: PositiveInt | None = Field(None, description="centred zero padding to pad_to × pad_to pixels")

    @model_validator(mode="after")
    def _check(self):
        if isinstance(self.heldout, float) and not 0.0 < self.heldout < 1.0:
            raise ValueError(f"heldout must be a fraction in (0, 1) or a count, got {self.heldout}")
        if self.pad_to is not None and self.pad_to < self.size:
            raise ValueError(f"pad_to {self.pad_to} is smaller than the {self.size}×{self.size} images")
        return self

    def heldout_count(self, n: int) -> int:
        if isinstance(self.heldout, float):
            return min(MAX_HELDOUT, max(1, round(self.heldout * n)))
        return self.heldout

    def image_shape(self) -> tuple[int, int, int]:
        side = self.pad_to or self.size
        return (self.channels, side, side)

    def load(self, seed: int, device: torch.device | str = "cpu") -> LabelledImages:
        path = Path(self.path).expanduser().resolve()
        images, labels, classes = read_folder(path, self.size, self.channels)
        n = len(images)
        k = self.heldout_count(n)
        if not 0 < k < n:
            raise UserError(
                f"heldout {self.heldout} leaves {n - k} of the folder's {n} images to train on",
                where=str(path),
                fix=f"set data.heldout to a count between 1 and {n - 1} (or add images)",
            )
        g = torch.Generator().manual_seed(HELDOUT_SEED)
        draw = torch.randperm(n, generator=g)[:k]
        keep = torch.ones(n, dtype=torch.bool)
        keep[draw] = False
        data = LabelledImages(
            images,
            labels,
            None if classes is None else len(classes),
            keep.nonzero().squeeze(1),
            draw,
            self.pad_to,
            seed,
            device,
            path,
        )
        data.classes = classes
        return data
