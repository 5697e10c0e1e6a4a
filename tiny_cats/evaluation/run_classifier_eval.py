"""Score a classifier folder on the test split of a data source.

Writes ``evaluation/classifier.json`` (metrics from ``compute_classifier_metrics`` plus a
cats-only breed accuracy), ``evaluation/confusion_matrix.png`` and
``evaluation/classifier_files.txt``: one line per scored image (file, true label, predicted
label, confidence), so every number in the JSON can be traced back to the exact images. Paths inside the JSON are
relative to the output (package) folder, like those of ``tiny_cats.layout``.

An ONNX export's evaluation (``onnx="int8"``) goes beside the PyTorch one, never over it:
``evaluation/classifier_onnx_int8.json``, ``..._files.txt`` and ``..._confusion_matrix.png``. When the
folder already holds the PyTorch files list of the same photos, the JSON also gives the share of photos
whose top-1 label is the same (``agreement_with_pytorch``): quantization's cost, photo by photo.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from .. import layout
from ..classifier.labels import CAT_BREEDS, LABELS, OTHER_ID
from ..files import write_atomically, write_text
from .classifier_metrics import compute_classifier_metrics, plot_confusion_matrix
from .common import load_classifier_model, predict_probs, resolve_data_source, utc_now
from .schemas import CLASSIFIER_SCHEMA, SCHEMA_VERSION, write_json

CLASSIFIER_FILES = f"{layout.EVALUATION_DIR}/classifier_files.txt"
LIMIT_SEED = 0


def select_test_images(source: str, limit: Optional[int] = None):
    """The test split; with ``limit``, a seeded random subset (the split is sorted by breed,
    so its first N images would all be Abyssinians)."""
    from ..data import load_pets

    test = load_pets(source)["test"]
    if limit is not None and limit < len(test):
        chosen = np.random.default_rng(LIMIT_SEED).choice(len(test), size=limit, replace=False)
        test = test.select(sorted(chosen.tolist()))
    return test


def cats_only_accuracy(labels: np.ndarray, probs: np.ndarray) -> Dict[str, Any]:
    """Top-1 on cat images only: 12-way (argmax over the cat columns: which breed, given it is
    a cat) and 13-way (a cat called 'other' counts as wrong)."""
    cats = labels != OTHER_ID
    n = int(cats.sum())
    if n == 0:
        return {"num_images": 0, "top1_12way": None, "top1_13way": None}
    cat_columns = [LABELS.index(b) for b in CAT_BREEDS]
    top12 = np.asarray(cat_columns)[probs[cats][:, cat_columns].argmax(axis=1)]
    return {
        "num_images": n,
        "top1_12way": float((top12 == labels[cats]).mean()),
        "top1_13way": float((probs[cats].argmax(axis=1) == labels[cats]).mean()),
    }


def files_report(files, labels: np.ndarray, probs: np.ndarray) -> str:
    lines = ["# file\ttrue\tpredicted\tconfidence"]
    for name, label, row in zip(files, labels, probs):
        lines.append(f"{name}\t{LABELS[label]}\t{LABELS[int(row.argmax())]}\t{float(row.max()):.4f}")
    return "\n".join(lines) + "\n"


def evaluation_paths(onnx: Optional[str]) -> Dict[str, str]:
    """The JSON, files list and confusion matrix of an evaluation, relative to the output folder."""
    if not onnx:
        return {"json": layout.CLASSIFIER_EVALUATION, "files": CLASSIFIER_FILES, "png": layout.CLASSIFIER_CONFUSION_PNG}
    stem = f"{layout.EVALUATION_DIR}/classifier_onnx_{onnx}"
    return {"json": f"{stem}.json", "files": f"{stem}_files.txt", "png": f"{stem}_confusion_matrix.png"}


def read_files_report(path: Path) -> Dict[str, str]:
    """file -> predicted label, from a files list written by :func:`files_report`."""
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return {row[0]: row[2] for row in rows if len(row) >= 3}


def agreement_with(reference: Path, files, probs: np.ndarray) -> Optional[Dict[str, Any]]:
    """How many photos get the same top-1 label as in ``reference`` (a files list of the same photos).

    ``None`` when there is no reference or it lists other photos (another split, ``--limit``, data).
    """
    if not reference.is_file():
        return None
    theirs = read_files_report(reference)
    if sorted(theirs) != sorted(files):
        return None
    ours = [LABELS[int(row.argmax())] for row in probs]
    differ = [name for name, label in zip(files, ours) if theirs[name] != label]
    return {"reference": reference.name, "num_images": len(ours), "num_different": len(differ),
            "same_top1": 1.0 - len(differ) / len(ours), "different_files": differ}


def load_onnx_net(package_dir: str, precision: str, config_dir: str):
    """The exported classifier (fp32 or int8) as an ORT model with the PyTorch model's labels."""
    from ..onnx.runtime import load_onnx_classifier

    if precision not in ("fp32", "int8"):
        raise ValueError(f"onnx precision must be 'fp32' or 'int8', got {precision!r}")
    relative = layout.CLASSIFIER_ONNX_INT8 if precision == "int8" else layout.CLASSIFIER_ONNX
    if not (Path(package_dir) / relative).is_file():
        raise FileNotFoundError(f"{Path(package_dir) / relative}: not exported; run `tiny-cats export` first")
    net = load_onnx_classifier(package_dir, quantized=precision == "int8", config_dir=config_dir)
    return net, f"{Path(package_dir) / relative} (ONNX Runtime)"


def evaluate_classifier(
    model: Optional[str] = None,
    data: Optional[str] = None,
    output_dir: str = ".",
    limit: Optional[int] = None,
    batch_size: int = 32,
    progress: bool = True,
    onnx: Optional[str] = None,
    onnx_dir: str = ".",
) -> Dict[str, Any]:
    """Run the classifier over the test split and write the three files; returns the JSON document.

    ``onnx`` ("fp32" or "int8") scores the export under ``onnx_dir`` in ONNX Runtime instead
    (labels and preprocessing still come from ``model``), so quantization's accuracy cost is
    measured on the same images by the same code.
    """
    started = time.perf_counter()
    source = resolve_data_source(data)
    net, processor, model_path = load_classifier_model(model)
    if onnx:
        net, model_path = load_onnx_net(onnx_dir, onnx, model_path)
    test = select_test_images(source, limit)
    if len(test) == 0:
        raise ValueError(f"{source}: the test split is empty")
    batches = (test[i : i + batch_size]["image"] for i in range(0, len(test), batch_size))
    probs = predict_probs(net, processor, batches, total=len(test), progress=progress)
    labels = np.asarray(test["label"], dtype=np.int64)
    metrics = compute_classifier_metrics(labels, probs, LABELS)

    out, paths = Path(output_dir), evaluation_paths(onnx)
    agreement = agreement_with(out / CLASSIFIER_FILES, test["file"], probs) if onnx else None
    write_text(files_report(test["file"], labels, probs), out / paths["files"])
    write_atomically(out / paths["png"],
                     lambda tmp: plot_confusion_matrix(metrics["confusion_matrix"], LABELS, tmp), ".png")
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "classifier_evaluation",
        "created_utc": utc_now(),
        "model": str(model_path),
        "data_source": source,
        "split": "test",
        "num_images": len(test),
        "limit": limit,
        "files_list": paths["files"],
        "metrics": metrics,
        "cats_only": cats_only_accuracy(labels, probs),
        "confusion_matrix_png": paths["png"],
        "batch_size": batch_size,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if onnx:
        doc["agreement_with_pytorch"] = agreement
    write_json(doc, out / paths["json"], CLASSIFIER_SCHEMA)
    return doc


__all__ = ["CLASSIFIER_FILES", "agreement_with", "cats_only_accuracy", "evaluate_classifier", "evaluation_paths",
           "select_test_images"]
