"""Differentiable augmentation for training GANs on little data, applied wherever D looks at an image.

- :class:`DiffAugment` (Zhao et al., 2020): colour, translation and cutout on every image D sees, real
  and fake, in the D and the G pass; differentiable, so G learns through it.
- :class:`AdaptiveAugment` (ADA, Karras et al., 2020): geometric and colour transforms, each applied with
  probability ``p``; ``p`` follows the overfitting heuristic r_t = E[sign(D(real))], rising while r_t is
  above ``target`` (0.6) and falling below it. ``p`` and its accumulators are buffers, so a checkpoint of
  the module that holds them (the GAN task registers the pipeline on D) resumes them exactly.

Both take and return (N, C, H, W) images in [-1, 1]; :func:`build_augment` picks one by name
(``train.augment``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.distributed import sum_over_ranks
from gankit.errors import UserError

AUGMENTS = ("none", "diffaugment", "ada")


def _uniform(n: int, x: Tensor) -> Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)


def _grey_mean(x: Tensor) -> Tensor:
    return x.mean(dim=1, keepdim=True)


def translate(x: Tensor, shift: Tensor) -> Tensor:
    """Shift each image by whole pixels ``shift`` (N, 2: dx, dy), filling with zeros."""
    n, _, h, w = x.shape
    ys = torch.arange(h, device=x.device)[None, :, None] - shift[:, 1, None, None]
    xs = torch.arange(w, device=x.device)[None, None, :] - shift[:, 0, None, None]
    inside = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).to(x.dtype)[:, None]
    idx = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
    return x.flatten(2).gather(2, idx).reshape_as(x) * inside


class DiffAugment(nn.Module):
    """DiffAugment's ``policy``: any of colour (brightness, saturation, contrast), translation (1/8 of
    the side) and cutout (a square of half the side)."""

    POLICIES = ("color", "translation", "cutout")

    def __init__(self, policy: str = "color,translation,cutout"):
        super().__init__()
        self.policy = [p.strip() for p in policy.split(",") if p.strip()]
        bad = [p for p in self.policy if p not in self.POLICIES]
        if bad:
            raise UserError(f"unknown DiffAugment policy {bad}; choose from {', '.join(self.POLICIES)}")

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if "color" in self.policy:
            x = x + (_uniform(n, x) - 0.5)
            if c > 1:
                x = (x - _grey_mean(x)) * (_uniform(n, x) * 2) + _grey_mean(x)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (_uniform(n, x) + 0.5) + mean
        if "translation" in self.policy:
            r = torch.tensor([w, h], device=x.device) * 0.125
            r = r.round().long().clamp_min(1)
            shift = (torch.rand(n, 2, device=x.device) * (2 * r + 1)).long() - r
            x = translate(x, shift)
        if "cutout" in self.policy:
            ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
            cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
            cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
            ys = torch.arange(h, device=x.device)[None, :, None]
            xs = torch.arange(w, device=x.device)[None, None, :]
            top, left = cy - ch // 2, cx - cw // 2
            hole = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
            x = x * (~hole)[:, None].to(x.dtype)
        return x


class AdaptiveAugment(nn.Module):
    """ADA's pipeline and controller. Call ``observe(D(real) logits)`` once per D step; every
    ``interval`` steps ``p`` moves by sign(r_t - target) x (images seen) / (``kimg`` x 1000)."""

    def __init__(self, target: float = 0.6, kimg: float = 20.0, interval: int = 4, p: float = 0.0):
        super().__init__()
        if not 0.0 < target < 1.0 or kimg <= 0:
            raise UserError(f"ada needs 0 < train.ada_target < 1 and train.ada_kimg > 0, got {target}, {kimg}")
        self.target, self.kimg, self.interval = target, kimg, interval
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.tensor(0.0))  # the last r_t the controller acted on
        self.register_buffer("sign_sum", torch.tensor(0.0))
        self.register_buffer("count", torch.tensor(0.0))
        self.register_buffer("calls", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        """Accumulate sign(D(real)) and adjust ``p`` every ``interval`` calls (no host synchronisation)."""
        logits = real_logits.detach().float()
        # r_t over the global batch (as StyleGAN2-ADA): every rank then moves p alike, and p does not
        # follow only the rank whose buffers DDP broadcasts
        stats = sum_over_ranks(torch.stack([torch.sign(logits).sum(), logits.new_full((), float(logits.numel()))]))
        self.sign_sum += stats[0]
        self.count += stats[1]
        self.calls += 1
        due = self.calls % self.interval == 0
        rt = self.sign_sum / self.count.clamp_min(1.0)
        step = torch.sign(rt - self.target) * self.count / (self.kimg * 1000.0)
        self.p.copy_(torch.where(due, (self.p + step).clamp(0.0, 1.0), self.p))
        self.rt.copy_(torch.where(due, rt, self.rt))
        self.sign_sum.copy_(torch.where(due, torch.zeros_like(rt), self.sign_sum))
        self.count.copy_(torch.where(due, torch.zeros_like(rt), self.count))

    def _chance(self, n: int, x: Tensor, p: Tensor | float | None = None) -> Tensor:
        p = self.p if p is None else p
        return (torch.rand(n, device=x.device) < p).to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        eye = torch.eye(3, device=x.device, dtype=x.dtype).expand(n, 3, 3)
        # geometric ("blit" + "geom"): flip, quarter turns, integer translation, scale, rotation
        m = eye.clone()
        flip = 1 - 2 * self._chance(n, x) * torch.randint(0, 2, (n,), device=x.device).to(x.dtype)
        m = m @ _scale_matrix(flip, torch.ones_like(flip))
        quarter = self._chance(n, x) * torch.randint(0, 4, (n,), device=x.device).to(x.dtype)
        m = m @ _rotation_matrix(quarter * math.pi / 2)
        t = self._chance(n, x)[:, None] * (torch.rand(n, 2, device=x.device, dtype=x.dtype) * 2 - 1) * 0.125
        shift = (t * torch.tensor([w, h], device=x.device)).round() * 2 / torch.tensor([w, h], device=x.device)
        m = m @ _translation_matrix(shift)
        s = torch.exp2(torch.randn(n, device=x.device, dtype=x.dtype) * 0.2 * self._chance(n, x))
        m = m @ _scale_matrix(s, s)
        p_rot = 1 - torch.sqrt((1 - self.p).clamp(0, 1))  # two rotations, so each at the reduced chance
        angle = (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * math.pi * self._chance(n, x, p_rot)
        m = m @ _rotation_matrix(angle)
        grid = F.affine_grid(m[:, :2], list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # colour: brightness, contrast, saturation
        x = x + torch.randn(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 0.2 * self._chance(n, x)[:, None, None, None]
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        k = torch.exp2(torch.randn(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 0.5 * self._chance(n, x)[:, None, None, None])
        x = (x - mean) * k + mean
        if c > 1:
            k = torch.exp2(torch.randn(n, 1, 1, 1, device=x.device, dtype=x.dtype) * self._chance(n, x)[:, None, None, None])
            x = (x - _grey_mean(x)) * k + _grey_mean(x)
        return x


def _rotation_matrix(angle: Tensor) -> Tensor:
    c, s, z, o = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=1).reshape(-1, 3, 3)


def _scale_matrix(sx: Tensor, sy: Tensor) -> Tensor:
    z, o = torch.zeros_like(sx), torch.ones_like(sx)
    return torch.stack([sx, z, z, z, sy, z, z, z, o], dim=1).reshape(-1, 3, 3)


def _translation_matrix(t: Tensor) -> Tensor:
    z, o = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
    return torch.stack([o, z, t[:, 0], z, o, t[:, 1], z, z, o], dim=1).reshape(-1, 3, 3)


def build_augment(name: str, target: float = 0.6, kimg: float = 20.0) -> nn.Module | None:
    """The pipeline for ``train.augment``: None for ``none``."""
    if name == "none":
        return None
    if name == "diffaugment":
        return DiffAugment()
    if name == "ada":
        return AdaptiveAugment(target, kimg)
    raise UserError(f"train.augment must be one of {', '.join(AUGMENTS)}, got '{name}'")
