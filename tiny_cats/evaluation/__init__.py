"""Evaluation metrics for tiny-cats: generator sample quality and classifier quality.

* ``inception``: the offline InceptionV3 pool3 feature extractor (2048-d) used by FID/KID/PR.
* ``generative_metrics``: FID, KID (via torchmetrics), improved precision/recall, reference
  statistics cache, classifier-based IS analogue.
* ``classifier_metrics``: accuracy, per-class P/R/F1, confusion matrix (+ PNG), cat-vs-not-cat
  accuracy, expected calibration error, a paired bootstrap for comparing two models.
"""

import importlib

# name -> submodule, imported on first use (PEP 562): importing tiny_cats.evaluation (for example
# for the CLI's parser) must not load torch or torchmetrics.
_EXPORTS = {
    "compute_classifier_metrics": ".classifier_metrics",
    "expected_calibration_error": ".classifier_metrics",
    "paired_bootstrap": ".classifier_metrics",
    "plot_confusion_matrix": ".classifier_metrics",
    "PrecomputedFeatures": ".generative_metrics",
    "classifier_based_score": ".generative_metrics",
    "compute_fid_kid": ".generative_metrics",
    "frechet_distance": ".generative_metrics",
    "load_reference_stats": ".generative_metrics",
    "precision_recall": ".generative_metrics",
    "save_reference_stats": ".generative_metrics",
    "InceptionFeatureExtractor": ".inception",
    "extract_features": ".inception",
    "find_inception_file": ".inception",
    "load_inception": ".inception",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


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
    "paired_bootstrap",
    "plot_confusion_matrix",
    "precision_recall",
    "save_reference_stats",
]
