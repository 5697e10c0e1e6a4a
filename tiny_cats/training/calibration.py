"""Calibration of a classifier: temperature scaling (Guo et al., 2017) and the expected calibration error."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(logits / T)``, fitted as log T with L-BFGS.

    Fit it on held-out data (a validation split), never on the test split. T > 1 softens
    over-confident predictions; the arg-max, so the accuracy, does not change.
    """
    logits, labels = logits.detach().float().cpu(), labels.detach().long().cpu()
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def nll():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(nll)
    return float(log_t.detach().exp())


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE: over ``bins`` equal-width bins of confidence (the top softmax probability), the mean
    |accuracy - confidence| weighted by each bin's share of the images (Naeini et al., 2015)."""
    confidence, predicted = logits.detach().float().softmax(-1).max(-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.float().mean().item() * abs(correct[inside].mean().item() - confidence[inside].mean().item())
    return error


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, other_id: int,
                           temperature: Optional[float] = None) -> dict:
    """Accuracy (13-way and over cat photos only), NLL and ECE of ``logits``; given a fitted
    ``temperature``, also NLL and ECE after dividing the logits by it (the accuracy does not change)."""
    logits, labels = logits.float(), labels.long()
    predicted = logits.argmax(-1)
    correct = predicted == labels
    cats = labels != other_id
    metrics = {
        "accuracy": correct.float().mean().item() if len(labels) else 0.0,
        "cat_breed_accuracy": correct[cats].float().mean().item() if cats.any() else 0.0,
        "cat_vs_not_cat_accuracy": ((predicted != other_id) == cats).float().mean().item() if len(labels) else 0.0,
        "num_images": len(labels),
        "nll": F.cross_entropy(logits, labels).item() if len(labels) else 0.0,
        "ece": expected_calibration_error(logits, labels),
    }
    if temperature is not None:
        metrics["nll_calibrated"] = F.cross_entropy(logits / temperature, labels).item() if len(labels) else 0.0
        metrics["ece_calibrated"] = expected_calibration_error(logits / temperature, labels)
    return metrics
