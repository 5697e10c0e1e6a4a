"""``tiny-cats classify``: name the cat breed (or 'other') in photos."""

from __future__ import annotations

from .common import add_model_option, load_classifier, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classify", help="name the cat breed (or 'other') in photos", allow_abbrev=False,
        description="Name the cat breed (or 'other') in local image files. Every file is checked first; bad ones "
        "(missing, empty, not an image, truncated, too large, a URL) are all named in one line. 16-bit images are "
        "scaled to 8 bits.")
    p.add_argument("images", nargs="+", help="image files (local paths; URLs are refused)")
    add_model_option(p, "classifier", alias=True)
    p.add_argument("--top-k", type=positive_int, default=3)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..image_io import load_images

    images = load_images(args.images)  # every file checked before any model is loaded; all bad ones named
    classifier = load_classifier(args.classifier)
    results = classifier(images, top_k=args.top_k, batch_size=args.batch_size)
    for path, predictions in zip(args.images, results):
        ranked = ", ".join(f"{p['label']} {p['score']:.3f}" for p in predictions)
        print(f"{path}\t{ranked}")
    return 0
