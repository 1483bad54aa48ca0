"""Mode-specific normalisation's mixture fit, for many table columns at once.

CTGAN fits a variational Bayesian Gaussian mixture with a Dirichlet-process prior on the weights to
each continuous column (scikit-learn's ``BayesianGaussianMixture``). One column at a time, that fit is
dominated by Python overhead: about 150 ms for 400 values, seconds for a table with 30 numeric columns,
as long as a few hundred training steps. The updates are the same closed-form coordinate ascent for every
column, so here they run on a (columns, rows, components) array at once: the same model, priors and
initialisation scheme as scikit-learn's, at most ``iterations`` rounds.

Model (Blei & Jordan, 2006; Bishop, 2006, ch. 10, for one dimension), per column:
  weights by stick-breaking, v_k ~ Beta(1, gamma0); mean and precision of component k ~ Normal-Gamma
  with mean prior m0 (the column mean), mean precision prior beta0 = 1, nu0 = 1 degree of freedom and
  scale prior the column variance. Initial responsibilities: one point per component, picked by k-means++.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma

REG_COVAR = 1e-6  # added to each component's variance, as scikit-learn does
EPS = 10 * np.finfo(np.float64).eps


def fit_mixtures(columns: list[np.ndarray], max_modes: int, seed: int = 0, *, concentration: float = 1e-3,
                 iterations: int = 100, chunk: int = 64) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Fit one mixture per column of (standardised, finite) values; (weights, means, variances) each.

    Every column gets ``min(max_modes, distinct values)`` components; weights sum to 1 and are the
    posterior mean of the stick-breaking weights. Columns are processed ``chunk`` at a time so memory
    stays at chunk x rows x components."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(0, len(columns), chunk):
        out.extend(_fit_chunk(columns[i : i + chunk], max_modes, rng, concentration, iterations))
    return out


def _fit_chunk(columns: list[np.ndarray], max_modes: int, rng: np.random.Generator, gamma0: float,
               iterations: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    # Each column as its distinct values and their counts: responsibilities depend on the value alone, so
    # every sum over rows is a count-weighted sum over values. The same fit, and on columns of codes or
    # rounded numbers (ages, counts) a few values instead of thousands of rows.
    distinct = [np.unique(x, return_inverse=True, return_counts=True) for x in columns]
    C, N = len(columns), max(len(u) for u, _, _ in distinct)
    K = max_modes
    z = np.zeros((C, N))
    counts = np.zeros((C, N))  # each value's count (0 pads the shorter columns)
    comps = np.zeros((C, K), bool)
    resp = np.zeros((C, N, K))
    for c, (x, (values, inverse, count)) in enumerate(zip(columns, distinct)):
        z[c, : len(values)], counts[c, : len(values)] = values, count
        k = min(K, len(values))
        comps[c, :k] = True
        # seeded on the rows, as scikit-learn does; a seed row stands for its value
        resp[c, inverse[_kmeans_plusplus(x, k, rng)], np.arange(k)] = 1.0
    n = counts.sum(1)
    m0 = (z * counts).sum(1) / n  # (C,)
    var0 = ((z - m0[:, None]) ** 2 * counts).sum(1) / np.maximum(n - 1, 1)  # the scale prior: the column variance
    beta0, nu0 = 1.0, 1.0

    zr = np.stack([z, z * z], axis=1)  # (C, 2, N): first and second moments come from one matmul

    def m_step(resp: np.ndarray) -> tuple[np.ndarray, ...]:
        nk = resp.sum(1) + EPS  # (C, K)
        moments = zr @ resp  # (C, 2, K)
        xk = moments[:, 0] / nk
        sk = np.maximum(moments[:, 1] / nk - xk**2, 0.0) + REG_COVAR
        # stick-breaking: Beta(1 + n_k, gamma0 + mass of the later components)
        later = np.cumsum(nk[:, ::-1], axis=1)[:, ::-1] - nk
        a, b = 1.0 + nk, gamma0 + later
        beta = beta0 + nk
        mean = (beta0 * m0[:, None] + nk * xk) / beta
        nu = nu0 + nk
        var = (var0[:, None] + nk * sk + beta0 * nk / beta * (xk - m0[:, None]) ** 2) / nu
        return a, b, beta, mean, nu, var

    def e_step(a, b, beta, mean, nu, var) -> np.ndarray:
        dab = digamma(a + b)
        log_w = digamma(a) - dab + np.concatenate([np.zeros((C, 1)), np.cumsum(digamma(b) - dab, 1)[:, :-1]], 1)
        prec = 1.0 / var
        # everything in log p(z, k) that does not depend on z, per component; -inf for padding components
        const = (log_w - 0.5 * np.log(2 * np.pi) + 0.5 * np.log(prec) - 0.5 * np.log(nu)
                 + 0.5 * (np.log(2.0) + digamma(0.5 * nu) - 1.0 / beta))
        const = np.where(comps, const, -np.inf)
        log_p = const[:, None, :] - 0.5 * prec[:, None, :] * (z[:, :, None] - mean[:, None, :]) ** 2
        log_p -= log_p.max(axis=2, keepdims=True)
        r = np.exp(log_p, out=log_p)
        r *= (counts / r.sum(axis=2))[:, :, None]
        return r

    params = m_step(resp)
    for it in range(iterations):
        new = m_step(e_step(*params))
        # converged when no component's mean or variance moves (in column standard deviations)
        done = it % 10 == 9 and max(np.abs(new[3] - params[3]).max(), np.abs(new[5] - params[5]).max()) < 1e-5
        params = new
        if done:
            break
    a, b, _, mean, _, var = params
    stick = a / (a + b)
    weights = stick * np.concatenate([np.ones((C, 1)), np.cumprod(1 - stick, 1)[:, :-1]], 1)
    out = []
    for c in range(C):
        w = weights[c, comps[c]]
        out.append((w / w.sum(), mean[c, comps[c]], var[c, comps[c]]))
    return out


def _kmeans_plusplus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` distinct-valued seeds by greedy k-means++ (Arthur & Vassilvitskii, 2007; the variant
    scikit-learn uses): the first uniform; then 2 + log k candidates drawn with probability ~ squared distance
    to the nearest seed so far, keeping the one that lowers the total squared distance most."""
    trials = 2 + int(np.log(k))
    picks = [int(rng.integers(len(x)))]
    d2 = (x - x[picks[0]]) ** 2
    for _ in range(1, k):
        cands = rng.choice(len(x), size=trials, p=d2 / d2.sum())
        new = np.minimum(d2[None, :], (x[None, :] - x[cands, None]) ** 2)
        best = int(new.sum(1).argmin())
        picks.append(int(cands[best]))
        d2 = new[best]
    return np.array(picks)
