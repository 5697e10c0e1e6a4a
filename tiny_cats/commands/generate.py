"""``tiny-cats generate``: cats of the breeds asked for, as one grid image."""

from __future__ import annotations

from pathlib import Path

from .common import (
    add_model_option,
    add_sampling_options,
    cat_breed,
    check_output_image,
    load_generator,
    positive_int,
    sampling_kwargs,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate cats of a breed", allow_abbrev=False)
    p.add_argument("--breed", required=True, action="append", type=cat_breed,
                   help="cat breed name, any common spelling; repeat for several")
    p.add_argument("-n", type=positive_int, default=4, help="images per breed")
    add_sampling_options(p, output=Path("grid.png"))
    add_model_option(p, "generator", alias=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    check_output_image(args.output)
    import torch

    from ..files import save_image
    from ..generator.pipeline_tiny_dit import images_to_grid

    pipe = load_generator(args.generator)
    pipe.set_progress_bar_config(disable=args.quiet)
    images = pipe(args.breed, num_images_per_breed=args.n, generator=torch.manual_seed(args.seed),
                  **sampling_kwargs(args)).images
    save_image(images_to_grid(images, columns=min(len(images), 8)), args.output)
    print(f"wrote {len(images)} image(s) to {args.output}")
    return 0
