"""StyleGAN2 (Karras et al., 2020): a style-based generator and a residual discriminator, read top to bottom.

Generator: ``mapping`` (z [+ label] -> w, ``NetConfig.mapping`` layers) -> ``w_avg`` tracking and the
truncation trick -> ``synthesis`` (learned 4x4 constant, modulated convolutions with weight demodulation
run as one grouped convolution, per-layer noise with learned strength, a toRGB at every resolution summed
into the output: the "skip" generator). Discriminator: fromRGB, residual blocks that halve the side,
minibatch standard deviation, a 4x4 epilogue. Every weight uses the equalised learning rate (He-scaled
at run time, N(0, 1) at rest). Square power-of-two images from 16 to 1024 px, grey or RGB.

Channels: ``width`` at full resolution, doubling as the side halves, capped at 8 x ``width``.
The style vector has ``z_dim`` dimensions (w_dim = z_dim, as in the paper's 512/512).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.config import NetConfig
from gankit.errors import UserError
from gankit.nets.blocks import MinibatchStd, Projection, pack

SQRT2 = math.sqrt(2.0)


def _log2_side(side: int) -> int:
    n = int(math.log2(side)) if side > 0 else 0
    if side < 16 or side > 1024 or 2**n != side:
        raise UserError(f"StyleGAN2 needs a square power-of-two image side from 16 to 1024, got {side}")
    return n


def _channels(width: int, side: int, res: int) -> int:
    return min(width * side // res, 8 * width)


def lrelu(x: Tensor) -> Tensor:
    """Leaky ReLU with the gain that keeps the signal's second moment (sqrt 2)."""
    return F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    """Fully connected layer with the equalised learning rate; ``lr_mul`` slows it (mapping network)."""

    def __init__(self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(c_in), lr_mul, act

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    """Convolution with the equalised learning rate (discriminator)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool = True, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.act = 1.0 / math.sqrt(c_in * kernel * kernel), act

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return lrelu(x) if self.act else x


# ---------------------------------------------------------------------------------------------
# generator


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (and the label's embedding, for a conditional G) -> w through ``depth`` fully connected layers."""

    def __init__(self, z_dim: int, w_dim: int, depth: int, num_classes: int = 0, lr_mul: float = 0.01):
        super().__init__()
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * depth
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in itertools.pairwise(dims)])
        self.num_classes = num_classes

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional StyleGAN2 generator needs labels y")
            onehot = F.one_hot(y.long(), self.num_classes).to(z.dtype)
            x = torch.cat([x, normalize_2nd_moment(self.embed(onehot))], dim=1)
        return self.layers(x)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True,
                     fused: bool | None = None) -> Tensor:
    """Scale ``weight``'s input channels by each sample's ``styles``, optionally demodulate (rescale each
    output filter to unit norm, replacing AdaIN), and run the whole batch as one grouped convolution.

    ``fused=False`` computes the same thing by scaling activations instead of weights around one shared
    convolution (the paper's non-fused form); PyTorch's grouped convolution is slow on CPUs, so None
    picks fused on GPUs and non-fused elsewhere."""
    n, c_in, h, w = x.shape
    c_out, _, k, _ = weight.shape
    if fused is None:
        fused = x.device.type == "cuda"
    if not fused:
        out = F.conv2d(x * styles[:, :, None, None], weight, padding=k // 2)
        if demodulate:
            d = (weight.square().sum(dim=(2, 3))[None] * styles.square()[:, None, :]).sum(2)  # (N, O)
            out = out * (d + 1e-8).rsqrt()[:, :, None, None]
        return out
    wgt = weight[None] * styles[:, None, :, None, None]  # (N, O, I, k, k)
    if demodulate:
        wgt = wgt * (wgt.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    x = x.reshape(1, n * c_in, h, w)
    out = F.conv2d(x, wgt.reshape(n * c_out, c_in, k, k), padding=k // 2, groups=n)
    return out.reshape(n, c_out, *out.shape[2:])


class ModulatedConv(nn.Module):
    """A style-modulated convolution: an affine map of w gives one scale per input channel."""

    def __init__(self, c_in: int, c_out: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.scale = 1.0 / math.sqrt(c_in * kernel * kernel)
        self.demodulate, self.up = demodulate, up

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return modulated_conv2d(x, self.weight * self.scale, styles, self.demodulate)


class StyleLayer(nn.Module):
    """Modulated 3x3 convolution + per-pixel noise (learned strength, starting at 0) + bias + lrelu."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, res: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(c_in, c_out, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(c_out))
        gen = torch.Generator().manual_seed(res * 7919 + c_out)
        self.register_buffer("noise_const", torch.randn(1, 1, res, res, generator=gen), persistent=False)

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to image channels, no demodulation (Karras et al., 2020, fig. 2)."""

    def __init__(self, c_in: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(c_in, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image. Layer i reads ws[:, i]; each toRGB shares the w of the next conv."""

    def __init__(self, w_dim: int, side: int, channels: int, width: int):
        super().__init__()
        n = _log2_side(side)
        c4 = _channels(width, side, 4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.conv4 = StyleLayer(c4, c4, w_dim, 4)
        self.rgb4 = ToRGB(c4, channels, w_dim)
        self.convs, self.rgbs = nn.ModuleList(), nn.ModuleList()
        c = c4
        for level in range(3, n + 1):
            res = 2**level
            c_out = _channels(width, side, res)
            self.convs.append(nn.ModuleList([StyleLayer(c, c_out, w_dim, res, up=True),
                                             StyleLayer(c_out, c_out, w_dim, res)]))
            self.rgbs.append(ToRGB(c_out, channels, w_dim))
            c = c_out
        self.num_ws = 2 * n - 2

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        x = self.conv4(x, ws[:, 0], noise_mode)
        img = self.rgb4(x, ws[:, 1])
        i = 1
        for (conv0, conv1), rgb in zip(self.convs, self.rgbs):
            x = conv0(x, ws[:, i], noise_mode)
            x = conv1(x, ws[:, i + 1], noise_mode)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + rgb(x, ws[:, i + 2])
            i += 2
        return img


def mix_styles(ws: Tensor, ws2: Tensor, crossover: Tensor | int) -> Tensor:
    """Layers before ``crossover`` (per sample, or one int for all) keep ``ws``; the rest take ``ws2``."""
    layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]
    cut = torch.as_tensor(crossover, device=ws.device).reshape(-1, 1, 1)
    return torch.where(layer < cut, ws, ws2)


class StyleGAN2Generator(nn.Module):
    """``G(z, y)``: mapping -> (truncation, style mixing) -> synthesis. ``w_avg`` is tracked in training."""

    def __init__(self, cfg: NetConfig, z_dim: int, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
            raise UserError(f"StyleGAN2 needs square images, got shape {tuple(data_shape)}")
        self.z_dim, self.data_shape, self.num_classes = z_dim, tuple(data_shape), num_classes
        self.w_dim = z_dim
        depth = getattr(cfg, "mapping", 8)
        if depth < 1:
            raise UserError(f"g.mapping (mapping-network layers) must be >= 1, got {depth}")
        self.mapping = MappingNetwork(z_dim, self.w_dim, depth, num_classes)
        self.synthesis = SynthesisNetwork(self.w_dim, data_shape[-1], data_shape[0], cfg.width)
        self.num_ws = self.synthesis.num_ws
        self.w_avg_beta = 0.995
        self.noise_mode = "random"  # random | const (fixed per-layer noise: reproducible samples) | none
        self.register_buffer("w_avg", torch.zeros(self.w_dim))
        self.register_buffer("pl_mean", torch.zeros(()))  # path-length regulariser's running mean

    def map(self, z: Tensor, y: Tensor | None = None, truncation_psi: float = 1.0) -> Tensor:
        """z -> ws (N, num_ws, w_dim), updating ``w_avg`` in training mode; psi < 1 pulls w toward ``w_avg``."""
        w = self.mapping(z, y)
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1.0:
            w = self.w_avg.lerp(w, truncation_psi)
        return w[:, None].expand(-1, self.num_ws, -1)

    def forward(self, z: Tensor, y: Tensor | None = None, truncation_psi: float = 1.0,
                mixing: float = 0.0, noise_mode: str | None = None) -> Tensor:
        ws = self.map(z, y, truncation_psi)
        if mixing > 0:  # style mixing regularisation: a second latent takes over from a random layer
            ws2 = self.map(torch.randn_like(z), y, truncation_psi)
            cut = torch.randint(1, self.num_ws, (z.shape[0],), device=z.device)
            cut = torch.where(torch.rand(z.shape[0], device=z.device) < mixing, cut, self.num_ws)
            ws = mix_styles(ws, ws2, cut)
        return self.synthesis(ws, noise_mode or self.noise_mode)


# ---------------------------------------------------------------------------------------------
# discriminator


class ResidualBlock(nn.Module):
    """conv3x3 -> conv3x3 -> halve, plus a 1x1 skip; the sum is scaled by 1/sqrt(2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3, act=True)
        self.conv1 = EqualConv2d(c_in, c_out, 3, act=True)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(self.conv1(self.conv0(x)), 2)
        return (x + skip) / SQRT2


class StyleGAN2Discriminator(nn.Module):
    """``D(x, y)`` -> one realness logit per (packed) sample; conditional by projection or AC-GAN head."""

    def __init__(self, cfg: NetConfig, data_shape: tuple[int, ...], num_classes: int = 0):
        super().__init__()
        channels, side = data_shape[0], data_shape[-1]
        n = _log2_side(side)
        self.pack = cfg.pack
        self.from_rgb = EqualConv2d(channels * cfg.pack, _channels(cfg.width, side, side), 1, act=True)
        self.blocks = nn.Sequential(*[ResidualBlock(_channels(cfg.width, side, 2**lv), _channels(cfg.width, side, 2**(lv - 1)))
                                      for lv in range(n, 2, -1)])
        c4 = _channels(cfg.width, side, 4)
        self.mbstd = MinibatchStd(group_size=4)
        self.conv = EqualConv2d(c4 + 1, c4, 3, act=True)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)
        self.projection = Projection(num_classes, c4, False) if num_classes and cfg.cond == "projection" else None
        self.aux = EqualLinear(c4, num_classes) if num_classes and cfg.cond == "acgan" else None

    def forward(self, x: Tensor, y: Tensor | None = None, aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.blocks(self.from_rgb(pack(x, self.pack)))
        h = self.fc(self.conv(self.mbstd(h)).flatten(1))
        out = self.out(h)
        if self.projection is not None:
            out = out + self.projection(h, y[:: self.pack]) / math.sqrt(h.shape[1])
        return (out.squeeze(1), self.aux(h)) if aux else out.squeeze(1)
