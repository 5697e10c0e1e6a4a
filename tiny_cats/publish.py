"""Upload a model package to the Hugging Face Hub as one commit, and the ``tiny-cats publish`` command.

A Hub commit is atomic: the branch moves to the new commit or stays where it was, so a failed
upload never leaves half a package. That is why transient failures (lost connections, 5xx)
can simply be retried: a retry after a commit that did land finds nothing to change. The
token comes from ``HF_TOKEN`` or the stored login and is never printed, logged or written.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from .layout import DEFAULT_REPO_ID

# requests, huggingface_hub and the package builder are imported where used: the CLI imports this
# module to build its parser, and `tiny-cats --help` must not wait for them.

logger = logging.getLogger(__name__)
DEFAULT_COMMIT_MESSAGE = "Publish the tiny-cats model package"
ATTEMPTS = 3
BASE_DELAY_S = 2.0
MAX_DELAY_S = 30.0


class PublishError(RuntimeError):
    """The Hub refused or failed the upload; the message names the step and the cause, never the token."""


@dataclass
class PublishResult:
    repo_id: str
    revision: str
    files: List[Tuple[str, int]]
    commit_oid: Optional[str] = None  # None for a dry run
    commit_url: Optional[str] = None
    dry_run: bool = False
    notes: List[str] = field(default_factory=list)


def _status(err: BaseException) -> Optional[int]:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _transient(err: BaseException) -> bool:
    """Worth retrying: a lost connection or timeout, or the Hub's 5xx / 429."""
    import requests
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return False
    if isinstance(err, HfHubHTTPError):
        status = _status(err)
        return status is not None and (status >= 500 or status == 429)
    return isinstance(err, (requests.ConnectionError, requests.Timeout))


def _explain(err: BaseException, step: str, repo_id: str, attempts: int, token: Optional[str]) -> str:
    """One line naming what failed; the token, should any text echo it, is masked."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    status = _status(err)
    if isinstance(err, OfflineModeIsEnabled):
        text = f"HF_HUB_OFFLINE is set; unset it to publish ({step})"
    elif status == 401:
        text = f"the Hub refused the token (401) while {step}: set HF_TOKEN or run `huggingface-cli login`"
    elif status == 403:
        text = f"the token may not write to {repo_id} (403) while {step}"
    elif status == 404:
        text = f"not found (404) while {step}: {getattr(err, 'server_message', None) or repo_id}"
    elif status is not None:
        retried = f" after {attempts} attempt(s)" if _transient(err) else ""
        details = getattr(err, "server_message", None) or "no details"
        text = f"the Hub answered {status}{retried} while {step}: {details}"
    else:
        text = (f"lost the connection to {constants.ENDPOINT} while {step} after {attempts} attempt(s) "
                f"({type(err).__name__})")
    if step.startswith("committing"):
        text += "; a Hub commit is atomic, so the repo keeps its previous revision or holds the whole new one"
    return text.replace(token, "***") if token else text


def with_retries(call: Callable, step: str, attempts: int, base_delay: float, sleep: Callable = time.sleep):
    """``call()``, retried on transient errors with exponential backoff (``base_delay`` doubling, capped)."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - classified right here
            if attempt == attempts or not _transient(err):
                raise
            delay = min(base_delay * 2 ** (attempt - 1), MAX_DELAY_S)
            logger.warning("%s failed (%s); retry %d of %d in %.1f s", step, type(err).__name__, attempt,
                           attempts - 1, delay)
            sleep(delay)


def _check_token_absent(package_dir: Path, files: List[Tuple[str, int]], token: str) -> None:
    needle = token.encode()
    for name, _ in files:
        if needle in (package_dir / name).read_bytes():
            raise PublishError(f"{name} contains the Hub token; refusing to upload it")


def publish(repo_id: str, package_dir, private: bool = False, revision: Optional[str] = None,
            token: Optional[str] = None, dry_run: bool = False, commit_message: str = DEFAULT_COMMIT_MESSAGE,
            attempts: int = ATTEMPTS, base_delay: float = BASE_DELAY_S) -> PublishResult:
    """Validate ``package_dir`` and upload it to ``repo_id`` as one commit that mirrors the folder.

    Files in the repo that the package no longer has are deleted in the same commit. With
    ``dry_run`` nothing touches the network: the result lists what would be uploaded.
    ``revision``: a branch, created from main when missing (default main).
    """
    import requests
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import OfflineModeIsEnabled

    from .hub_package import check_repo_id, validate_package

    check_repo_id(repo_id)
    package_dir = Path(package_dir)
    files = validate_package(package_dir, repo_id)
    branch = revision or "main"
    result = PublishResult(repo_id=repo_id, revision=branch, files=files, dry_run=dry_run)
    if dry_run:
        return result
    token = token or get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `huggingface-cli login`")
    _check_token_absent(package_dir, files, token)
    api = HfApi(token=token)

    def step(name: str, call: Callable):
        try:
            return with_retries(call, name, attempts, base_delay)
        except Exception as err:  # noqa: BLE001 - every Hub failure becomes one clear line
            if not isinstance(err, (requests.RequestException, OfflineModeIsEnabled)):
                raise
            raise PublishError(_explain(err, name, repo_id, attempts, token)) from None

    step(f"creating {repo_id}", lambda: api.create_repo(repo_id, private=private, exist_ok=True))
    if branch != "main":
        step(f"creating branch {branch}", lambda: api.create_branch(repo_id, branch=branch, exist_ok=True))
    total = sum(size for _, size in files)
    info = step(f"committing {len(files)} files to {repo_id}@{branch}", lambda: api.upload_folder(
        repo_id=repo_id, folder_path=package_dir, revision=branch, commit_message=commit_message,
        commit_description=f"{len(files)} files, {total:,} bytes, built by `tiny-cats publish`.",
        delete_patterns="*", ignore_patterns=[".*", "**/.*"]))
    result.commit_oid, result.commit_url = info.oid, info.commit_url
    return result


# ----------------------------------------------------------------------------- CLI


def _model_dir(given: Optional[str], default: Path, flag: str) -> Path:
    """The folder given, else the bundled model, which must exist."""
    if given:
        return Path(given)
    if not default.is_dir():
        raise FileNotFoundError(f"no bundled model at {default}; pass {flag} DIR")
    return default


# Where the committed results live: the checkout this package runs from, then the current folder.
CHECKOUT_ROOT = Path(__file__).resolve().parents[1]


def default_results_dir(candidates: Optional[List[Path]] = None) -> Optional[Path]:
    """The first of the checkout and the current folder that holds evaluation/ or benchmarks/ JSON, else None."""
    from . import layout

    for folder in candidates if candidates is not None else [CHECKOUT_ROOT, Path.cwd()]:
        if any((folder / name).is_file() for name in (layout.CLASSIFIER_EVALUATION, layout.GENERATOR_EVALUATION,
                                                       layout.INFERENCE_BENCHMARK)):
            return folder
    return None


def cmd_publish(args) -> int:
    from .defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR
    from .hub_package import build_package

    results = args.results
    if results is None and not args.no_results:
        results = default_results_dir()
        print(f"results: {results} (the committed evaluation/ and benchmarks/; --results DIR or --no-results to change)"
              if results is not None else "results: none found; every card number reads 'not measured'")
    package = build_package(_model_dir(args.classifier, DEFAULT_CLASSIFIER, "--classifier"),
                            _model_dir(args.generator, DEFAULT_GENERATOR, "--generator"), args.package_dir,
                            results_dir=results, onnx_dir=args.onnx_dir, repo_id=args.repo_id)
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


def register(subparsers) -> None:
    """Add ``tiny-cats publish`` to the CLI."""
    p = subparsers.add_parser("publish", help="build the model package and upload it to the Hugging Face Hub",
                              description="Build the model package (both models, results, ONNX, model card) into "
                              "--package-dir, validate it, and upload it as one commit. Token: HF_TOKEN or "
                              "`huggingface-cli login`.")
    p.add_argument("--repo-id", default=DEFAULT_REPO_ID, help=f"Hub model repo (default: {DEFAULT_REPO_ID})")
    p.add_argument("--private", action="store_true",
                   help="create the repo private (an existing repo keeps its setting)")
    p.add_argument("--revision", help="branch to commit to, created from main when missing (default: main)")
    p.add_argument("--dry-run", action="store_true",
                   help="build and validate, then list what would be uploaded; no network")
    p.add_argument("--classifier", help="classifier folder (default: the bundled classifier)")
    p.add_argument("--generator", help="generator pipeline folder (default: the bundled generator)")
    p.add_argument("--results", help="folder holding evaluation/, benchmarks/ and onnx/; absent parts are "
                   "'not measured' in the card (default: the committed results of this checkout, else .)")
    p.add_argument("--no-results", action="store_true", help="leave all results out of the package")
    p.add_argument("--onnx-dir", help="folder holding onnx/ (default: the --results folder)")
    p.add_argument("--package-dir", default="hub_upload", help="where the package is built (default: hub_upload)")
    p.add_argument("--commit-message", default=DEFAULT_COMMIT_MESSAGE)
    p.set_defaults(func=cmd_publish)
