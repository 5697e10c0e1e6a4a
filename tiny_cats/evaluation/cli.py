"""``tiny-cats evaluate-classifier``, ``evaluate-generator`` and ``benchmark`` subcommands.

Each writes its JSON (and images) under ``--output`` at the paths of ``tiny_cats.layout``, so
running them from a model package folder (the default ``--output .``) fills it in place.
"""

from __future__ import annotations

import argparse
import json

from .. import layout
from .benchmark import CLASSIFIER_BATCH_SIZES, GENERATOR_STEPS


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def int_list(text: str) -> list:
    return [positive_int(part) for part in text.split(",") if part.strip()]


def summary(doc: dict, keys) -> str:
    return json.dumps({k: doc[k] for k in keys if k in doc})


def cmd_evaluate_classifier(args) -> int:
    from .run_classifier_eval import evaluate_classifier

    doc = evaluate_classifier(args.model, args.data, args.output, args.limit, args.batch_size, not args.quiet,
                              onnx=args.onnx, onnx_dir=args.onnx_dir)
    print(f"accuracy {doc['metrics']['accuracy']:.4f} on {doc['num_images']} images; "
          f"cats-only 12-way top-1 {doc['cats_only']['top1_12way']}")
    print(f"wrote {args.output}/{layout.CLASSIFIER_EVALUATION}")
    return 0


def cmd_evaluate_generator(args) -> int:
    from .run_generator_eval import evaluate_generator

    doc = evaluate_generator(
        model=args.model, classifier=args.classifier, data=args.data, output_dir=args.output,
        samples_per_breed=args.samples_per_breed, steps=args.steps, guidance=args.guidance, seed=args.seed,
        batch_size=args.batch_size, cache_dir=args.cache_dir, progress=not args.quiet, onnx=args.onnx,
    )
    print(summary(doc, ("fid", "kid_mean", "precision", "recall", "classifier_based_score")))
    print(f"breed accuracy {doc['breed_accuracy']['overall']:.4f}; wrote {args.output}/{layout.GENERATOR_EVALUATION}")
    return 0


def cmd_benchmark(args) -> int:
    from .benchmark import run_benchmark

    run_benchmark(
        classifier=args.classifier, generator=args.generator, onnx_dir=args.onnx_dir, output_dir=args.output,
        repeats=args.repeats, generator_repeats=args.generator_repeats, warmup=args.warmup, threads=args.threads,
        seed=args.seed, batch_sizes=args.batch_sizes, steps=args.steps, guidance=args.guidance,
        skip_classifier=args.no_classifier, skip_generator=args.no_generator, progress=not args.quiet,
    )
    print(f"wrote {args.output}/{layout.INFERENCE_BENCHMARK}")
    return 0


def register(subparsers) -> None:
    from .run_generator_eval import DEFAULT_CACHE_DIR, DEFAULT_SAMPLES_PER_BREED

    data_help = "data folder or Hub dataset id (default: $TINY_CATS_DATA or the shared Oxford-IIIT Pet copy)"
    output_help = "package folder to write evaluation/ and benchmarks/ into (default: .)"

    p = subparsers.add_parser("evaluate-classifier", help="score a classifier on the test split")
    p.add_argument("--model", help="classifier folder or Hub repo id (default: the bundled classifier)")
    p.add_argument("--data", help=data_help)
    p.add_argument("--output", default=".", help=output_help)
    p.add_argument("--limit", type=positive_int, help="score a seeded random subset of N test images")
    p.add_argument("--onnx", choices=("fp32", "int8"),
                   help="score the ONNX export under --onnx-dir instead (write to another --output)")
    p.add_argument("--onnx-dir", default=".", help="package folder holding onnx/ (default .)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate_classifier)

    p = subparsers.add_parser("evaluate-generator", help="FID/KID/precision/recall and breed accuracy of samples")
    p.add_argument("--model", help="generator pipeline folder or Hub repo id (default: bundled)")
    p.add_argument("--classifier", help="classifier judging the breeds (default: bundled)")
    p.add_argument("--data", help=data_help)
    p.add_argument("--output", default=".", help=output_help)
    p.add_argument("--samples-per-breed", type=positive_int, default=DEFAULT_SAMPLES_PER_BREED,
                   help=f"images per breed (default {DEFAULT_SAMPLES_PER_BREED}; ~0.25 s of Inception per image)")
    p.add_argument("--steps", type=positive_int, default=25)
    p.add_argument("--guidance", type=float, default=4.0, help="guidance scale; 1.0 turns guidance off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=25)
    p.add_argument("--cache-dir", help=f"real-feature cache (default: OUTPUT/{DEFAULT_CACHE_DIR})")
    p.add_argument("--onnx", choices=("fp32", "int8"),
                   help="run the denoiser exported under --model (a package folder, default .) in ONNX Runtime")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate_generator)

    p = subparsers.add_parser("benchmark", help="CPU latency, throughput and memory of the classifier and generator")
    p.add_argument("--classifier", help="classifier folder (default: bundled, if present)")
    p.add_argument("--generator", help="generator pipeline folder (default: bundled, if present)")
    p.add_argument("--onnx-dir", help=f"package folder holding {layout.CLASSIFIER_ONNX} (default: the classifier)")
    p.add_argument("--output", default=".", help=output_help)
    p.add_argument("--repeats", type=positive_int, default=50, help="timed classifier calls per setting")
    p.add_argument("--generator-repeats", type=positive_int, default=3, help="timed generations per setting")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls before each setting")
    p.add_argument("--threads", type=positive_int, help="torch and onnxruntime threads (default: torch's current)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-sizes", type=int_list, default=list(CLASSIFIER_BATCH_SIZES), help="e.g. 1,8")
    p.add_argument("--steps", type=int_list, default=list(GENERATOR_STEPS), help="e.g. 8,25,50")
    p.add_argument("--guidance", type=float, default=4.0, help="guidance scale of the guided runs")
    p.add_argument("--no-classifier", action="store_true")
    p.add_argument("--no-generator", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_benchmark)
