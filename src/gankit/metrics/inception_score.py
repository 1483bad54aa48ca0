"""Inception Score (Salimans et al., 2016) from class probabilities of generated samples."""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from gankit.errors import UserError


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS mean and std over `splits` contiguous splits: exp(E_x KL(p(y|x) || p(y))).

    `probs` is (N, K) softmax output. Like the original code, each split has N // splits rows and the
    remainder is dropped. Uniform predictions give 1; confident predictions balanced over K classes give K.
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2:
        raise UserError(f"Inception Score needs (N, classes) probabilities, got shape {probs.shape}")
    size = probs.shape[0] // splits
    if size < 1:
        raise UserError(
            f"Inception Score with {splits} splits needs at least {splits} samples, got {len(probs)}"
        )
    scores = []
    for i in range(splits):
        part = probs[i * size : (i + 1) * size]
        p_y = part.mean(axis=0, keepdims=True)
        # xlogy makes 0 log 0 = 0, so one-hot predictions are exact rather than NaN.
        kl = (xlogy(part, part) - xlogy(part, p_y)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
