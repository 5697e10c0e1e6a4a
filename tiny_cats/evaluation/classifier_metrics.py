"""Classifier evaluation: accuracy, per-class P/R/F1, confusion, cat-vs-not-cat, ECE.

Plain numpy so the report is exact, dependency-light and JSON-serialisable; plus a
confusion-matrix PNG drawn with PIL because matplotlib is not a dependency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

NOT_A_CAT_LABEL = "other"
ECE_BINS = 15

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def expected_calibration_error(confidences: ArrayLike, correct: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """ECE over equal-width confidence bins: sum_b (n_b / N) * |accuracy_b - mean confidence_b|.

    Bins are ``[i/n, (i+1)/n)``; a confidence of exactly 1.0 joins the last bin.
    """
    conf = _to_numpy(confidences).astype(np.float64).reshape(-1)
    hit = _to_numpy(correct).astype(np.float64).reshape(-1)
    if conf.size == 0:
        return 0.0
    bins = np.minimum(np.floor(conf * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(hit[mask].mean() - conf[mask].mean())
    return float(ece)


def most_confused_pairs(confusion: np.ndarray, names: Sequence[str], top: int = 8) -> list:
    """The ``top`` pairs of labels mistaken for each other most often (both directions summed), most first.

    Each entry: ``{"pair": [a, b], "count": n, "a_as_b": i, "b_as_a": j}``; pairs never confused are left out.
    """
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a_as_b, b_as_a = int(confusion[i, j]), int(confusion[j, i])
            if a_as_b + b_as_a:
                pairs.append({"pair": [names[i], names[j]], "count": a_as_b + b_as_a, "a_as_b": a_as_b, "b_as_a": b_as_a})
    return sorted(pairs, key=lambda p: -p["count"])[:top]  # stable: ties keep label order


def paired_bootstrap(a: ArrayLike, b: ArrayLike, resamples: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> Dict[str, float]:
    """Paired bootstrap of ``mean(a) - mean(b)``, where ``a[i]`` and ``b[i]`` are two models' scores of item i.

    Items are resampled with replacement (the same indices for both models), so the interval reflects
    how much the difference depends on which items happened to be drawn. Returns ``difference`` (on
    all items), the percentile interval ``low``/``high`` at ``confidence``, and ``p_a_below_b``: the
    share of resamples where ``a``'s mean is strictly lower (for a loss: how often ``a`` wins).
    """
    x = _to_numpy(a).astype(np.float64).reshape(-1)
    y = _to_numpy(b).astype(np.float64).reshape(-1)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"paired scores need two equal, non-empty lengths, got {x.size} and {y.size}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, x.size, size=(resamples, x.size))
    differences = (x - y)[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return {"difference": float((x - y).mean()), "low": float(np.percentile(differences, tail)),
            "high": float(np.percentile(differences, 100 - tail)),
            "p_a_below_b": float((differences < 0).mean()), "resamples": resamples}


def compute_classifier_metrics(
    labels: ArrayLike,
    probs: ArrayLike,
    label_names: Sequence[str],
    n_bins: int = ECE_BINS,
    not_a_cat_label: str = NOT_A_CAT_LABEL,
) -> Dict[str, Any]:
    """Evaluate top-1 predictions of an ``(N, C)`` probability matrix against ``(N,)`` labels.

    Returns a JSON-serialisable dict: ``accuracy``, ``per_class`` (precision, recall, f1,
    support per name), ``macro_precision/recall/f1`` (unweighted over all C classes,
    including classes absent from the labels), ``confusion_matrix`` (rows = true, columns =
    predicted, list of lists), ``most_confused_pairs`` (see :func:`most_confused_pairs`), ``cat_vs_not_cat_accuracy`` (the label ``other`` is not a cat,
    every other label is; ``None`` when no such label exists, since the task is then
    trivial), and ``ece`` on top-1 confidence. Undefined ratios (nothing predicted / no
    support) count as 0.0, as scikit-learn does by default.
    """
    y = _to_numpy(labels).astype(np.int64).reshape(-1)
    p = _to_numpy(probs).astype(np.float64)
    names = [str(n) for n in label_names]
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (N, C) with N={y.shape[0]}, got {p.shape}")
    num_classes = p.shape[1]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} label names for {num_classes} probability columns")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got range [{y.min()}, {y.max()}]")

    pred = p.argmax(axis=1)
    confidence = p.max(axis=1)
    correct = pred == y
    n = int(y.size)

    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)

    if not_a_cat_label in names:
        other = names.index(not_a_cat_label)
        cat_acc: Optional[float] = float(((y != other) == (pred != other)).mean()) if n else 0.0
    else:
        cat_acc = None

    return {
        "num_samples": n,
        "label_names": names,
        "accuracy": float(correct.mean()) if n else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": confusion.tolist(),
        "most_confused_pairs": most_confused_pairs(confusion, names),
        "cat_vs_not_cat_accuracy": cat_acc,
        "ece": expected_calibration_error(confidence, correct, n_bins),
        "ece_bins": int(n_bins),
    }


def _font(size: int) -> ImageFont.ImageFont:
    """PIL's bundled scalable font (needs FreeType); falls back to the tiny bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def plot_confusion_matrix(
    matrix: Union[Sequence[Sequence[int]], np.ndarray],
    names: Sequence[str],
    path: Union[str, Path],
    title: str = "Confusion matrix (rows: true, columns: predicted; shade = row share)",
    cell: int = 56,
) -> Path:
    """Draw a confusion matrix PNG with PIL: counts in cells, shade by row-normalised value.

    Rows are true labels, columns predicted labels; column names are written vertically so
    long breed names stay readable at 13x13. Returns the written path.
    """
    m = np.asarray(matrix, dtype=np.int64)
    k = len(names)
    if m.shape != (k, k):
        raise ValueError(f"matrix shape {m.shape} does not match {k} names")
    row_sums = m.sum(axis=1, keepdims=True)
    share = np.divide(m, row_sums, out=np.zeros(m.shape, dtype=np.float64), where=row_sums > 0)

    label_font, count_font, title_font = _font(15), _font(14), _font(16)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = [str(n).replace("_", " ") for n in names]
    label_w = max([_text_size(probe, n, label_font)[0] for n in names] + [0])
    label_h = max([_text_size(probe, n, label_font)[1] for n in names] + [10])
    title_w, title_h = _text_size(probe, title, title_font)
    pad = 12
    left = pad + label_h + pad + label_w + pad  # axis caption + row names
    top = pad + title_h + pad + label_h + pad + label_w + pad  # title + caption + column names
    width = max(left + k * cell + pad, title_w + 2 * pad)
    height = top + k * cell + pad

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), title, fill="black", font=title_font, anchor="lt")

    # Axis captions: "predicted" above the column names, "true" rotated left of the row names.
    caption_y = pad + title_h + pad
    draw.text((left, caption_y), "predicted", fill=(90, 90, 90), font=label_font)
    true_caption = Image.new("RGBA", _text_size(probe, "true", label_font), (255, 255, 255, 0))
    ImageDraw.Draw(true_caption).text((0, 0), "true", fill=(90, 90, 90), font=label_font, anchor="lt")
    true_caption = true_caption.rotate(90, expand=True)
    image.paste(true_caption, (pad, top + (k * cell - true_caption.height) // 2), true_caption)

    for i, name in enumerate(names):
        w, h = _text_size(draw, name, label_font)
        # Row names, right-aligned against the grid.
        draw.text((left - pad - w, top + i * cell + (cell - h) // 2), name, fill="black", font=label_font, anchor="lt")
        # Column names, rendered horizontally then rotated to read bottom-to-top.
        tile = Image.new("RGBA", (w, h), (255, 255, 255, 0))
        ImageDraw.Draw(tile).text((0, 0), name, fill="black", font=label_font, anchor="lt")
        tile = tile.rotate(90, expand=True)
        image.paste(tile, (left + i * cell + (cell - tile.width) // 2, top - pad - tile.height), tile)

    for i in range(k):
        for j in range(k):
            v = share[i, j]
            # White -> deep blue as the row share goes 0 -> 1.
            color = tuple(int(round(255 + v * (c - 255))) for c in (8, 48, 107))
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=color, outline=(200, 200, 200))
            text = str(int(m[i, j]))
            w, h = _text_size(draw, text, count_font)
            fill = "white" if v > 0.5 else "black"
            draw.text((x0 + (cell - w) // 2, y0 + (cell - h) // 2), text, fill=fill, font=count_font, anchor="lt")
    # Outline the diagonal so the correct predictions are easy to find.
    for i in range(k):
        x0, y0 = left + i * cell, top + i * cell
        draw.rectangle([x0, y0, x0 + cell, y0 + cell], outline=(220, 120, 0), width=2)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
