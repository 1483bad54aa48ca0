"""DCGAN (Radford et al., 2016) for square images of side 8 to 256, grey or RGB.

The generator starts from a 4x4 map and doubles its side with strided transposed convolutions; the
discriminator mirrors it with strided convolutions. Channels halve as the side doubles, capped at 8x width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gankit.config import NetConfig
from gankit.errors import UserError
from gankit.nets.blocks import (
    MinibatchStd,
    Projection,
    activation,
    dcgan_init,
    label_embedding,
    maybe_sn,
    norm2d,
    pack,
)


def _levels(side: int) -> int:
    n = int(math.log2(side)) - 2 if side >= 8 else -1
    if side < 8 or side > 256 or 4 * 2**n != side:
        raise UserError(f"DCGAN needs a square power-of-two image side from 8 to 256, got {side}")
    return n


def _channels(width: int, level: int) -> int:
    return width * min(2**level, 8)


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: NetConfig, z_dim: int, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        channels, side = data_shape[0], data_shape[-1]
        n = _levels(side)
        self.z_dim, self.data_shape, self.num_classes = z_dim, tuple(data_shape), num_classes
        self.embed = label_embedding(num_classes, z_dim) if num_classes else None
        z_in = z_dim * (2 if num_classes else 1)
        c = _channels(cfg.width, n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_in, c, 4, 1, 0, bias=False),
            norm2d(cfg.norm, c),
            activation(cfg.activation),
        ]
        for level in reversed(range(n - 1)):
            c_next = _channels(cfg.width, level)
            layers += [nn.ConvTranspose2d(c, c_next, 4, 2, 1, bias=False), norm2d(cfg.norm, c_next)]
            layers.append(activation(cfg.activation))
            c = c_next
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: NetConfig, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        channels, side = data_shape[0], data_shape[-1]
        n = _levels(side)
        sn = cfg.spectral_norm
        self.pack = cfg.pack
        layers: list[nn.Module] = []
        c_in = channels * cfg.pack
        for level in range(n):
            c = _channels(cfg.width, level)
            layers.append(maybe_sn(nn.Conv2d(c_in, c, 4, 2, 1, bias=level == 0 or cfg.norm == "none"), sn))
            if level > 0:  # DCGAN leaves the first layer unnormalised
                layers.append(norm2d(cfg.norm, c))
            layers.append(activation(cfg.activation))
            c_in = c
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStd() if cfg.mbstd else None
        self.head = maybe_sn(nn.Conv2d(c_in + (1 if cfg.mbstd else 0), 1, 4, 1, 0), sn)
        self.projection = Projection(num_classes, c_in, sn) if num_classes and cfg.cond == "projection" else None
        self.aux = maybe_sn(nn.Linear(c_in, num_classes), sn) if num_classes and cfg.cond == "acgan" else None
        dcgan_init(self)

    def forward(self, x: Tensor, y: Tensor | None = None, aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """The realness logit per sample (per pack); with ``aux`` also the AC-GAN class logits."""
        h = self.body(pack(x, self.pack))
        feats = h
        if self.mbstd is not None:
            h = self.mbstd(h)
        out = self.head(h).flatten(1)
        if self.projection is not None:
            out = out + self.projection(feats.sum(dim=(2, 3)), y[:: self.pack])
        return (out.squeeze(1), self.aux(feats.sum(dim=(2, 3)))) if aux else out.squeeze(1)
