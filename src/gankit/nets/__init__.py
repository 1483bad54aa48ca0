"""Network families, one file each, found by ``NetConfig.family``.

A generator is called as ``G(z, y=None)`` and has ``z_dim``, ``data_shape`` and ``num_classes``;
a discriminator as ``D(x, y=None)`` and returns one logit per (packed) sample.
"""

from __future__ import annotations

from torch import nn

from gankit.config import NetConfig
from gankit.errors import UserError
from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.nets.mlp import MLPDiscriminator, MLPGenerator
from gankit.nets.resnet import ResNetDiscriminator, ResNetGenerator
from gankit.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

FAMILIES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "resnet": (ResNetGenerator, ResNetDiscriminator),
    "stylegan2": (StyleGAN2Generator, StyleGAN2Discriminator),
}
IMAGE_FAMILIES = {"dcgan", "resnet", "stylegan2"}


def _family(cfg: NetConfig, data_shape: tuple[int, ...]) -> tuple[type[nn.Module], type[nn.Module]]:
    if cfg.family not in FAMILIES:
        raise UserError(f"unknown network family '{cfg.family}'; choose from {', '.join(FAMILIES)}")
    if cfg.family in IMAGE_FAMILIES and len(data_shape) != 3:
        raise UserError(f"network family '{cfg.family}' needs images, but the data are vectors {data_shape}")
    return FAMILIES[cfg.family]


def build_generator(cfg: NetConfig, z_dim: int, data_shape: tuple[int, ...], num_classes: int = 0) -> nn.Module:
    return _family(cfg, data_shape)[0](cfg, z_dim, tuple(data_shape), num_classes)


def build_discriminator(cfg: NetConfig, data_shape: tuple[int, ...], num_classes: int = 0, codes: int = 0) -> nn.Module:
    if codes:
        return _family(cfg, data_shape)[1](cfg, tuple(data_shape), num_classes, codes)
    return _family(cfg, data_shape)[1](cfg, tuple(data_shape), num_classes)
