"""The ``tiny-cats`` command: one module per subcommand, each with ``register(subparsers)`` and ``run(args)``.

Models are named by role on every command: ``--classifier`` and ``--generator`` (a local folder or a
Hub repo id; default: the bundled model). A command that uses one model (``classify``, ``generate``,
``evaluate-classifier``) also accepts ``--model`` for it.

Arguments are parsed, and checked, before anything heavy is imported: the command modules import
only the standard library at module level, so ``--help`` and argument errors answer at once; torch,
transformers, diffusers and optimum load inside the ``run`` of the command that needs them. Every
command is listed on a plain install; one that needs an extra says which, in one line, when run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import benchmark, classify, demo, evaluate_classifier, evaluate_generator, export, generate, publish
from .common import MODEL_SCHEME, CommandError

COMMANDS = (classify, generate, demo, evaluate_classifier, evaluate_generator, benchmark, export, publish)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiny-cats", allow_abbrev=False, epilog=MODEL_SCHEME,
        description="Classify cat breeds in photos, generate cats of a breed, evaluate, export and publish "
        "both models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..image_io import ImageInputError, one_line

    try:
        return args.run(args)
    except (CommandError, ImageInputError, ValueError, FileNotFoundError, OSError) as err:
        print(f"tiny-cats: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tiny-cats: interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]
