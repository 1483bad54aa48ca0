"""Small pieces shared by every network family."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.errors import UserError


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise UserError(f"unknown activation '{name}'; choose relu or leaky_relu")


def norm2d(name: str, channels: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "layer":
        return nn.GroupNorm(1, channels)
    if name == "none":
        return nn.Identity()
    raise UserError(f"unknown norm '{name}'; choose batch, instance, layer or none")


def norm1d(name: str, features: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm1d(features)
    if name == "layer":
        return nn.LayerNorm(features)
    if name in ("none", "instance"):
        return nn.Identity()
    raise UserError(f"unknown norm '{name}'; choose batch, layer or none")


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al., 2018) as a model option."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


class MinibatchStd(nn.Module):
    """Appends the mean standard deviation over groups of samples as one extra feature (Karras et al.,
    2018), so the discriminator can see a lack of variety in a batch of fakes."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        y = x.reshape(g, n // g, *x.shape[1:]).float()
        # by hand: Tensor.var over dim 0 is 3-5x slower on CPU, and this runs on every D call
        std = ((y - y.mean(dim=0)).pow(2).mean(dim=0) + 1e-8).sqrt()
        std = std.flatten(1).mean(dim=1)  # one number per group slot
        std = std.repeat(g).to(x.dtype)  # back to one per sample
        extra = std.reshape(n, 1, *([1] * (x.dim() - 2))).expand(n, 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)


def pack(x: Tensor, k: int) -> Tensor:
    """PacGAN (Lin et al., 2018): concatenate k samples along the channel/feature axis."""
    if k == 1:
        return x
    n = x.shape[0]
    if n % k:
        raise ValueError(f"batch of {n} cannot be packed in groups of {k}")
    return x.reshape(n // k, k * x.shape[1], *x.shape[2:])


def label_embedding(num_classes: int, dim: int) -> nn.Embedding:
    """A generator's class embedding, concatenated to z. Initialised at unit norm, like a one-hot label,
    and so eight times quieter than a 64-d z: at nn.Embedding's N(0, 1) the label is as loud as z from the
    first step, G takes its variety from the label alone and every sample of a class comes out the same
    (intra-class collapse; measured in BENCHMARKS.md)."""
    embed = nn.Embedding(num_classes, dim)
    nn.init.normal_(embed.weight, 0.0, dim**-0.5)
    return embed


class Projection(nn.Module):
    """Projection discriminator head (Miyato & Koyama, 2018): adds <embed(y), h> to the logit."""

    def __init__(self, num_classes: int, features: int, sn: bool):
        super().__init__()
        self.embed = maybe_sn(nn.Embedding(num_classes, features), sn)

    def forward(self, h: Tensor, y: Tensor) -> Tensor:
        return (self.embed(y) * h).sum(dim=1, keepdim=True)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. (2016): N(0, 0.02) weights, N(1, 0.02) norm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
