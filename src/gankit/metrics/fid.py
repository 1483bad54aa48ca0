"""Fréchet Inception Distance (Heusel et al., 2017) on any feature set."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from gankit.errors import UserError


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64, unbiased) of an (N, D) feature matrix."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise UserError(f"FID needs at least 2 feature vectors of shape (N, D), got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), computed in float64 as the
    reference TTUR / pytorch-fid code does, including its two numerical guards.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise UserError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # A singular product (fewer samples than dimensions) has no finite square root: nudge both
        # covariances off singularity, as the reference implementation does.
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off can leave a tiny imaginary part; a large one means the result is meaningless.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm gave a large imaginary component {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    # scipy warns (rather than fails) on singular input; the caller checks finiteness instead.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return np.asarray(linalg.sqrtm(a))


def fid(real_feats: np.ndarray, fake_feats: np.ndarray) -> float:
    """FID between two (N, D) feature sets: the Fréchet distance of their fitted Gaussians."""
    check_same_dim(real_feats, fake_feats)
    return frechet_distance(*feature_stats(real_feats), *feature_stats(fake_feats))


def check_same_dim(real_feats: np.ndarray, fake_feats: np.ndarray) -> None:
    """Raise a one-line UserError unless both sets are (N, D) with the same D."""
    real_shape, fake_shape = np.shape(real_feats), np.shape(fake_feats)
    if len(real_shape) != 2 or len(fake_shape) != 2:
        raise UserError(f"features must be 2-D (N, D); got real {real_shape} and fake {fake_shape}")
    if real_shape[1] != fake_shape[1]:
        raise UserError(
            f"real and fake feature dimensions differ: {real_shape[1]} vs {fake_shape[1]} "
            "(different shapes or channels?)"
        )
