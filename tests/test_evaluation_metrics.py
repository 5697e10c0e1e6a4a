"""Tests for tiny_cats.evaluation: FID/KID/PR math, reference cache, classifier report, PNG.

Fast by design: low-dimensional synthetic features everywhere the math allows; the real
InceptionV3 runs once, on six tiny random images, for a shape/plumbing check.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from tiny_cats.evaluation import (
    InceptionFeatureExtractor,
    classifier_based_score,
    compute_classifier_metrics,
    compute_fid_kid,
    expected_calibration_error,
    frechet_distance,
    load_inception,
    load_reference_stats,
    paired_bootstrap,
    plot_confusion_matrix,
    precision_recall,
    save_reference_stats,
)
from tiny_cats.evaluation.inception import INCEPTION_INPUT_SIZE

# --------------------------------------------------------------------------- Inception


def test_inception_preprocess_convention():
    """uint8 0..255 -> 299x299, TF range (x - 128) / 128, without running the network."""
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).reshape(3, 1, 1, 1).expand(3, 3, 17, 23)
    x = InceptionFeatureExtractor.preprocess(images)
    assert x.shape == (3, 3, INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE)
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([-1.0, 0.0, 127.0 / 128.0]))
    with pytest.raises(TypeError, match="uint8"):
        InceptionFeatureExtractor.preprocess(images.float() / 255)


def test_inception_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_inception(tmp_path / "nope.pt")


def test_real_inception_through_fid_kid_image_path():
    """The one real Inception run: 3 + 3 tiny random images through compute_fid_kid."""
    extractor = InceptionFeatureExtractor()
    assert extractor.num_features == 2048
    assert load_inception() is load_inception()  # lru_cache: loaded once per process
    seen = []
    extractor.register_forward_hook(lambda module, inputs, output: seen.append(tuple(output.shape)))

    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=gen)
    fake = torch.randint(0, 256, (3, 3, 48, 40), dtype=torch.uint8, generator=gen)
    result = compute_fid_kid(real, fake, extractor=extractor, batch_size=3, kid_subsets=2)

    assert seen == [(3, 2048), (3, 2048)]
    assert result["feature_dim"] == 2048 and result["n_real"] == 3 and result["kid_subset_size"] == 3
    assert np.isfinite(result["fid"]) and result["fid"] >= 0
    assert np.isfinite(result["kid_mean"])


# --------------------------------------------------------------------------- FID


def _commuting_gaussians(d=8, seed=0):
    """Two Gaussians with full (rotated) covariances that share eigenvectors: closed-form FID."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    e1, e2 = np.linspace(0.5, 2.0, d), np.linspace(2.0, 0.5, d) ** 1.5
    mu1, mu2 = np.zeros(d), np.full(d, 0.3)
    s1, s2 = q @ np.diag(e1) @ q.T, q @ np.diag(e2) @ q.T
    # ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); with shared eigenvectors the trace term
    # is sum (sqrt(e1) - sqrt(e2))^2.
    exact = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(e1) - np.sqrt(e2)) ** 2).sum())
    return mu1, s1, mu2, s2, exact


def test_fid_matches_closed_form_for_gaussians():
    mu1, s1, mu2, s2, exact = _commuting_gaussians()
    rng = np.random.default_rng(1)
    a = rng.multivariate_normal(mu1, s1, 20000)
    b = rng.multivariate_normal(mu2, s2, 20000)
    fid = compute_fid_kid(a, b, compute_kid=False)["fid"]
    assert fid == pytest.approx(exact, rel=0.03)
    # frechet_distance on the true parameters is exact.
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(exact, rel=1e-9)
    # ... and on the sample statistics it reproduces torchmetrics' number.
    sample = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert sample == pytest.approx(fid, rel=1e-8)


def test_frechet_distance_matches_scipy_sqrtm_for_non_commuting_covariances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_self_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    assert abs(compute_fid_kid(x, x.copy(), compute_kid=False)["fid"]) < 1e-8
    noise = rng.normal(size=x.shape)
    fids = [compute_fid_kid(x, x + s * noise, compute_kid=False)["fid"] for s in (0.25, 0.5, 1.0)]
    assert 0 < fids[0] < fids[1] < fids[2]


# --------------------------------------------------------------------------- KID


def test_kid_identical_sets_near_zero_and_shifted_sets_clearly_positive():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 16))
    same = compute_fid_kid(x, x.copy(), kid_subsets=20, kid_subset_size=100)
    shifted = compute_fid_kid(x, x + 0.5, kid_subsets=20, kid_subset_size=100)
    # Unbiased estimator: may dip below 0 (shared samples in both subsets push it slightly down).
    assert abs(same["kid_mean"]) < 0.06
    assert shifted["kid_mean"] > 0.5
    # Independent draws of one distribution: also ~0.
    other = compute_fid_kid(x, rng.normal(size=(500, 16)), kid_subsets=20, kid_subset_size=100)
    assert abs(other["kid_mean"]) < 0.06
    # Fixed seed -> reproducible, and the global RNG is left alone.
    state = torch.get_rng_state()
    again = compute_fid_kid(x, x + 0.5, kid_subsets=20, kid_subset_size=100)
    assert again["kid_mean"] == shifted["kid_mean"]
    assert torch.equal(state, torch.get_rng_state())


def test_kid_subset_size_is_capped_at_smaller_set():
    rng = np.random.default_rng(5)
    result = compute_fid_kid(rng.normal(size=(40, 4)), rng.normal(size=(30, 4)), kid_subsets=3)
    assert result["kid_subset_size"] == 30


# --------------------------------------------------------------------------- precision / recall


def _brute_force_pr(real, fake, k):
    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    d = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # (fake, real)
    precision = (d <= r_real[None]).any(axis=1).mean()
    recall = (d.T <= r_fake[None]).any(axis=1).mean()
    return precision, recall


def test_precision_recall_identical_far_apart_and_brute_force():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 8))
    same = precision_recall(x, x.copy(), k=3, batch_size=64)
    assert same["precision"] == 1.0 and same["recall"] == 1.0

    far = precision_recall(x, rng.normal(size=(300, 8)) + 50.0, k=3, batch_size=64)
    assert far["precision"] < 0.01 and far["recall"] < 0.01

    real, fake = rng.normal(size=(60, 5)), rng.normal(size=(45, 5)) * 1.5 + 0.5
    got = precision_recall(real, fake, k=3, batch_size=7)  # odd batch size exercises batching
    want = _brute_force_pr(real, fake, 3)
    assert got["precision"] == pytest.approx(want[0]) and got["recall"] == pytest.approx(want[1])
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1


# --------------------------------------------------------------------------- reference stats


def test_reference_stats_roundtrip(tmp_path):
    rng = np.random.default_rng(7)
    feats = rng.normal(size=(20, 6)).astype(np.float32)
    files = [f"img_{i:03d}.jpg" for i in range(20)]
    path = save_reference_stats(tmp_path / "ref" / "stats.npz", feats, files, meta={"extractor": "default_1"})
    assert path.exists()
    stats = load_reference_stats(path)
    assert np.array_equal(stats["features"], feats)
    assert stats["files"] == files and stats["meta"] == {"extractor": "default_1"}
    assert np.allclose(stats["mu"], feats.astype(np.float64).mean(0))
    assert np.allclose(stats["sigma"], np.cov(feats.astype(np.float64), rowvar=False))
    with pytest.raises(ValueError):
        save_reference_stats(tmp_path / "bad.npz", feats, files[:-1])


# --------------------------------------------------------------------------- classifier-based score


def test_classifier_based_score_bounds():
    c = 5
    assert classifier_based_score(np.full((40, c), 1.0 / c)) == pytest.approx(1.0)
    confident_spread = np.eye(c)[np.arange(40) % c]
    assert classifier_based_score(confident_spread) == pytest.approx(float(c))
    confident_one_class = np.eye(c)[np.zeros(40, dtype=int)]
    assert classifier_based_score(confident_one_class) == pytest.approx(1.0)


# --------------------------------------------------------------------------- classifier metrics

NAMES = ["A", "B", "other"]
LABELS = [0, 0, 1, 1, 2, 2]
PROBS = [
    [0.70, 0.20, 0.10],  # A -> A  conf .70
    [0.30, 0.60, 0.10],  # A -> B  conf .60
    [0.10, 0.80, 0.10],  # B -> B  conf .80
    [0.05, 0.90, 0.05],  # B -> B  conf .90
    [0.20, 0.10, 0.70],  # other -> other conf .70
    [0.55, 0.15, 0.30],  # other -> A      conf .55
]


def test_classifier_metrics_hand_example():
    report = compute_classifier_metrics(LABELS, PROBS, NAMES)
    json.dumps(report)  # plain JSON types only

    assert report["num_samples"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["most_confused_pairs"] == [  # both directions summed; B/other never mixed up, so left out
        {"pair": ["A", "B"], "count": 1, "a_as_b": 1, "b_as_a": 0},
        {"pair": ["A", "other"], "count": 1, "a_as_b": 0, "b_as_a": 1},
    ]
    per = report["per_class"]
    assert per["A"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["B"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert per["other"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert report["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert report["macro_recall"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # Cats: A, B. Only sample 5 (other predicted as A) crosses the cat / not-cat line.
    assert report["cat_vs_not_cat_accuracy"] == pytest.approx(5 / 6)
    # 15 bins of width 1/15: {.70,.70} both right -> 2*.30; .60 wrong -> .60; .80 right -> .20;
    # .90 right -> .10; .55 wrong -> .55; each weighted 1/6.
    assert report["ece"] == pytest.approx((0.6 + 0.6 + 0.2 + 0.1 + 0.55) / 6)


def test_ece_agrees_with_torchmetrics():
    from torchmetrics.functional.classification import multiclass_calibration_error

    gen = torch.Generator().manual_seed(8)
    probs = torch.softmax(torch.randn(200, 4, generator=gen) * 2, dim=1)
    labels = torch.randint(0, 4, (200,), generator=gen)
    ours = expected_calibration_error(probs.max(1).values, probs.argmax(1) == labels, n_bins=15)
    theirs = multiclass_calibration_error(probs, labels, num_classes=4, n_bins=15, norm="l1")
    assert ours == pytest.approx(float(theirs), abs=1e-6)


def test_classifier_metrics_edge_cases():
    # Class B is never predicted and "other" is absent from the names.
    report = compute_classifier_metrics([0, 1], [[0.9, 0.1], [0.8, 0.2]], ["A", "B"])
    assert report["per_class"]["B"]["precision"] == 0.0 and report["per_class"]["B"]["f1"] == 0.0
    assert report["cat_vs_not_cat_accuracy"] is None
    with pytest.raises(ValueError):
        compute_classifier_metrics([0, 3], [[0.9, 0.1], [0.8, 0.2]], ["A", "B"])


def test_paired_bootstrap_matches_the_normal_approximation_and_pairs_the_items():
    """Differences drawn N(0.1, 1) for 2,000 items: the 95% interval is about 0.1 +- 1.96 / sqrt(2000)."""
    rng = np.random.default_rng(3)
    base = rng.normal(5.0, 3.0, 2000)  # large shared per-item variation: pairing must cancel it
    differences = rng.normal(0.1, 1.0, 2000)
    found = paired_bootstrap(base + differences, base, resamples=4000, seed=1)
    half = 1.96 * differences.std(ddof=1) / np.sqrt(2000)
    assert found["difference"] == pytest.approx(differences.mean())
    assert found["low"] == pytest.approx(differences.mean() - half, abs=0.15 * half)
    assert found["high"] == pytest.approx(differences.mean() + half, abs=0.15 * half)
    assert found["p_a_below_b"] < 0.01  # a's mean is higher in (almost) every resample
    same = paired_bootstrap(base, base)
    assert (same["difference"], same["low"], same["high"], same["p_a_below_b"]) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="equal, non-empty lengths"):
        paired_bootstrap([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------- confusion PNG


def test_confusion_png_is_written_and_opens(tmp_path):
    names = [f"Breed_{i}" for i in range(12)] + ["other"]
    rng = np.random.default_rng(9)
    matrix = rng.integers(0, 20, size=(13, 13)) + np.diag(np.full(13, 80))
    path = plot_confusion_matrix(matrix.tolist(), names, tmp_path / "plots" / "confusion.png")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 13 * 40 and image.height > 13 * 40
    with pytest.raises(ValueError):
        plot_confusion_matrix(matrix, names[:-1], tmp_path / "bad.png")
