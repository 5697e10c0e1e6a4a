"""``tiny-cats publish``: build the model package and upload it to the Hub as one commit.

The engine is :mod:`tiny_cats.publish` (upload) and :mod:`tiny_cats.hub_package` (the package).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

from .. import layout
from .common import add_model_option

# Where the committed results live: the checkout this package runs from, then the current folder.
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACKAGE_DIR = "hub_upload"


def register(subparsers) -> None:
    from ..publish import DEFAULT_COMMIT_MESSAGE

    p = subparsers.add_parser("publish", help="build the model package and upload it to the Hugging Face Hub",
                              allow_abbrev=False,
                              description="Build the model package (both models, results, ONNX, model card) into "
                              "--package-dir, validate it, and upload it as one commit. Token: HF_TOKEN or "
                              "`huggingface-cli login`.")
    p.add_argument("--repo-id", default=layout.DEFAULT_REPO_ID,
                   help=f"Hub model repo (default: {layout.DEFAULT_REPO_ID})")
    p.add_argument("--private", action="store_true",
                   help="create the repo private (an existing repo keeps its setting)")
    p.add_argument("--revision", help="branch to commit to, created from main when missing (default: main)")
    p.add_argument("--dry-run", action="store_true",
                   help="build and validate, then list what would be uploaded; no network")
    add_model_option(p, "classifier", hub=False)
    add_model_option(p, "generator", hub=False)
    p.add_argument("--results", help="folder holding evaluation/, benchmarks/ and onnx/; absent parts are "
                   "'not measured' in the card (default: the committed results of this checkout, else .)")
    p.add_argument("--no-results", action="store_true", help="leave all results out of the package")
    onnx = p.add_mutually_exclusive_group()
    onnx.add_argument("--onnx-dir", help="folder holding onnx/ (default: the --results folder); publishing "
                      "refuses to go without one, since the web app loads the repo's onnx/")
    onnx.add_argument("--no-onnx", action="store_true",
                      help="publish without ONNX files (the repo's onnx/ is deleted, and the web app cannot load it)")
    p.add_argument("--package-dir", default=DEFAULT_PACKAGE_DIR,
                   help=f"where the package is built (default: {DEFAULT_PACKAGE_DIR})")
    p.add_argument("--commit-message", default=DEFAULT_COMMIT_MESSAGE)
    p.set_defaults(run=run)


def default_results_dir(candidates: Optional[List[Path]] = None) -> Optional[Path]:
    """The first of the checkout and the current folder that holds evaluation/ or benchmarks/ JSON, else None."""
    for folder in candidates if candidates is not None else [CHECKOUT_ROOT, Path.cwd()]:
        if any((folder / name).is_file() for name in (layout.CLASSIFIER_EVALUATION, layout.GENERATOR_EVALUATION,
                                                       layout.INFERENCE_BENCHMARK)):
            return folder
    return None


def run(args) -> int:
    from ..defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, resolve_model
    from ..hub_package import build_package
    from ..publish import PublishError, publish

    results = args.results
    if results is None and not args.no_results:
        results = default_results_dir()
        print(f"results: {results} (the committed evaluation/ and benchmarks/; --results DIR or --no-results to change)"
              if results is not None else "results: none found; every card number reads 'not measured'")
    onnx_dir = None if args.no_onnx else (args.onnx_dir or results)
    if not args.no_onnx and (onnx_dir is None or not (Path(onnx_dir) / layout.ONNX_DIR).is_dir()):
        # The upload replaces the repo's files: without onnx/ here, the repo's onnx/ would be deleted.
        raise FileNotFoundError(f"no {layout.ONNX_DIR}/ in {onnx_dir or 'a results folder'}: run `tiny-cats export "
                                f"--output DIR` and pass --onnx-dir DIR, or --no-onnx to publish without ONNX files")
    package = build_package(resolve_model(args.classifier, DEFAULT_CLASSIFIER),
                            resolve_model(args.generator, DEFAULT_GENERATOR), args.package_dir,
                            results_dir=results, onnx_dir=onnx_dir, include_onnx=not args.no_onnx,
                            repo_id=args.repo_id)
    try:
        result = publish(args.repo_id, package, private=args.private, revision=args.revision, dry_run=args.dry_run,
                         commit_message=args.commit_message)
    except PublishError as err:
        print(f"tiny-cats publish: error: {err}", file=sys.stderr)
        return 1
    if result.dry_run:
        for name, size in result.files:
            print(f"{size:>12,}  {name}")
        total = sum(size for _, size in result.files)
        print(f"dry run: would upload {len(result.files)} files ({total:,} bytes) from {package} "
              f"to {result.repo_id}@{result.revision}; repo files not listed would be deleted")
    else:
        print(f"published {len(result.files)} files to {result.repo_id}@{result.revision}: {result.commit_url}")
    return 0
