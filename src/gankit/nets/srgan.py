"""SRGAN's networks (Ledig et al., 2017): the SRResNet generator with sub-pixel upsampling (Shi et al.,
2016) and the VGG-style discriminator; plus VGG-19's convolutional part for the optional feature
(content) loss, written out with torchvision's module names so its weights load as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCALES = (2, 4)


class ResidualBlock(nn.Module):
    """k3n64s1 - BN - PReLU - k3n64s1 - BN, plus the skip connection."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.PReLU(ch),
                                  nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Low-resolution image in [-1, 1] -> image ``scale`` times larger in [-1, 1] (tanh output).

    16 residual blocks of 64 channels in the paper; ``log2(scale)`` sub-pixel stages of x2 each.
    ``residual=True`` (not in the paper; VDSR's global skip) predicts only the difference from the
    bicubic enlargement, starting exactly at bicubic (zero-initialised last layer): far fewer steps to
    beat bicubic, which matters on a CPU."""

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 16, scale: int = 4,
                 residual: bool = False):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale}")
        self.scale, self.n_blocks, self.residual = scale, n_blocks, residual
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(n_blocks)])
        self.body_out = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        if residual:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    @property
    def receptive_radius(self) -> int:
        """How many low-resolution pixels around a pixel can change its output (rounded up): tiles that
        overlap by more than this on each side reproduce whole-image inference exactly."""
        radius = 4 + 2 * self.n_blocks + 1  # head 9x9, two 3x3 per block, body_out 3x3
        stages = int(math.log2(self.scale))
        radius += sum(1 / 2**s for s in range(stages))  # one 3x3 per upsampling stage, at growing resolution
        radius += 4 / self.scale  # tail 9x9 at the output resolution
        return math.ceil(radius)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        h = h + self.body_out(self.body(h))
        y = self.tail(self.upsample(h))
        if self.residual:
            return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False) + y
        return torch.tanh(y)


class SRDiscriminator(nn.Module):
    """k3n64s1, then (k3 s2, k3 s1) pairs doubling channels to 512 with BN and LeakyReLU(0.2), then
    Dense(1024) - LeakyReLU - Dense(1). The dense head sits on global average pooling, so any patch
    size works (the paper fixes 96x96)."""

    def __init__(self, channels: int = 3, width: int = 64, n_stages: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2, True)]
        ch = width
        for stage in range(n_stages):
            out = width * 2**stage
            if stage > 0:
                layers += [nn.Conv2d(ch, out, 3, padding=1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
            layers += [nn.Conv2d(out, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, width * 16),
                                  nn.LeakyReLU(0.2, True), nn.Linear(width * 16, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


# VGG-19 configuration "E" up to conv5_4 (before its ReLU): the paper's VGG54 content loss.
VGG19_LAYERS = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features[:35]``: its ``features.N.weight`` keys load unchanged.
    Input: RGB in [0, 1], normalised here with the ImageNet statistics."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in VGG19_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                ch = v
        self.features = nn.Sequential(*layers[:-1])  # stop before the last ReLU: phi_5,4 of the paper
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.features(((x + 1) / 2 - self.mean) / self.std)
