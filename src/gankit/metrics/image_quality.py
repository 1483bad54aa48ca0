"""Full-reference image quality for super-resolution: PSNR and SSIM on the luma (Y) channel.

The super-resolution literature (SRCNN, SRGAN, EDSR ...) measures both on Y of ITU-R BT.601
YCbCr (values 16..235, as MATLAB's ``rgb2ycbcr``), after cropping ``border`` pixels (usually the
scale factor) from every side, where the reconstruction has no neighbours to work with.
SSIM follows Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
averaged over the positions where the window fits inside the image.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from gankit.errors import UserError


def to_y(img: np.ndarray) -> np.ndarray:
    """Luma in 16..235 (float64) from an (H, W, 3) RGB or (H, W) grey uint8 image, or floats in 0..255.

    Grey images are taken as R = G = B, so their Y is 16 + 219/255 * value."""
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        return 16.0 + x * (65.481 + 128.553 + 24.966) / 255.0
    if x.ndim != 3 or x.shape[-1] != 3:
        raise UserError(f"expected an (H, W) or (H, W, 3) image, got shape {x.shape}")
    return 16.0 + (x[..., 0] * 65.481 + x[..., 1] * 128.553 + x[..., 2] * 24.966) / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise UserError(f"images differ in shape: {a.shape} vs {b.shape}")
    if y_channel:
        a, b = to_y(a), to_y(b)
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
    if border:
        if min(a.shape[:2]) <= 2 * border:
            raise UserError(f"image of {a.shape[1]}x{a.shape[0]} is too small for a border crop of {border}")
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0, y_channel: bool = True, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of two uint8-range images (inf when they are equal)."""
    a, b = _prepare(a, b, border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, border: int = 0, y_channel: bool = True, data_range: float = 255.0,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity (Wang et al., 2004) with a Gaussian window; 1 for equal images.

    On colour images with ``y_channel=False`` the channels are scored separately and averaged."""
    a, b = _prepare(a, b, border, y_channel)
    if a.ndim == 3:
        return float(np.mean([ssim(a[..., c], b[..., c], 0, False, data_range, sigma, k1, k2)
                              for c in range(a.shape[-1])]))
    truncate = 3.5  # an 11x11 window at sigma 1.5
    radius = int(truncate * sigma + 0.5)
    if min(a.shape) < 2 * radius + 1:
        raise UserError(f"SSIM needs images of at least {2 * radius + 1}x{2 * radius + 1} pixels, got {a.shape}")

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma, truncate=truncate)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    # Only the positions where the whole window lies inside the image ("valid"), as in Wang et al.
    return float(s[radius:-radius, radius:-radius].mean())
