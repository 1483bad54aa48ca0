"""How many separate clusters a set of vectors has: the code count for ``g.codes=-1`` (an InfoGAN code value
per cluster, so the generator can jump between clusters instead of drawing samples across the gaps)."""

from __future__ import annotations

import warnings

import numpy as np


def count_clusters(x: np.ndarray, n: int = 4000, seed: int = 0, max_noise: float = 0.1) -> int:
    """The number of dense regions that gaps separate, by HDBSCAN on up to ``n`` rows of ``x``; 1 when the data
    do not split into clusters (more than ``max_noise`` of the rows left unassigned).

    Density-connected regions, not Gaussian components, are what a continuous generator cannot bridge: two moons
    count 2, where the Gaussian mixture with the lowest BIC counts 30 pieces (and 30 codes made a run worse than
    no code). Smallest cluster: 1 % of the rows (at least 10). ring8 and grid25 count 8 and 25 in about 0.1 s.
    """
    from sklearn.cluster import HDBSCAN

    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) > n:
        x = x[np.random.default_rng(seed).choice(len(x), n, replace=False)]
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's notice about the `copy` default
        labels = HDBSCAN(min_cluster_size=max(10, len(x) // 100)).fit_predict(x)
    k = len(set(labels.tolist()) - {-1})
    return 1 if k < 2 or (labels == -1).mean() > max_noise else k
