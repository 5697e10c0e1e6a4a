"""``tiny-cats benchmark``: CPU latency, throughput and memory; see :mod:`tiny_cats.evaluation.benchmark`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from .. import layout
from ..evaluation.settings import CLASSIFIER_BATCH_SIZES, GENERATOR_STEPS
from .common import (
    OUTPUT_HELP,
    CommandError,
    add_model_option,
    format_table,
    guidance_scale,
    non_negative_int,
    positive_int,
    positive_int_list,
    resolve_output,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("benchmark", allow_abbrev=False,
                              help="CPU latency, throughput and memory of the classifier and generator "
                              '(ONNX rows need: pip install "tiny-cats[onnx]")')
    add_model_option(p, "classifier")
    add_model_option(p, "generator")
    p.add_argument("--no-classifier", action="store_true", help="benchmark the generator only")
    p.add_argument("--no-generator", action="store_true", help="benchmark the classifier only")
    p.add_argument("--onnx-dir",
                   help=f"package folder holding {layout.CLASSIFIER_ONNX} (default: the classifier's folder)")
    p.add_argument("--output", help=OUTPUT_HELP)
    p.add_argument("--repeats", type=positive_int, default=50, help="timed classifier calls per setting")
    p.add_argument("--generator-repeats", type=positive_int, default=3, help="timed generations per setting")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls before each setting")
    p.add_argument("--threads", type=positive_int, help="torch and onnxruntime threads (default: torch's current)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-sizes", type=positive_int_list, default=list(CLASSIFIER_BATCH_SIZES), help="e.g. 1,8")
    p.add_argument("--steps", type=positive_int_list, default=list(GENERATOR_STEPS), help="e.g. 8,25,50")
    p.add_argument("--guidance", type=guidance_scale,
                   help="guidance scale of the guided runs (default: the pipeline's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def summary(doc: dict) -> str:
    rows: List[Sequence[object]] = []
    for runtime in (doc.get("classifier") or {}).get("runtimes", []):
        for batch in runtime.get("batches", []):
            rows.append((f"classifier {runtime['runtime']}", f"batch {batch['batch_size']}", batch.get("p50_ms"),
                         batch.get("throughput_per_s")))
    for run_doc in (doc.get("generator") or {}).get("runs", []):
        per_image = run_doc.get("per_image", {})
        setting = f"{run_doc.get('num_inference_steps')} steps"
        rows.append((f"generator guidance {run_doc.get('guidance_scale')}", setting, per_image.get("p50_ms"),
                     per_image.get("throughput_per_s")))
    table = format_table(("what", "setting", "p50 ms", "per second"), rows)
    skipped = doc.get("skipped") or {}
    if skipped:
        table += "\nskipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
    return table


def run(args) -> int:
    if args.no_classifier and args.no_generator:
        raise CommandError("benchmark: --no-classifier and --no-generator leave nothing to measure")
    output = resolve_output(args, "benchmark")
    from ..evaluation.benchmark import run_benchmark

    doc = run_benchmark(
        classifier=args.classifier, generator=args.generator, onnx_dir=args.onnx_dir, output_dir=output,
        repeats=args.repeats, generator_repeats=args.generator_repeats, warmup=args.warmup, threads=args.threads,
        seed=args.seed, batch_sizes=args.batch_sizes, steps=args.steps, guidance=args.guidance,
        skip_classifier=args.no_classifier, skip_generator=args.no_generator, progress=not args.quiet,
    )
    print(summary(doc))
    print(f"wrote {Path(output) / layout.INFERENCE_BENCHMARK}")
    return 0
