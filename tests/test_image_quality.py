"""PSNR and SSIM on the Y channel: known values, agreement with scikit-image, border crop, bad input."""

import math

import numpy as np
import pytest

from gankit.errors import UserError
from gankit.metrics.image_quality import psnr, ssim, to_y


def test_y_channel_range():
    assert to_y(np.full((2, 2, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0, abs=1e-3)
    assert to_y(np.zeros((2, 2, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    grey = np.full((2, 2), 100, np.uint8)
    assert to_y(grey)[0, 0] == pytest.approx(to_y(np.full((2, 2, 3), 100, np.uint8))[0, 0])


def test_psnr_known_values():
    a = np.full((20, 20), 100.0)
    assert psnr(a, a + 10, y_channel=False) == pytest.approx(20 * math.log10(255 / 10))
    # on Y, a grey difference of 10 becomes 10 * 219 / 255
    assert psnr(a.astype(np.uint8), (a + 10).astype(np.uint8)) == pytest.approx(20 * math.log10(255 / (10 * 219 / 255)))
    assert psnr(a, a) == math.inf


def test_border_crop_ignores_the_border():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (30, 30, 3)).astype(np.uint8)
    b = a.copy()
    b[:4] = 0
    assert psnr(a, b, border=4) == math.inf
    assert psnr(a, b, border=3) < 40
    with pytest.raises(UserError, match="too small"):
        psnr(a[:8, :8], b[:8, :8], border=4)


def test_ssim_closed_form_for_constant_images():
    # constant images: variances and covariance vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    c1 = (0.01 * 255) ** 2
    got = ssim(np.full((16, 16), 50.0), np.full((16, 16), 100.0), y_channel=False)
    assert got == pytest.approx((2 * 50 * 100 + c1) / (50**2 + 100**2 + c1))


def test_ssim_identity_noise_and_skimage_agreement():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    very = np.clip(a + rng.normal(0, 60, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    assert 1.0 > ssim(a, noisy) > ssim(a, very)
    metrics = pytest.importorskip("skimage.metrics")
    ref = metrics.structural_similarity(to_y(a), to_y(noisy), data_range=255, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False)
    assert ssim(a, noisy) == pytest.approx(ref, abs=1e-10)


def test_bad_shapes():
    with pytest.raises(UserError, match="differ in shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(UserError, match="at least 11x11"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
