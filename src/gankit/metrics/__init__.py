"""GAN evaluation metrics: one small file per metric, one shared feature helper, one table by name.

To add a metric: write `metrics/<name>.py` with a plain function on feature arrays, then add one
adapter line to `METRICS` below. Every adapter takes `MetricInputs` and returns flat float keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gankit.errors import UserError
from gankit.metrics.fid import check_same_dim, fid
from gankit.metrics.inception_score import inception_score, softmax
from gankit.metrics.kid import kid
from gankit.metrics.modes import mode_coverage
from gankit.metrics.prdc import prdc


@dataclass(frozen=True)
class MetricInputs:
    """Everything a metric may read; each metric uses what it needs and checks it is there."""

    real_feats: np.ndarray
    fake_feats: np.ndarray
    real_logits: np.ndarray | None = None
    fake_logits: np.ndarray | None = None
    centers: np.ndarray | None = None  # toy mixtures: mode centres, compared with raw fake samples
    mode_std: float | None = None
    seed: int = 0


def _fid(m: MetricInputs) -> dict[str, float]:
    return {"fid": fid(m.real_feats, m.fake_feats)}


def _kid(m: MetricInputs) -> dict[str, float]:
    mean, std = kid(m.real_feats, m.fake_feats, seed=m.seed)
    return {"kid_mean": mean, "kid_std": std}


def _is(m: MetricInputs) -> dict[str, float]:
    if m.fake_logits is None:
        raise UserError("the Inception Score needs class logits: use --features inception or classifier")
    mean, std = inception_score(softmax(m.fake_logits))
    return {"is_mean": mean, "is_std": std}


def _pr(m: MetricInputs) -> dict[str, float]:
    return prdc(m.real_feats, m.fake_feats, k_pr=3, k_dc=None)


def _dc(m: MetricInputs) -> dict[str, float]:
    return prdc(m.real_feats, m.fake_feats, k_pr=None, k_dc=5)


def _modes(m: MetricInputs) -> dict[str, float]:
    if m.centers is None or m.mode_std is None:
        raise UserError("mode coverage needs a toy mixture's centres and std (only for 2-D toy data sets)")
    return mode_coverage(m.fake_feats, m.centers, m.mode_std)


METRICS: dict[str, Callable[[MetricInputs], dict[str, float]]] = {
    "fid": _fid,
    "kid": _kid,
    "is": _is,
    "pr": _pr,
    "dc": _dc,
    "modes": _modes,
}
DEFAULT_METRICS = ("fid", "kid", "pr", "dc")


def compute_metrics(
    real_feats: np.ndarray,
    fake_feats: np.ndarray,
    names: Sequence[str] = DEFAULT_METRICS,
    *,
    real_logits: np.ndarray | None = None,
    fake_logits: np.ndarray | None = None,
    centers: np.ndarray | None = None,
    mode_std: float | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Compute the named metrics on (N, D) features; returns one flat dict plus n_real and n_fake.

    Names: fid, kid (kid_mean, kid_std), is (is_mean, is_std), pr (precision, recall),
    dc (density, coverage), modes (modes, hq, reverse_kl; fake_feats must be raw 2-D points).
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    check_same_dim(real_feats, fake_feats)
    inputs = MetricInputs(real_feats, fake_feats, real_logits, fake_logits, centers, mode_std, seed)
    out: dict[str, float] = {}
    names = list(dict.fromkeys(names))
    if "pr" in names and "dc" in names:
        # One chunked pass gives all four k-NN numbers; the pairwise distances are the costly part.
        out.update(prdc(real_feats, fake_feats, k_pr=3, k_dc=5))
        names = [n for n in names if n not in ("pr", "dc")]
    for name in names:
        out.update(METRICS[name](inputs))
    out["n_real"], out["n_fake"] = len(real_feats), len(fake_feats)
    return out


__all__ = ["DEFAULT_METRICS", "METRICS", "MetricInputs", "compute_metrics"]
