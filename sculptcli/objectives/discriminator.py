"""FactorVAE's discriminator network (`divergence.type: factor_tc`), apart from the torch-free specs."""

from __future__ import annotations

from torch import Tensor, nn


class Discriminator(nn.Module):
    """FactorVAE's discriminator: an MLP from a code to the logit of "drawn from q(z)" vs "from Π_j q(z_j)"."""

    def __init__(self, latent_dim: int, hidden: int, layers: int):
        super().__init__()
        mods: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        mods.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(1)
