"""Known-answer tests for the metrics: each agrees with its published definition."""

import numpy as np
import pytest
from scipy.special import xlogy

from gankit.errors import UserError
from gankit.metrics import METRICS, compute_metrics
from gankit.metrics.fid import feature_stats, fid, frechet_distance
from gankit.metrics.inception_score import inception_score
from gankit.metrics.kid import kid, polynomial_mmd2
from gankit.metrics.modes import mode_coverage
from gankit.metrics.prdc import density_coverage, prdc, precision_recall


def gaussian(n, d, seed, shift=0.0, scale=1.0):
    # A fixed mixing matrix per dimension: correlated features, like real embeddings, and the same
    # distribution for every seed.
    mix = np.eye(d) + np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)
    return shift + scale * np.random.default_rng(seed).normal(size=(n, d)) @ mix


def closed_form_frechet(mu1, s1, mu2, s2):
    # Independent route: Tr sqrt(s1 s2) = Tr sqrt(s1^1/2 s2 s1^1/2), a symmetric PSD matrix.
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return (
        np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(middle, 0, None)).sum()
    )


# ---- FID ----


def test_fid_matches_closed_form_of_sample_statistics():
    a, b = gaussian(3000, 16, 0), gaussian(2000, 16, 1, shift=0.5, scale=1.3)
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    assert fid(a, b) == pytest.approx(closed_form_frechet(mu1, s1, mu2, s2), rel=1e-6)


def test_frechet_distance_of_diagonal_gaussians():
    # For commuting (diagonal) covariances d^2 = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    a = gaussian(1000, 32, 2)
    assert abs(fid(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_fid_stays_finite_when_covariances_are_singular():
    a, b = gaussian(10, 40, 3), gaussian(12, 40, 4, shift=1.0)  # fewer samples than dimensions
    value = fid(a, b)
    assert np.isfinite(value) and value > 0


def test_feature_stats_are_float64():
    mu, sigma = feature_stats(gaussian(50, 4, 5).astype(np.float32))
    assert mu.dtype == np.float64 and sigma.dtype == np.float64 and sigma.shape == (4, 4)


def test_fid_rejects_mismatched_dimensions():
    with pytest.raises(UserError, match="dimensions differ: 8 vs 9"):
        fid(gaussian(100, 8, 0), gaussian(100, 9, 1))


# ---- KID ----


def test_polynomial_mmd2_matches_the_unbiased_estimator_term_by_term():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)) + 0.5
    k = lambda a, b: (a @ b / 3 + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / (6 * 5)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(a, b) for a in x for b in y) / (6 * 5)
    assert polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_of_one_distribution_is_zero_within_two_std():
    mean, std = kid(gaussian(1500, 16, 0), gaussian(1500, 16, 1), num_subsets=100, subset_size=500)
    assert abs(mean) <= 2 * std


def test_kid_grows_with_a_shift():
    same, _ = kid(gaussian(800, 16, 0), gaussian(800, 16, 1), num_subsets=20, subset_size=400)
    shifted, std = kid(gaussian(800, 16, 0), gaussian(800, 16, 1, shift=0.5), num_subsets=20, subset_size=400)
    assert shifted > same + 5 * std


def test_kid_is_reproducible_for_a_seed():
    a, b = gaussian(300, 8, 0), gaussian(300, 8, 1)
    assert kid(a, b, seed=3, num_subsets=5) == kid(a, b, seed=3, num_subsets=5)


# ---- Inception Score ----


def test_inception_score_of_uniform_predictions_is_one():
    mean, std = inception_score(np.full((1000, 10), 0.1))
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_inception_score_of_balanced_one_hot_predictions_is_the_class_count(k):
    probs = np.tile(np.eye(k), (10, 1))  # 10 contiguous splits, each holding every class once
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_matches_the_definition_on_random_predictions():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5) * 0.3, size=100)
    mean, _ = inception_score(p, splits=1)
    expected = np.exp((xlogy(p, p) - xlogy(p, p.mean(0))).sum(1).mean())
    assert mean == pytest.approx(expected, rel=1e-12)


def test_inception_score_needs_a_sample_per_split():
    with pytest.raises(UserError, match="at least 10 samples"):
        inception_score(np.full((5, 3), 1 / 3))


# ---- precision / recall / density / coverage ----


def brute_force_prdc(real, fake, k_pr=3, k_dc=5):
    """Straight from the papers' definitions, O(n^2) memory (closed balls)."""
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=2)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=2)
    r_pr, r_dc = np.sort(d_rr, 1)[:, k_pr], np.sort(d_rr, 1)[:, k_dc]
    f_pr = np.sort(d_ff, 1)[:, k_pr]
    return {
        "precision": (d_rf <= r_pr[:, None]).any(0).mean(),
        "recall": (d_rf <= f_pr[None, :]).any(1).mean(),
        "density": (d_rf <= r_dc[:, None]).sum(0).mean() / k_dc,
        "coverage": (d_rf.min(1) <= r_dc).mean(),
    }


def test_prdc_matches_brute_force_and_chunking_does_not_change_it():
    real, fake = gaussian(200, 5, 0), gaussian(150, 5, 1, shift=0.3, scale=0.8)
    expected = brute_force_prdc(real, fake)
    for chunk_elems in (2**23, 1000, 1):
        got = prdc(real, fake, chunk_elems=chunk_elems)
        assert got == pytest.approx(expected, abs=1e-12)


def test_prdc_of_matching_distributions_is_near_one():
    out = prdc(gaussian(2000, 4, 0), gaussian(2000, 4, 1))
    assert out["precision"] > 0.85 and out["recall"] > 0.85 and out["coverage"] > 0.85
    assert 0.8 < out["density"] < 1.2


def test_prdc_moves_in_the_documented_directions():
    real = gaussian(1500, 4, 0)
    base = prdc(real, gaussian(1500, 4, 1))
    shifted = prdc(real, gaussian(1500, 4, 1, shift=2.0))  # fakes leave the data: quality and diversity drop
    shrunk = prdc(
        real, gaussian(1500, 4, 1, scale=0.3)
    )  # fakes crowd the centre: quality stays, diversity drops
    spread = prdc(real, gaussian(1500, 4, 1, scale=3.0))  # fakes overshoot: quality drops, recall stays
    for key in ("precision", "recall", "density", "coverage"):
        assert shifted[key] < base[key] - 0.2, key
    assert shrunk["precision"] >= base["precision"] - 0.02
    assert shrunk["density"] > base["density"]
    assert shrunk["recall"] < base["recall"] - 0.3 and shrunk["coverage"] < base["coverage"] - 0.3
    assert spread["precision"] < base["precision"] - 0.3 and spread["density"] < base["density"] - 0.3
    assert spread["recall"] >= base["recall"] - 0.02


def test_precision_recall_and_density_coverage_wrappers_use_their_own_k():
    real, fake = gaussian(100, 3, 0), gaussian(100, 3, 1, shift=0.5)
    expected = brute_force_prdc(real, fake, k_pr=3, k_dc=5)
    assert precision_recall(real, fake) == pytest.approx((expected["precision"], expected["recall"]))
    assert density_coverage(real, fake) == pytest.approx((expected["density"], expected["coverage"]))


def test_knn_metrics_need_k_plus_one_samples():
    with pytest.raises(UserError, match="k=5 need at least 6 samples"):
        prdc(gaussian(5, 3, 0), gaussian(50, 3, 1))
    with pytest.raises(UserError, match="k=3 need at least 4 samples"):
        precision_recall(gaussian(50, 3, 0), gaussian(3, 3, 1))


def test_prdc_rejects_mismatched_dimensions():
    with pytest.raises(UserError, match="differ"):
        prdc(gaussian(50, 3, 0), gaussian(50, 4, 1))


# ---- toy mode coverage ----

RING8 = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1) * 2


def test_mode_coverage_counts_modes_quality_and_reverse_kl():
    rng = np.random.default_rng(0)
    hq = np.concatenate([RING8[i] + rng.normal(scale=0.01, size=(30, 2)) for i in range(5)])
    junk = np.zeros((50, 2))  # the ring's centre: far from every mode
    out = mode_coverage(np.concatenate([hq, junk]), RING8, 0.02)
    assert out["modes"] == 5
    assert out["hq"] == pytest.approx(150 / 200)
    assert out["reverse_kl"] == pytest.approx(np.log(8 / 5))


def test_mode_coverage_of_a_perfect_and_a_collapsed_generator():
    perfect = np.repeat(RING8, 25, axis=0)
    assert mode_coverage(perfect, RING8, 0.02) == {"modes": 8, "hq": 1.0, "reverse_kl": pytest.approx(0.0)}
    collapsed = np.repeat(RING8[:1], 100, axis=0)
    out = mode_coverage(collapsed, RING8, 0.02)
    assert out["modes"] == 1 and out["reverse_kl"] == pytest.approx(np.log(8))


def test_a_mode_needs_min_count_hq_samples():
    samples = np.concatenate([np.repeat(RING8[:1], 20, axis=0), np.repeat(RING8[1:2], 19, axis=0)])
    assert mode_coverage(samples, RING8, 0.02)["modes"] == 1


def test_mode_coverage_without_hq_samples_has_infinite_reverse_kl():
    out = mode_coverage(np.zeros((10, 2)), RING8, 0.02)
    assert out == {"modes": 0, "hq": 0.0, "reverse_kl": float("inf")}


# ---- registry ----


def test_compute_metrics_returns_flat_keys():
    real, fake = gaussian(300, 6, 0), gaussian(200, 6, 1)
    logits = np.random.default_rng(0).normal(size=(200, 10))
    out = compute_metrics(real, fake, ["fid", "kid", "pr", "dc", "is"], fake_logits=logits)
    expected = {
        "fid",
        "kid_mean",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "is_mean",
        "is_std",
    }
    assert set(out) == expected | {"n_real", "n_fake"}
    assert out["n_real"] == 300 and out["n_fake"] == 200
    assert all(isinstance(v, (int, float)) for v in out.values())
    # The shared pr+dc pass gives what the separate metrics give.
    assert compute_metrics(real, fake, ["pr"])["precision"] == out["precision"]
    assert compute_metrics(real, fake, ["dc"])["coverage"] == out["coverage"]


def test_compute_metrics_modes_uses_the_raw_fake_points():
    real = np.repeat(RING8, 25, axis=0)
    out = compute_metrics(real, real, ["modes"], centers=RING8, mode_std=0.02)
    assert out["modes"] == 8 and out["hq"] == 1.0


@pytest.mark.parametrize(
    ("names", "kwargs", "message"),
    [
        (["nope"], {}, "unknown metric 'nope'"),
        (["is"], {}, "needs class logits"),
        (["modes"], {}, "centres and std"),
    ],
)
def test_compute_metrics_errors_are_one_line(names, kwargs, message):
    with pytest.raises(UserError, match=message) as err:
        compute_metrics(gaussian(20, 2, 0), gaussian(20, 2, 1), names, **kwargs)
    assert "\n" not in str(err.value)


def test_registry_names():
    assert set(METRICS) >= {"fid", "kid", "is", "pr", "dc", "modes"}
