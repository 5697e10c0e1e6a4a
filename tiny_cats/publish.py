"""Upload a model package to the Hugging Face Hub as one commit (the ``tiny-cats publish`` command's engine).

A Hub commit is atomic: the branch moves to the new commit or stays where it was, so a failed
upload never leaves half a package. That is why transient failures (lost connections, 5xx)
can simply be retried: a retry after a commit that did land finds nothing to change. The
token comes from ``HF_TOKEN`` or the stored login and is never printed, logged or written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

# requests, huggingface_hub and the package builder are imported where used, so that importing this
# module stays cheap.

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
