"""``tiny-cats evaluate-generator``: FID/KID/precision/recall and breed accuracy of generated cats.

Writes ``evaluation/generator.json`` and the grids under ``--output``; see
:mod:`tiny_cats.evaluation.run_generator_eval`. Needs the eval extra.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import layout
from ..evaluation.settings import DEFAULT_CACHE_DIR, DEFAULT_SAMPLES_PER_BREED
from .common import (
    DATA_HELP,
    OUTPUT_HELP,
    CommandError,
    add_model_option,
    extra_hint,
    format_table,
    guidance_scale,
    positive_int,
    require_extra,
    resolve_output,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate-generator", allow_abbrev=False,
        help=f"FID/KID/precision/recall and breed accuracy of samples ({extra_hint('eval')})",
        description="Generate cats of every breed and score them against real photos. "
        f"This command {extra_hint('eval')}.")
    add_model_option(p, "generator")
    add_model_option(p, "classifier", " judging the breeds")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--output", help=OUTPUT_HELP)
    p.add_argument("--samples-per-breed", type=positive_int, default=DEFAULT_SAMPLES_PER_BREED,
                   help=f"images per breed (default {DEFAULT_SAMPLES_PER_BREED}; ~0.25 s of Inception per image)")
    p.add_argument("--steps", type=positive_int, help="sampling steps (default: the pipeline's default)")
    p.add_argument("--guidance", type=guidance_scale,
                   help="guidance scale, finite, >= 0; 1.0 turns guidance off (default: the pipeline's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=84)
    p.add_argument("--cache-dir", help=f"real-feature cache (default: OUTPUT/{DEFAULT_CACHE_DIR}, "
                   f"or ./{DEFAULT_CACHE_DIR} when --output is not given)")
    p.add_argument("--onnx", choices=("fp32", "int8"),
                   help='run the denoiser exported under --onnx-dir in ONNX Runtime instead of --generator '
                   '(needs: pip install "tiny-cats[onnx]")')
    p.add_argument("--onnx-dir", default=".", help="package folder holding onnx/ (default .)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def summary(doc: dict) -> str:
    rows = [
        ("images generated", doc.get("num_generated")),
        ("FID", doc.get("fid")),
        ("KID", doc.get("kid_mean")),
        ("precision", doc.get("precision")),
        ("recall", doc.get("recall")),
        ("real-vs-real floor FID", (doc.get("real_vs_real_floor") or {}).get("fid_real_a_vs_real_b")),
        ("FID vs the floor's real set", (doc.get("real_vs_real_floor") or {}).get("fid_generated_vs_real_b")),
        ("breed accuracy", (doc.get("breed_accuracy") or {}).get("overall")),
        ("judged not a cat", (doc.get("breed_accuracy") or {}).get("judged_not_a_cat")),
        ("nearest-neighbour ratio (samples / held-back real)", (doc.get("memorisation") or {}).get("ratio")),
        ("classifier-based score", doc.get("classifier_based_score")),
        ("seconds", doc.get("seconds")),
    ]
    return format_table(("generator", "value"), rows)


def refuse_to_replace_pytorch_results(output: Path) -> None:
    """An ONNX run writes the same files as a PyTorch one: it must not replace a PyTorch evaluation."""
    existing = output / layout.GENERATOR_EVALUATION
    if not existing.is_file():
        return
    try:
        model = str(json.loads(existing.read_text()).get("model", ""))
    except (ValueError, AttributeError):
        model = ""
    if not model.endswith("(ONNX Runtime)"):
        raise CommandError(f"evaluate-generator --onnx: {existing} holds a PyTorch evaluation; "
                           "pass another --output for the ONNX one")


def run(args) -> int:
    require_extra("eval", "evaluate-generator")
    if args.onnx:
        if args.generator:
            raise CommandError("evaluate-generator: --onnx runs the export under --onnx-dir; drop --generator")
        require_extra("onnx", "evaluate-generator --onnx")
    if args.cache_dir is None and args.output is None:
        args.cache_dir = DEFAULT_CACHE_DIR  # one real-feature cache for every fresh output folder
    output = resolve_output(args, "evaluate-generator")
    if args.onnx:
        refuse_to_replace_pytorch_results(Path(output))
    from ..evaluation.run_generator_eval import evaluate_generator

    doc = evaluate_generator(
        model=args.onnx_dir if args.onnx else args.generator, classifier=args.classifier, data=args.data,
        output_dir=output, samples_per_breed=args.samples_per_breed, steps=args.steps, guidance=args.guidance,
        seed=args.seed, batch_size=args.batch_size, cache_dir=args.cache_dir, progress=not args.quiet, onnx=args.onnx,
    )
    print(summary(doc))
    print(f"wrote {Path(output) / layout.GENERATOR_EVALUATION}")
    return 0
