"""Mode coverage on toy 2-D mixtures (the ring-of-8 / grid-of-25 protocol of Srivastava et al., 2017)."""

from __future__ import annotations

import numpy as np

from gankit.errors import UserError


def mode_coverage(
    samples: np.ndarray,
    centers: np.ndarray,
    std: float,
    *,
    hq_sigmas: float = 3.0,
    min_count: int = 20,
) -> dict[str, float]:
    """Modes captured, high-quality fraction and reverse KL for samples of a Gaussian mixture.

    A sample is high quality (HQ) when it lies within `hq_sigmas` * std of its nearest centre; a mode
    is captured when at least `min_count` HQ samples are nearest to it. `reverse_kl` is
    KL(p_gen || uniform) where p_gen is the histogram over modes of HQ samples (0 log 0 = 0); it is 0
    for a perfect spread, log(M) for total collapse onto one mode, and inf when no sample is HQ.
    Returns {"modes": int, "hq": fraction in [0, 1], "reverse_kl": float}.
    """
    samples = np.asarray(samples, np.float64)
    centers = np.asarray(centers, np.float64)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise UserError(
            f"mode coverage needs samples (N, D) and centers (M, D); got {samples.shape}, {centers.shape}"
        )
    if len(samples) == 0:
        raise UserError("mode coverage needs at least one sample")
    dists = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=2)
    nearest = dists.argmin(axis=1)
    hq = dists[np.arange(len(samples)), nearest] <= hq_sigmas * std
    counts = np.bincount(nearest[hq], minlength=len(centers))
    if counts.sum() == 0:
        reverse_kl = float("inf")
    else:
        p = counts[counts > 0] / counts.sum()
        reverse_kl = float((p * np.log(p * len(centers))).sum())
    return {"modes": int((counts >= min_count).sum()), "hq": float(hq.mean()), "reverse_kl": reverse_kl}
