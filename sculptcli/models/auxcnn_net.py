"""The network of `model.type: auxcnn` (its spec, torch-free, is in `auxcnn`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from sculptcli.models.base import AutoEncoder

if TYPE_CHECKING:
    from sculptcli.models.auxcnn import AuxCNNSpec


class AuxCNN(AutoEncoder):
    def __init__(self, spec: AuxCNNSpec, channels: int):
        super().__init__()
        self.latent_dim, self.stochastic = spec.latent_dim, spec.stochastic
        self.init_input_norm(channels)
        w = spec.width
        down: list[nn.Module] = []
        for cin, cout in zip([channels, w, 2 * w, 4 * w], [w, 2 * w, 4 * w, 8 * w], strict=True):
            down += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(inplace=True)]
        out = spec.latent_dim * (2 if spec.stochastic else 1)
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(8 * w * 2 * 2, out))
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (spec.latent_dim, 1, 1)),
            nn.ConvTranspose2d(spec.latent_dim, 4 * w, 4, 2, 1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, channels, 5, 4, 0),
        )
        self.attach_context_module(spec.context_module)
