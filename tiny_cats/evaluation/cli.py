"""``tiny-cats evaluate-classifier``, ``evaluate-generator`` and ``benchmark`` subcommands.

Each writes its JSON (and images) under ``--output`` at the paths of ``tiny_cats.layout``. The
default ``--output`` is a fresh folder, ``outputs/<command>-<UTC time>/``, so the results committed
in ``evaluation/`` and ``benchmarks/`` are replaced only on purpose (``--output .``). A short
summary table is printed at the end. Only the standard library is imported until a command runs.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from .. import layout
from .settings import CLASSIFIER_BATCH_SIZES, DEFAULT_CACHE_DIR, DEFAULT_SAMPLES_PER_BREED, GENERATOR_STEPS

FRESH_OUTPUT_ROOT = Path("outputs")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def int_list(text: str) -> list:
    return [positive_int(part) for part in text.split(",") if part.strip()]


def guidance(text: str) -> float:
    from ..cli import guidance_scale

    return guidance_scale(text)


def fresh_output_dir(command: str, root: Path = FRESH_OUTPUT_ROOT) -> Path:
    """``outputs/<command>-<UTC time>``, with a suffix if that folder exists already."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate = root / f"{command}-{stamp}"
    n = 2
    while candidate.exists():
        candidate = root / f"{command}-{stamp}-{n}"
        n += 1
    return candidate


def resolve_output(args, command: str) -> str:
    if args.output is None:
        args.output = str(fresh_output_dir(command))
        print(f"writing to {args.output} (pass --output . to update the committed results in place)")
    return args.output


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [list(map(str, headers))] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def classifier_summary(doc: dict) -> str:
    metrics, cats = doc.get("metrics", {}), doc.get("cats_only", {})
    rows = [
        ("images", doc.get("num_images")),
        ("accuracy (13 labels)", metrics.get("accuracy")),
        ("macro F1", metrics.get("macro_f1")),
        ("cats-only top-1 (12 breeds)", cats.get("top1_12way")),
        ("seconds", doc.get("seconds")),
    ]
    return format_table(("classifier", "value"), rows)


def generator_summary(doc: dict) -> str:
    rows = [
        ("images generated", doc.get("num_generated")),
        ("FID", doc.get("fid")),
        ("KID", doc.get("kid_mean")),
        ("precision", doc.get("precision")),
        ("recall", doc.get("recall")),
        ("breed accuracy", (doc.get("breed_accuracy") or {}).get("overall")),
        ("classifier-based score", doc.get("classifier_based_score")),
        ("seconds", doc.get("seconds")),
    ]
    return format_table(("generator", "value"), rows)


def benchmark_summary(doc: dict) -> str:
    rows: List[Sequence[object]] = []
    for runtime in (doc.get("classifier") or {}).get("runtimes", []):
        for batch in runtime.get("batches", []):
            rows.append((f"classifier {runtime['runtime']}", f"batch {batch['batch_size']}", batch.get("p50_ms"),
                         batch.get("throughput_per_s")))
    for run in (doc.get("generator") or {}).get("runs", []):
        per_image = run.get("per_image", {})
        rows.append((f"generator guidance {run.get('guidance_scale')}", f"{run.get('num_inference_steps')} steps",
                     per_image.get("p50_ms"), per_image.get("throughput_per_s")))
    table = format_table(("what", "setting", "p50 ms", "per second"), rows)
    skipped = doc.get("skipped") or {}
    if skipped:
        table += "\nskipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
    return table


def cmd_evaluate_classifier(args) -> int:
    if args.onnx:
        from ..cli import require_extra

        require_extra("onnx", "evaluate-classifier --onnx")
    output = resolve_output(args, "evaluate-classifier")
    from .run_classifier_eval import evaluate_classifier

    doc = evaluate_classifier(args.model, args.data, output, args.limit, args.batch_size, not args.quiet,
                              onnx=args.onnx, onnx_dir=args.onnx_dir)
    print(classifier_summary(doc))
    print(f"wrote {Path(output) / layout.CLASSIFIER_EVALUATION}")
    return 0


def cmd_evaluate_generator(args) -> int:
    from ..cli import require_extra

    require_extra("eval", "evaluate-generator")
    if args.onnx:
        require_extra("onnx", "evaluate-generator --onnx")
    if args.cache_dir is None and args.output is None:
        args.cache_dir = DEFAULT_CACHE_DIR  # one real-feature cache for every fresh output folder
    output = resolve_output(args, "evaluate-generator")
    from .run_generator_eval import evaluate_generator

    doc = evaluate_generator(
        model=args.model, classifier=args.classifier, data=args.data, output_dir=output,
        samples_per_breed=args.samples_per_breed, steps=args.steps, guidance=args.guidance, seed=args.seed,
        batch_size=args.batch_size, cache_dir=args.cache_dir, progress=not args.quiet, onnx=args.onnx,
    )
    print(generator_summary(doc))
    print(f"wrote {Path(output) / layout.GENERATOR_EVALUATION}")
    return 0


def cmd_benchmark(args) -> int:
    output = resolve_output(args, "benchmark")
    from .benchmark import run_benchmark

    doc = run_benchmark(
        classifier=args.classifier, generator=args.generator, onnx_dir=args.onnx_dir, output_dir=output,
        repeats=args.repeats, generator_repeats=args.generator_repeats, warmup=args.warmup, threads=args.threads,
        seed=args.seed, batch_sizes=args.batch_sizes, steps=args.steps, guidance=args.guidance,
        skip_classifier=args.no_classifier, skip_generator=args.no_generator, progress=not args.quiet,
    )
    print(benchmark_summary(doc))
    print(f"wrote {Path(output) / layout.INFERENCE_BENCHMARK}")
    return 0


def register(subparsers) -> None:
    data_help = "data folder or Hub dataset id (default: $TINY_CATS_DATA or the shared Oxford-IIIT Pet copy)"
    output_help = ("package folder to write evaluation/ and benchmarks/ into (default: a fresh "
                   f"{FRESH_OUTPUT_ROOT}/COMMAND-TIME/; . updates the committed results)")

    p = subparsers.add_parser("evaluate-classifier", help="score a classifier on the test split")
    p.add_argument("--model", help="classifier folder or Hub repo id (default: the bundled classifier)")
    p.add_argument("--data", help=data_help)
    p.add_argument("--output", help=output_help)
    p.add_argument("--limit", type=positive_int, help="score a seeded random subset of N test images")
    p.add_argument("--onnx", choices=("fp32", "int8"),
                   help='score the ONNX export under --onnx-dir instead (needs: pip install "tiny-cats[onnx]")')
    p.add_argument("--onnx-dir", default=".", help="package folder holding onnx/ (default .)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate_classifier)

    p = subparsers.add_parser("evaluate-generator", help="FID/KID/precision/recall and breed accuracy of samples "
                              '(needs the eval extra: pip install "tiny-cats[eval]")')
    p.add_argument("--model", help="generator pipeline folder or Hub repo id (default: bundled)")
    p.add_argument("--classifier", help="classifier judging the breeds (default: bundled)")
    p.add_argument("--data", help=data_help)
    p.add_argument("--output", help=output_help)
    p.add_argument("--samples-per-breed", type=positive_int, default=DEFAULT_SAMPLES_PER_BREED,
                   help=f"images per breed (default {DEFAULT_SAMPLES_PER_BREED}; ~0.25 s of Inception per image)")
    p.add_argument("--steps", type=positive_int, default=25)
    p.add_argument("--guidance", type=guidance, default=4.0, help="guidance scale, finite, >= 0; 1.0 turns guidance off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=25)
    p.add_argument("--cache-dir", help=f"real-feature cache (default: OUTPUT/{DEFAULT_CACHE_DIR}, or ./{DEFAULT_CACHE_DIR} "
                   "when --output is not given)")
    p.add_argument("--onnx", choices=("fp32", "int8"),
                   help="run the denoiser exported under --model (a package folder, default .) in ONNX Runtime")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate_generator)

    p = subparsers.add_parser("benchmark", help="CPU latency, throughput and memory of the classifier and generator "
                              '(ONNX rows need: pip install "tiny-cats[onnx]")')
    p.add_argument("--classifier", help="classifier folder (default: bundled, if present)")
    p.add_argument("--generator", help="generator pipeline folder (default: bundled, if present)")
    p.add_argument("--onnx-dir", help=f"package folder holding {layout.CLASSIFIER_ONNX} (default: the classifier)")
    p.add_argument("--output", help=output_help)
    p.add_argument("--repeats", type=positive_int, default=50, help="timed classifier calls per setting")
    p.add_argument("--generator-repeats", type=positive_int, default=3, help="timed generations per setting")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls before each setting")
    p.add_argument("--threads", type=positive_int, help="torch and onnxruntime threads (default: torch's current)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-sizes", type=int_list, default=list(CLASSIFIER_BATCH_SIZES), help="e.g. 1,8")
    p.add_argument("--steps", type=int_list, default=list(GENERATOR_STEPS), help="e.g. 8,25,50")
    p.add_argument("--guidance", type=guidance, default=4.0, help="guidance scale of the guided runs")
    p.add_argument("--no-classifier", action="store_true")
    p.add_argument("--no-generator", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_benchmark)
