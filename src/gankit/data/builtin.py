"""Data sets that need no download: scikit-learn's digits and two 2-D Gaussian mixtures."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gankit.config import DataConfig
from gankit.data import Dataset, standardise
from gankit.errors import UserError


def ring8_centers() -> np.ndarray:
    """8 modes evenly spaced on a circle of radius 2 (VEEGAN / PacGAN protocol)."""
    angles = np.arange(8) * 2 * math.pi / 8
    return np.stack([2 * np.cos(angles), 2 * np.sin(angles)], axis=1)


def grid25_centers() -> np.ndarray:
    """25 modes at {-4, -2, 0, 2, 4}^2."""
    return np.array(list(itertools.product(range(-4, 5, 2), repeat=2)), dtype=np.float64)


# name -> (centres, standard deviation of each mode)
MIXTURES: dict[str, tuple[np.ndarray, float]] = {
    "ring8": (ring8_centers(), 0.02),
    "grid25": (grid25_centers(), 0.05),
}

TOY_SIZE = 50_000


def sample_mixture(name: str, n: int, seed: int = 0) -> np.ndarray:
    centers, std = MIXTURES[name]
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(centers), size=n)
    return centers[which] + std * rng.standard_normal((n, 2))


def _mixture(name: str) -> Callable[[DataConfig], Dataset]:
    def load(cfg: DataConfig) -> Dataset:
        # A fixed draw (seed 0) so that every run sees the same training set.
        x = torch.from_numpy(sample_mixture(name, TOY_SIZE, seed=0)).float()
        return standardise(x, name=name)

    return load


def digits(cfg: DataConfig) -> Dataset:
    """scikit-learn's 1797 handwritten 8x8 digits (values 0..16), upsampled to ``cfg.size``."""
    from sklearn.datasets import load_digits

    if cfg.size < 8:
        raise UserError(f"digits are 8x8; data.size must be at least 8, got {cfg.size}")
    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float()[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    if cfg.size != 8:
        x = F.interpolate(x, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False).clamp(0, 1)
    if cfg.channels == 3:
        x = x.repeat(1, 3, 1, 1)
    y = torch.from_numpy(bunch.target).long()
    return Dataset(x=x * 2 - 1, y=y, classes=[str(i) for i in range(10)], kind="image", name="digits")


BUILTINS: dict[str, Callable[[DataConfig], Dataset]] = {
    "digits": digits,
    "ring8": _mixture("ring8"),
    "grid25": _mixture("grid25"),
}
