"""Datasets by name: each is one spec class (config + `build`) registered in DATASETS."""

from sculptcli.registry import Registry

DATASETS = Registry("dataset", field="data")

from sculptcli.data import dsprites, folder, galaxy, quad, tensor, vision, xy  # noqa: E402,F401  (registers)
from sculptcli.data.base import Batch, ImageData  # noqa: E402

__all__ = ["DATASETS", "Batch", "ImageData"]
