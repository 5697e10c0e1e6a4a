"""``tiny-cats demo``: one generated cat per breed, each judged by the classifier, and the grid."""

from __future__ import annotations

import time
from pathlib import Path

from .common import (
    add_model_option,
    add_sampling_options,
    check_output_image,
    load_classifier,
    load_generator,
    sampling_kwargs,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="generate one cat per breed and classify each", allow_abbrev=False)
    add_sampling_options(p, output=Path("demo_grid.png"))
    add_model_option(p, "generator")
    add_model_option(p, "classifier", " judging each image")
    p.set_defaults(run=run)


def run(args) -> int:
    check_output_image(args.output)
    import torch

    from ..classifier.labels import CAT_BREEDS
    from ..files import save_image
    from ..generator.pipeline_tiny_dit import images_to_grid

    pipe = load_generator(args.generator)
    pipe.set_progress_bar_config(disable=True)
    classifier = load_classifier(args.classifier)
    rows, images = [], []
    print(f"{'asked breed':<18} {'judged breed':<18} {'probability':>11} {'seconds':>8}")
    for i, breed in enumerate(CAT_BREEDS):
        started = time.perf_counter()
        image = pipe(breed, generator=torch.manual_seed(args.seed + i), **sampling_kwargs(args)).images[0]
        top = classifier(image, top_k=1)[0]
        seconds = time.perf_counter() - started
        rows.append((breed, top["label"], top["score"], seconds))
        images.append(image)
        print(f"{breed:<18} {top['label']:<18} {top['score']:>11.3f} {seconds:>8.2f}")
    save_image(images_to_grid(images, columns=6), args.output)
    agreed = sum(asked == judged for asked, judged, _, _ in rows)
    print(f"classifier agreed with the asked breed for {agreed}/{len(rows)}; grid written to {args.output}")
    return 0
