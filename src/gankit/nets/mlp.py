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
        self.codes = cfg.codes
        if self.codes and z_dim < 3:
            raise ValueError("g.codes needs z_dim >= 3 (the code is the angle of the first two latent coordinates)")
        # with codes, the first two latent coordinates become a one-hot of `codes` values
        width_in = z_dim * (2 if num_classes else 1) + (self.codes - 2 if self.codes else 0)
        for _ in range(cfg.depth):
            layers += [nn.Linear(width_in, cfg.width), norm1d(cfg.norm, cfg.width), activation(cfg.activation)]
            width_in = cfg.width
        layers.append(nn.Linear(width_in, out))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        if self.codes:
            code = nn.functional.one_hot(latent_code(z, self.codes), self.codes).to(z.dtype)
            z = torch.cat([z[:, 2:], code], dim=1)
        return self.net(z).reshape(z.shape[0], *self.data_shape)


def latent_code(z: Tensor, codes: int) -> Tensor:
    """Which of ``codes`` equal sectors the first two latent coordinates fall in.

    The angle of an isotropic Gaussian pair is uniform, so every code is equally likely, and it is unchanged by
    truncation (which scales z), so truncated samples keep every code. A continuous map from a connected z-space
    must draw samples across the gaps between separate modes; the code lets the generator jump instead.
    """
    angle = torch.atan2(z[:, 1], z[:, 0])  # (-pi, pi]
    return ((angle + math.pi) * (codes / (2 * math.pi))).long().clamp_(0, codes - 1)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: NetConfig, data_shape: tuple[int, ...], num_classes: int = 0, codes: int = 0):
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
        self.info = nn.Linear(width_in, codes) if codes else None

    def forward(self, x: Tensor, y: Tensor | None = None, aux: bool = False, info: bool = False):
        """The realness logit per sample (per pack); with ``aux`` also the AC-GAN class logits, with ``info``
        also the InfoGAN code logits."""
        h = self.body(pack(x.flatten(1), self.pack))
        feats = h
        if self.mbstd is not None:
            h = self.mbstd(h)
        out = self.head(h)
        if self.projection is not None:
            out = out + self.projection(feats, y[:: self.pack])
        if info:
            return out.squeeze(1), self.info(feats)
        return (out.squeeze(1), self.aux(feats)) if aux else out.squeeze(1)
