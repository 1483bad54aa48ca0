"""Fully connected generator and discriminator, for vectors and 2-D points."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gankit.config import NetConfig
from gankit.nets.blocks import MinibatchStd, Projection, activation, label_embedding, maybe_sn, norm1d, pack


class MLPGenerator(nn.Module):
    def __init__(self, cfg: NetConfig, z_dim: int, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        self.z_dim, self.data_shape, self.num_classes = z_dim, tuple(data_shape), num_classes
        out = math.prod(data_shape)
        self.embed = label_embedding(num_classes, z_dim) if num_classes else None
        layers: list[nn.Module] = []
        width_in = z_dim * (2 if num_classes else 1)
        for _ in range(cfg.depth):
            layers += [nn.Linear(width_in, cfg.width), norm1d(cfg.norm, cfg.width), activation(cfg.activation)]
            width_in = cfg.width
        layers.append(nn.Linear(width_in, out))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.net(z).reshape(z.shape[0], *self.data_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: NetConfig, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        self.pack = cfg.pack
        sn = cfg.spectral_norm
        width_in = math.prod(data_shape) * cfg.pack
        layers: list[nn.Module] = []
        for _ in range(cfg.depth):
            layers += [maybe_sn(nn.Linear(width_in, cfg.width), sn), activation(cfg.activation)]
            width_in = cfg.width
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStd() if cfg.mbstd else None
        self.head = maybe_sn(nn.Linear(width_in + (1 if cfg.mbstd else 0), 1), sn)
        self.projection = Projection(num_classes, width_in, sn) if num_classes and cfg.cond == "projection" else None
        self.aux = maybe_sn(nn.Linear(width_in, num_classes), sn) if num_classes and cfg.cond == "acgan" else None

    def forward(self, x: Tensor, y: Tensor | None = None, aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """The realness logit per sample (per pack); with ``aux`` also the AC-GAN class logits."""
        h = self.body(pack(x.flatten(1), self.pack))
        feats = h
        if self.mbstd is not None:
            h = self.mbstd(h)
        out = self.head(h)
        if self.projection is not None:
            out = out + self.projection(feats, y[:: self.pack])
        return (out.squeeze(1), self.aux(feats)) if aux else out.squeeze(1)
