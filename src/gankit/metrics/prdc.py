"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al., 2019) and density/coverage (Naeem et al., 2020).

Each real (or fake) sample owns a ball reaching its k-th nearest neighbour in its own set.
- precision: share of fakes inside at least one real ball (quality: drops when fakes leave the data).
- recall: share of reals inside at least one fake ball (diversity: drops when fakes shrink or collapse).
- density: mean number of real balls holding each fake, divided by k (about 1 when the sets match,
  above 1 when fakes crowd dense regions, below 1 when they stray); robust to real outliers.
- coverage: share of reals whose own ball holds at least one fake (diversity, robust to fake outliers).
Balls are closed (distance <= radius). Pairwise distances are computed in row chunks, so memory stays
about `chunk_elems` floats however many samples there are (10k x 10k runs in a few hundred MB).
"""

from __future__ import annotations

import numpy as np

from gankit.errors import UserError
from gankit.metrics.fid import check_same_dim

CHUNK_ELEMS = 2**23  # float64 entries per distance block: 64 MiB


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = (a * a).sum(axis=1)[:, None] + b_sq[None, :] - 2 * a @ b.T
    return np.maximum(d, 0)


def _rows_per_chunk(n_cols: int, chunk_elems: int) -> int:
    return max(1, chunk_elems // max(n_cols, 1))


def knn_radii(x: np.ndarray, ks: tuple[int, ...], chunk_elems: int = CHUNK_ELEMS) -> dict[int, np.ndarray]:
    """Squared distance from each row of x to its k-th nearest other row, for each k in ks."""
    k_max = max(ks)
    if len(x) < k_max + 1:
        raise UserError(
            f"k-NN metrics with k={k_max} need at least {k_max + 1} samples per set, got {len(x)}"
        )
    x_sq = (x * x).sum(axis=1)
    out = {k: np.empty(len(x)) for k in ks}
    step = _rows_per_chunk(len(x), chunk_elems)
    for start in range(0, len(x), step):
        d = _sq_dists(x[start : start + step], x, x_sq)
        # Index k (not k-1) because each point's nearest neighbour in its own set is itself.
        part = np.partition(d, list(ks), axis=1)
        for k in ks:
            out[k][start : start + step] = part[:, k]
    return out


def prdc(
    real_feats: np.ndarray,
    fake_feats: np.ndarray,
    *,
    k_pr: int | None = 3,
    k_dc: int | None = 5,
    chunk_elems: int = CHUNK_ELEMS,
) -> dict[str, float]:
    """Precision/recall with k=k_pr and density/coverage with k=k_dc in one chunked pass.

    Pass None for k_pr or k_dc to skip that pair. Returns keys precision, recall, density, coverage.
    """
    check_same_dim(real_feats, fake_feats)
    real = np.asarray(real_feats, np.float64)
    fake = np.asarray(fake_feats, np.float64)
    real_ks = tuple(k for k in (k_pr, k_dc) if k is not None)
    if not real_ks:
        return {}
    real_r = knn_radii(real, real_ks, chunk_elems)
    fake_r = knn_radii(fake, (k_pr,), chunk_elems)[k_pr] if k_pr is not None else None

    fake_sq = (fake * fake).sum(axis=1)
    fake_in_real_ball = np.zeros(len(fake), bool)  # precision
    fake_ball_counts = np.zeros(len(fake))  # density
    real_in_fake_ball = np.zeros(len(real), bool)  # recall
    real_ball_has_fake = np.zeros(len(real), bool)  # coverage
    step = _rows_per_chunk(len(fake), chunk_elems)
    for start in range(0, len(real), step):
        rows = slice(start, start + step)
        d = _sq_dists(real[rows], fake, fake_sq)  # (chunk of reals, all fakes)
        if k_pr is not None:
            fake_in_real_ball |= (d <= real_r[k_pr][rows, None]).any(axis=0)
            real_in_fake_ball[rows] = (d <= fake_r[None, :]).any(axis=1)
        if k_dc is not None:
            inside = d <= real_r[k_dc][rows, None]
            fake_ball_counts += inside.sum(axis=0)
            real_ball_has_fake[rows] = inside.any(axis=1)

    out: dict[str, float] = {}
    if k_pr is not None:
        out["precision"] = float(fake_in_real_ball.mean())
        out["recall"] = float(real_in_fake_ball.mean())
    if k_dc is not None:
        out["density"] = float(fake_ball_counts.mean() / k_dc)
        out["coverage"] = float(real_ball_has_fake.mean())
    return out


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019)."""
    out = prdc(real_feats, fake_feats, k_pr=k, k_dc=None)
    return out["precision"], out["recall"]


def density_coverage(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al., 2020)."""
    out = prdc(real_feats, fake_feats, k_pr=None, k_dc=k)
    return out["density"], out["coverage"]
