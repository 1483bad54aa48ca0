"""ResNet generator and discriminator in the style of SNGAN (Miyato et al., 2018).

One residual block per doubling of resolution; the discriminator uses spectral norm when asked (the
SNGAN setting) and global sum pooling. A conditional generator uses conditional batch norm.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from gankit.config import NetConfig
from gankit.errors import UserError
from gankit.nets.blocks import Projection, maybe_sn, norm2d, pack


def _levels(side: int) -> int:
    n = int(math.log2(side)) - 2 if side >= 8 else -1
    if side < 8 or side > 256 or 4 * 2**n != side:
        raise UserError(f"ResNet nets need a square power-of-two image side from 8 to 256, got {side}")
    return n


class CondBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up by class (de Vries et al., 2017)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.bn(x) * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str, num_classes: int):
        super().__init__()
        self.cond = num_classes > 0
        make = (lambda c: CondBatchNorm2d(c, num_classes)) if self.cond else (lambda c: norm2d(norm, c))
        self.n1, self.n2 = make(c_in), make(c_out)
        self.c1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def _norm(self, layer: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
        return layer(x, y) if self.cond else layer(x)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = F.interpolate(F.relu(self._norm(self.n1, x, y)), scale_factor=2)
        h = self.c2(F.relu(self._norm(self.n2, self.c1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, sn: bool, first: bool):
        super().__init__()
        self.first = first  # the first block sees images, so it skips the leading ReLU
        self.c1 = maybe_sn(nn.Conv2d(c_in, c_out, 3, 1, 1), sn)
        self.c2 = maybe_sn(nn.Conv2d(c_out, c_out, 3, 1, 1), sn)
        self.skip = maybe_sn(nn.Conv2d(c_in, c_out, 1), sn)

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.c2(F.relu(self.c1(h))), 2)
        return h + F.avg_pool2d(self.skip(x), 2)


class ResNetGenerator(nn.Module):
    def __init__(self, cfg: NetConfig, z_dim: int, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        channels, side = data_shape[0], data_shape[-1]
        n = _levels(side)
        self.z_dim, self.data_shape, self.num_classes = z_dim, tuple(data_shape), num_classes
        self.ch = cfg.width * min(2 ** (n - 1), 8)
        self.fc = nn.Linear(z_dim, 4 * 4 * self.ch)
        blocks, c = [], self.ch
        for level in reversed(range(n)):
            c_next = cfg.width * min(2 ** max(level - 1, 0), 8)
            blocks.append(GBlock(c, c_next, cfg.norm, num_classes))
            c = c_next
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Sequential(norm2d(cfg.norm if cfg.norm != "none" else "none", c), nn.ReLU(),
                                 nn.Conv2d(c, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.fc(z).reshape(z.shape[0], self.ch, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return self.out(h)


class ResNetDiscriminator(nn.Module):
    def __init__(self, cfg: NetConfig, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        channels, side = data_shape[0], data_shape[-1]
        n = _levels(side)
        sn = cfg.spectral_norm
        self.pack = cfg.pack
        blocks, c_in = [], channels * cfg.pack
        for level in range(n):
            c = cfg.width * min(2**level, 8)
            blocks.append(DBlock(c_in, c, sn, first=level == 0))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.head = maybe_sn(nn.Linear(c_in, 1), sn)
        self.projection = Projection(num_classes, c_in, sn) if num_classes and cfg.cond == "projection" else None
        self.aux = maybe_sn(nn.Linear(c_in, num_classes), sn) if num_classes and cfg.cond == "acgan" else None

    def forward(self, x: Tensor, y: Tensor | None = None, aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """The realness logit per sample (per pack); with ``aux`` also the AC-GAN class logits."""
        h = F.relu(self.blocks(pack(x, self.pack))).sum(dim=(2, 3))
        out = self.head(h)
        if self.projection is not None:
            out = out + self.projection(h, y[:: self.pack])
        return (out.squeeze(1), self.aux(h)) if aux else out.squeeze(1)
