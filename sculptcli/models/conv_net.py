"""The network of `model.type: conv` (its spec, torch-free, is in `conv`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from sculptcli.models.base import AutoEncoder, Quantizer

if TYPE_CHECKING:
    from sculptcli.models.conv import ConvAESpec


class ConvAE(AutoEncoder):
    def __init__(self, spec: ConvAESpec, shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = shape
        self.init_input_norm(c)
        chans = spec.channels()
        self.latent_dim, self.stochastic = spec.latent_dim, spec.stochastic
        sh, sw = h // 2**spec.layers, w // 2**spec.layers
        flat = chans[-1] * sh * sw
        out = spec.latent_dim * (2 if spec.stochastic else 1)

        def norm(ch: int) -> list[nn.Module]:
            if spec.norm == "batch":
                return [nn.BatchNorm2d(ch)]
            if spec.norm == "group":
                return [nn.GroupNorm(min(8, ch), ch)]
            return []

        down: list[nn.Module] = []
        for cin, cout in zip([c, *chans[:-1]], chans, strict=True):
            down += [nn.Conv2d(cin, cout, 4, 2, 1), *norm(cout), nn.ReLU(inplace=True)]
        head = (
            [nn.Linear(flat, spec.fc_hidden), nn.ReLU(inplace=True), nn.Linear(spec.fc_hidden, out)]
            if spec.fc_hidden
            else [nn.Linear(flat, out)]
        )
        self.encoder = nn.Sequential(*down, nn.Flatten(), *head)

        tail = (
            [nn.Linear(spec.latent_dim, spec.fc_hidden), nn.ReLU(inplace=True), nn.Linear(spec.fc_hidden, flat)]
            if spec.fc_hidden
            else [nn.Linear(spec.latent_dim, flat)]
        )
        up: list[nn.Module] = [*tail, nn.ReLU(inplace=True), nn.Unflatten(1, (chans[-1], sh, sw))]
        rev = chans[::-1]
        for i, (cin, cout) in enumerate(zip(rev, [*rev[1:], c], strict=True)):
            up.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i < len(rev) - 1:
                up += [*norm(cout), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*up)
        if spec.quantize is not None:
            q = spec.quantize
            self.quantizer = Quantizer(spec.latent_dim, q.values, q.low, q.high)
        self.attach_context_module(spec.context_module)
