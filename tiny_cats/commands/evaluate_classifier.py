"""``tiny-cats evaluate-classifier``: score a classifier (or its ONNX export) on the test split.

Writes ``evaluation/classifier.json`` and friends under ``--output``; see
:mod:`tiny_cats.evaluation.run_classifier_eval`.
"""

from __future__ import annotations

from pathlib import Path

from .common import DATA_HELP, OUTPUT_HELP, add_model_option, format_table, positive_int, require_extra, resolve_output


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate-classifier", help="score a classifier on the test split", allow_abbrev=False)
    add_model_option(p, "classifier", " (with --onnx: its labels and preprocessing)", alias=True)
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--output", help=OUTPUT_HELP)
    p.add_argument("--limit", type=positive_int, help="score a seeded random subset of N test images")
    p.add_argument("--onnx", choices=("fp32", "int8"),
                   help="score the ONNX export under --onnx-dir instead; writes evaluation/classifier_onnx_<fp32|int8>"
                        ".json beside the PyTorch results, with its top-1 agreement with them when they list the same "
                        'photos (needs: pip install "tiny-cats[onnx]")')
    p.add_argument("--onnx-dir", default=".", help="package folder holding onnx/ (default .)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def summary(doc: dict) -> str:
    metrics, cats = doc.get("metrics", {}), doc.get("cats_only", {})
    rows = [
        ("images", doc.get("num_images")),
        ("accuracy (13 labels)", metrics.get("accuracy")),
        ("macro F1", metrics.get("macro_f1")),
        ("cats-only top-1 (12 breeds)", cats.get("top1_12way")),
        *([("same top-1 as PyTorch", doc["agreement_with_pytorch"]["same_top1"])]
          if doc.get("agreement_with_pytorch") else []),
        ("seconds", doc.get("seconds")),
    ]
    return format_table(("classifier", "value"), rows)


def run(args) -> int:
    if args.onnx:
        require_extra("onnx", "evaluate-classifier --onnx")
    output = resolve_output(args, "evaluate-classifier")
    from ..evaluation.run_classifier_eval import evaluate_classifier, evaluation_paths

    doc = evaluate_classifier(args.classifier, args.data, output, args.limit, args.batch_size, not args.quiet,
                              onnx=args.onnx, onnx_dir=args.onnx_dir)
    print(summary(doc))
    print(f"wrote {Path(output) / evaluation_paths(args.onnx)['json']}")
    return 0
