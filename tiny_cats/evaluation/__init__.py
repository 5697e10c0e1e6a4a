"""Evaluation metrics for tiny-cats: generator sample quality and classifier quality.

* ``inception``: the offline InceptionV3 pool3 feature extractor (2048-d) used by FID/KID/PR.
* ``generative_metrics``: FID, KID (via torchmetrics), improved precision/recall, reference
  statistics cache, classifier-based IS analogue.
* ``classifier_metrics``: accuracy, per-class P/R/F1, confusion matrix (+ PNG), cat-vs-not-cat
  accuracy, expected calibration error.
"""

from .classifier_metrics import compute_classifier_metrics, expected_calibration_error, plot_confusion_matrix
from .generative_metrics import (
    PrecomputedFeatures,
    classifier_based_score,
    compute_fid_kid,
    frechet_distance,
    load_reference_stats,
    precision_recall,
    save_reference_stats,
)
from .inception import InceptionFeatureExtractor, extract_features, find_inception_file, load_inception

__all__ = [
    "InceptionFeatureExtractor",
    "PrecomputedFeatures",
    "classifier_based_score",
    "compute_classifier_metrics",
    "compute_fid_kid",
    "expected_calibration_error",
    "extract_features",
    "find_inception_file",
    "frechet_distance",
    "load_inception",
    "load_reference_stats",
    "plot_confusion_matrix",
    "precision_recall",
    "save_reference_stats",
]
