"""Where a dataset read from disk lives: on the training device when it fits, else on the host (same batches)."""

from __future__ import annotations

from pathlib import Path

import torch

from sculptcli.data.vision import LabelledImages, placement


def _data(place: str) -> LabelledImages:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (50,), generator=g)
    return LabelledImages(images, labels, 10, torch.arange(40), torch.arange(40, 50), 12, 3, "cpu", Path("."), place)


def test_host_placement_gives_the_same_batches_as_device_placement():
    dev, host = _data("device"), _data("host")
    assert dev.placement == "device" and host.placement == "host"
    for step in range(7):  # across epoch boundaries
        assert torch.equal(dev.train_batch(step, 16).images, host.train_batch(step, 16).images)
    (a, la), (b, lb) = dev.heldout(5), host.heldout(5)
    assert torch.equal(a, b) and torch.equal(la, lb) and a.shape == (5, 3, 12, 12)


def test_auto_placement_keeps_small_sets_on_the_device():
    assert placement(10**12, torch.device("cpu")) == "device"  # the CPU is the host: nothing to copy
    assert _data("auto").placement == "device"
