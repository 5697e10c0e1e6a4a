"""Sample-quality metrics for the generator: FID, KID, improved precision/recall.

Everything works on precomputed feature matrices ``(N, D)`` so that Inception runs once
per image and the same features feed every metric (and the cached reference stats).
FID and KID themselves are computed by torchmetrics; we hand it a pass-through
``feature`` module so that its ``update`` receives our features instead of images.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .inception import InceptionFeatureExtractor, extract_features

ArrayLike = Union[np.ndarray, torch.Tensor]


class PrecomputedFeatures(torch.nn.Module):
    """Identity "feature extractor" so torchmetrics' FID/KID accept feature rows directly.

    ``num_features`` is what ``FrechetInceptionDistance.__init__`` reads to size its
    states; without it torchmetrics would push a dummy 3x299x299 image through us.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected features of shape (N, {self.num_features}), got {tuple(features.shape)}")
        return features


def _as_features(x: ArrayLike, extractor: Optional[torch.nn.Module], batch_size: int, device) -> torch.Tensor:
    """Features pass through; uint8 ``(N, 3, H, W)`` images go through Inception once."""
    t = torch.as_tensor(x)
    if t.ndim == 4:
        if t.dtype != torch.uint8:
            raise ValueError("images must be uint8 (N, 3, H, W) in [0, 255]; pass float input as (N, D) features")
        extractor = extractor if extractor is not None else InceptionFeatureExtractor()
        return extract_features(t, extractor, batch_size, device)
    if t.ndim != 2:
        raise ValueError(f"expected (N, D) features or (N, 3, H, W) uint8 images, got shape {tuple(t.shape)}")
    return t


def compute_fid_kid(
    real: ArrayLike,
    fake: ArrayLike,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    kid_degree: int = 3,
    seed: int = 0,
    extractor: Optional[torch.nn.Module] = None,
    batch_size: int = 64,
    device: Optional[Union[str, torch.device]] = None,
    compute_kid: bool = True,
) -> Dict[str, Any]:
    """FID and KID between two sets via torchmetrics, in float64.

    ``real`` / ``fake`` are ``(N, D)`` features (numpy or torch) or uint8 images
    ``(N, 3, H, W)``; images are turned into Inception features first. KID's subset size
    is capped at the smaller set (reported back as ``kid_subset_size``); subsets are drawn
    with a fixed ``seed`` in a forked RNG so results are reproducible and the caller's
    global RNG is untouched. KID is the unbiased MMD estimate and can be slightly negative;
    scoring a set against itself (or overlapping sets) is biased a little below 0 because a
    sample drawn into both subsets is paired with itself in the cross term.
    Reported KID is raw (multiply by 1000 for the "x10^3" convention of papers).
    """
    real_f = _as_features(real, extractor, batch_size, device).detach().to("cpu", torch.float64)
    fake_f = _as_features(fake, extractor, batch_size, device).detach().to("cpu", torch.float64)
    if real_f.shape[1] != fake_f.shape[1]:
        raise ValueError(f"feature dims differ: real {real_f.shape[1]} vs fake {fake_f.shape[1]}")
    if real_f.shape[0] < 2 or fake_f.shape[0] < 2:
        raise ValueError("FID/KID need at least 2 samples per set")
    passthrough = PrecomputedFeatures(real_f.shape[1])

    fid_metric = FrechetInceptionDistance(feature=passthrough)
    fid_metric.update(real_f, real=True)
    fid_metric.update(fake_f, real=False)
    result: Dict[str, Any] = {
        "fid": float(fid_metric.compute()),
        "n_real": int(real_f.shape[0]),
        "n_fake": int(fake_f.shape[0]),
        "feature_dim": int(real_f.shape[1]),
    }

    if compute_kid:
        subset_size = int(min(kid_subset_size, real_f.shape[0], fake_f.shape[0]))
        with warnings.catch_warnings():
            # torchmetrics warns that KID keeps all features in memory; we already hold them.
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            kid_metric = KernelInceptionDistance(
                feature=passthrough, subsets=kid_subsets, subset_size=subset_size, degree=kid_degree
            )
        kid_metric.update(real_f, real=True)
        kid_metric.update(fake_f, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            kid_mean, kid_std = kid_metric.compute()
        result.update(
            kid_mean=float(kid_mean),
            kid_std=float(kid_std),
            kid_subsets=int(kid_subsets),
            kid_subset_size=subset_size,
        )
    return result


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), for cached mean/cov stats.

    torchmetrics has no public function for this (only the private ``_compute_fid``); we use
    the same identity: Tr(sqrt(S1 S2)) = sum of sqrt(eigenvalues of S1 S2), which are real
    and non-negative for PSD S1, S2 (tiny negative/complex round-off is discarded).
    """
    mu1_t, mu2_t = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    eig = torch.linalg.eigvals(s1 @ s2)
    trace_sqrt = eig.real.clamp(min=0).sqrt().sum()
    value = (mu1_t - mu2_t).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return float(value)


def _knn_radii(features: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest neighbour in the same set, excluding itself.

    The k+1 smallest distances include the point itself (distance 0), so the (k+1)-th is
    the k-th true neighbour; a duplicate of the point counts as a neighbour at distance 0.
    """
    n = features.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} samples per set for k-NN radii, got {n}")
    radii = torch.empty(n, dtype=features.dtype, device=features.device)
    for start in range(0, n, batch_size):
        block = torch.cdist(features[start : start + batch_size], features)
        radii[start : start + batch_size] = block.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii


def _share_inside_manifold(
    queries: torch.Tensor, support: torch.Tensor, support_radii: torch.Tensor, batch_size: int
) -> float:
    """Share of query rows that lie within the k-NN ball of at least one support row."""
    inside = 0
    for start in range(0, queries.shape[0], batch_size):
        block = torch.cdist(queries[start : start + batch_size], support)
        inside += int((block <= support_radii.unsqueeze(0)).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    k: int = 3,
    batch_size: int = 1024,
    device: Optional[Union[str, torch.device]] = None,
) -> Dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) on feature rows.

    Each set's manifold is the union of balls around its samples with radius = distance to
    the sample's k-th nearest neighbour in that set. Precision = share of fake samples inside
    the real manifold (are samples realistic?); recall = share of real samples inside the
    fake manifold (is the real variety covered?). Distances are computed ``batch_size`` rows
    at a time, so memory is O(batch_size * N) and 10k x 10k fits easily.
    """
    real = torch.as_tensor(real_features).to(device=device or "cpu", dtype=torch.float32)
    fake = torch.as_tensor(fake_features).to(device=device or "cpu", dtype=torch.float32)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"expected (N, D) feature matrices of equal D, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    real_radii = _knn_radii(real, k, batch_size)
    fake_radii = _knn_radii(fake, k, batch_size)
    return {
        "precision": _share_inside_manifold(fake, real, real_radii, batch_size),
        "recall": _share_inside_manifold(real, fake, fake_radii, batch_size),
        "k": int(k),
    }


def save_reference_stats(
    path: Union[str, Path],
    features: ArrayLike,
    files: Sequence[str],
    meta: Optional[Dict[str, Any]] = None,
) -> Path:
    """Cache real-image features plus their mean/covariance to an ``.npz``.

    Features are kept (float32) because KID and precision/recall need the samples, not
    just the Gaussian stats; ``files`` records which images they came from so a stale
    cache can be detected. ``meta`` (JSON-serialisable) can record e.g. extractor/resize.
    Stored without pickles, so ``load_reference_stats`` works with ``allow_pickle=False``.
    """
    feats = torch.as_tensor(features).detach().cpu().numpy()
    if feats.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {feats.shape}")
    files = [str(f) for f in files]
    if len(files) != feats.shape[0]:
        raise ValueError(f"{feats.shape[0]} feature rows but {len(files)} file names")
    feats64 = feats.astype(np.float64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # file handle: np.savez would otherwise append ".npz"
        np.savez(
            handle,
            mu=feats64.mean(axis=0),
            sigma=np.cov(feats64, rowvar=False) if feats.shape[0] > 1 else np.zeros((feats.shape[1],) * 2),
            features=feats.astype(np.float32),
            files=np.asarray(files, dtype=str),
            meta=np.asarray(json.dumps(meta or {})),
        )
    return path


def load_reference_stats(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a cache written by ``save_reference_stats``: mu, sigma, features, files, meta."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {
            "mu": data["mu"],
            "sigma": data["sigma"],
            "features": data["features"],
            "files": [str(f) for f in data["files"]],
            "meta": json.loads(str(data["meta"])) if "meta" in data.files else {},
        }


def classifier_based_score(probs: ArrayLike, eps: float = 1e-12) -> float:
    """exp(E_x[KL(p(y|x) || p(y))]) over an ``(N, C)`` softmax matrix.

    A classifier-based IS analogue, NOT the Inception Score: it uses our own breed
    classifier's probabilities on generated images instead of ImageNet Inception logits,
    so values are comparable only between runs scored by the same classifier. Ranges from
    1 (every sample gets the same prediction) to C (confident and evenly spread over C).
    """
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.ndim != 2:
        raise ValueError(f"expected (N, C) probabilities, got shape {tuple(p.shape)}")
    p = p / p.sum(dim=1, keepdim=True)
    marginal = p.mean(dim=0, keepdim=True)
    # 0 * log(0) := 0; eps only guards the log.
    kl = (p * (torch.log(p.clamp_min(eps)) - torch.log(marginal.clamp_min(eps)))).sum(dim=1)
    return float(torch.exp(kl.mean()))
