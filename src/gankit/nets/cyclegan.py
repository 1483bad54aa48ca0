"""CycleGAN's networks (Zhu et al., 2017), as in the authors' code: a ResNet generator (Johnson et al.,
2016) and the 70x70 PatchGAN discriminator (Isola et al., 2017), both with instance norm.
"""

from __future__ import annotations

from torch import Tensor, nn


def default_blocks(size: int) -> int:
    """The paper's choice: 9 residual blocks for 256x256 training images, 6 for 128x128 or less."""
    return 9 if size >= 256 else 6


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for every conv weight, as the authors' ``init_type='normal'``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResnetBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-3 (the paper's appendix), widths scaled by
    ``width / 64``. Fully convolutional: any input whose sides are multiples of ``multiple`` (4).

    ``down`` < 2 removes stride-2 stages (the paper has 2): the residual blocks then work at a finer
    scale with a smaller receptive field, so the generator can restyle strokes and texture but has less
    room to redraw the whole shape - a way to keep content when the two domains differ mostly in style."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, width: int = 64, n_blocks: int = 9, down: int = 2):
        super().__init__()
        w = width
        self.multiple = 2**down
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, w, 7), nn.InstanceNorm2d(w), nn.ReLU(True)]
        for i in range(down):  # downsampling
            mult = 2**i
            layers += [nn.Conv2d(w * mult, w * mult * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(w * mult * 2),
                       nn.ReLU(True)]
        layers += [ResnetBlock(w * 2**down) for _ in range(n_blocks)]
        for i in reversed(range(down)):  # upsampling
            mult = 2 ** (i + 1)
            layers += [nn.ConvTranspose2d(w * mult, w * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(w * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: C64-C128-C256-C512 with 4x4 convolutions, then a 1-channel map of real/fake logits,
    each judging one 70x70 patch when ``n_layers=3``. No norm on the first layer (the paper)."""

    def __init__(self, in_ch: int = 3, width: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = width
        for n in range(1, n_layers + 1):
            out = width * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers += [nn.Conv2d(ch, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def receptive_field(n_layers: int) -> int:
    """Side of the input patch each PatchGAN output sees (70 for three layers)."""
    rf = 1
    for stride in [1, 1] + [2] * n_layers:  # walk back from the output: two stride-1 4x4 convs, then stride 2
        rf = (rf - 1) * stride + 4
    return rf
