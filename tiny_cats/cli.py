"""The ``tiny-cats`` command: classify photos, generate cats, and a demo that does both."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from .defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, resolve_model
from .image_io import ImageInputError, load_image

# Modules that add their own subcommands: each defines register(subparsers), whose handler
# functions take the parsed args and return an exit code.
EXTRA_COMMAND_MODULES: tuple = ("tiny_cats.evaluation.cli", "tiny_cats.onnx_export", "tiny_cats.publish")


def save_image_atomically(image, path: os.PathLike) -> None:
    """Write a PNG next to ``path`` and rename it into place: no half-written file on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a written image is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_classifier(model: Optional[str]):
    import transformers  # the Auto classes were registered when the tiny_cats package was imported

    transformers.logging.set_verbosity_error()
    return transformers.pipeline("image-classification", model=resolve_model(model, DEFAULT_CLASSIFIER), device="cpu")


def load_generator(model: Optional[str]):
    from .pipeline_tiny_dit import TinyDiTPipeline

    return TinyDiTPipeline.from_pretrained(resolve_model(model, DEFAULT_GENERATOR))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_classify(args) -> int:
    images = [load_image(path) for path in args.images]  # every file checked before any work
    classifier = load_classifier(args.model)
    results = classifier(images, top_k=args.top_k, batch_size=args.batch_size)
    for path, predictions in zip(args.images, results):
        ranked = ", ".join(f"{p['label']} {p['score']:.3f}" for p in predictions)
        print(f"{path}\t{ranked}")
    return 0


def cmd_generate(args) -> int:
    import torch

    from .pipeline_tiny_dit import images_to_grid

    pipe = load_generator(args.model)
    pipe.set_progress_bar_config(disable=args.quiet)
    images = pipe(args.breed, num_images_per_breed=args.n, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, generator=torch.manual_seed(args.seed)).images
    save_image_atomically(images_to_grid(images, columns=min(len(images), 8)), args.output)
    print(f"wrote {len(images)} image(s) to {args.output}")
    return 0


def cmd_demo(args) -> int:
    import torch

    from .labels import CAT_BREEDS
    from .pipeline_tiny_dit import images_to_grid

    pipe = load_generator(args.generator)
    pipe.set_progress_bar_config(disable=True)
    classifier = load_classifier(args.classifier)
    rows, images = [], []
    print(f"{'asked breed':<18} {'judged breed':<18} {'probability':>11} {'seconds':>8}")
    for i, breed in enumerate(CAT_BREEDS):
        started = time.perf_counter()
        image = pipe(breed, num_inference_steps=args.steps, guidance_scale=args.guidance,
                     generator=torch.manual_seed(args.seed + i)).images[0]
        top = classifier(image, top_k=1)[0]
        seconds = time.perf_counter() - started
        rows.append((breed, top["label"], top["score"], seconds))
        images.append(image)
        print(f"{breed:<18} {top['label']:<18} {top['score']:>11.3f} {seconds:>8.2f}")
    save_image_atomically(images_to_grid(images, columns=6), args.output)
    agreed = sum(asked == judged for asked, judged, _, _ in rows)
    print(f"classifier agreed with the asked breed for {agreed}/{len(rows)}; grid written to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiny-cats", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    classify = sub.add_parser("classify", help="name the cat breed (or 'other') in photos")
    classify.add_argument("images", nargs="+", help="image files")
    classify.add_argument("--model", help="model folder or Hub repo id (default: the bundled classifier)")
    classify.add_argument("--top-k", type=positive_int, default=3)
    classify.add_argument("--batch-size", type=positive_int, default=16)
    classify.set_defaults(func=cmd_classify)

    generate = sub.add_parser("generate", help="generate cats of a breed")
    generate.add_argument("--breed", required=True, action="append", help="breed name; repeat for several")
    generate.add_argument("-n", type=positive_int, default=4, help="images per breed")
    generate.add_argument("--steps", type=positive_int, default=25)
    generate.add_argument("--guidance", type=float, default=4.0)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("-o", "--output", default="grid.png")
    generate.add_argument("--model", help="pipeline folder or Hub repo id (default: the bundled generator)")
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(func=cmd_generate)

    demo = sub.add_parser("demo", help="generate one cat per breed and classify each")
    demo.add_argument("--steps", type=positive_int, default=25)
    demo.add_argument("--guidance", type=float, default=4.0)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("-o", "--output", default="demo_grid.png")
    demo.add_argument("--generator", help="pipeline folder or Hub repo id (default: bundled)")
    demo.add_argument("--classifier", help="classifier folder or Hub repo id (default: bundled)")
    demo.set_defaults(func=cmd_demo)

    for module_name in EXTRA_COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ImageInputError, ValueError, FileNotFoundError, OSError) as err:
        print(f"tiny-cats: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
