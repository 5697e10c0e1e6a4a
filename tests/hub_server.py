"""A tiny Hugging Face Hub look-alike on 127.0.0.1, so tests can drive the *real* ``huggingface_hub`` client.

Only the endpoints that ``huggingface_hub==0.36.x`` calls for create/upload/download/info flows are served.
Every file is uploaded in "regular" mode (base64 inside the NDJSON commit), so neither LFS nor Xet is needed.
Storage is git-like: each commit is an immutable snapshot ``{path: (blob_oid, size)}`` with a 40-hex id, branches
point at commits, and blobs live content-addressed (git blob sha1, as the Hub reports for regular files) on disk.

In-process use: the ``local_hub`` fixture below (``from .hub_server import local_hub`` in a test module or conftest).
Subprocess use: ``env = {**os.environ, **hub.client_env(hf_home)}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

DEFAULT_TOKENS = {"hf_test_token": "tester", "hf_other_token": "other"}
REPO_PREFIX = {"model": "", "dataset": "datasets/"}  # how each repo type appears in web/resolve URLs
# What the Hub commits when it creates a repo; kept so siblings look like the real thing.
GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"

_API_REPO = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)"
                       r"(?:/(revision|tree|paths-info|preupload|commit|refs|branch)(?:/([^/]+)(/.*)?)?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


class HubError(Exception):
    """An HTTP error answered the way the Hub does (``X-Error-Code`` drives the client's exception class)."""

    def __init__(self, status: int, message: str, code: Optional[str] = None, headers: Optional[dict] = None,
                 **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.extra = status, message, code, headers or {}, extra


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The oid the Hub reports (and the client compares) for regular files: git's blob sha1."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: Optional[str]
    files: dict  # path -> (blob_oid, size); never mutated after creation
    message: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    owner: str
    private: bool
    created: str = field(default_factory=_now)
    branches: dict = field(default_factory=dict)  # branch name -> commit oid
    commits: dict = field(default_factory=dict)  # commit oid -> Commit


class LocalHub:
    """Threaded HTTP server holding repos in memory and blobs under ``storage_dir``.

    Fault injection (each fires once; commit faults hit the next ``/commit/`` POST before any auth check):
      * ``fail_next_commit = "drop"``: read half of the commit body, then reset the connection (no answer).
      * ``fail_next_commit = "500"``: answer 500 to the next commit (``create_commit`` does not retry).
      * ``fail_next_download = "drop"``: send headers and half the file of the next resolve GET, then close
        (the 0.36 client raises ``requests.ChunkedEncodingError``; it does not resume on that).
      * ``fail_next_download = "stall"``: same but wait ``stall_seconds`` before closing; with a shorter
        ``constants.HF_HUB_DOWNLOAD_TIMEOUT`` the client hits a read timeout and resumes with a Range request.
      * ``fail_next_download = "500"``: answer 500 once (the client's ``http_backoff`` retries after ~1 s).
    ``requests`` logs ``(method, path, status)`` of every answered request (headers, hence tokens, never logged);
    ``unhandled`` lists requests no route matched, to spot endpoints a new client version needs.
    """

    def __init__(self, tokens: Optional[dict] = None, storage_dir: Optional[os.PathLike] = None, port: int = 0):
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self._own_dir = storage_dir is None
        self.storage_dir = Path(tempfile.mkdtemp(prefix="local-hub-") if storage_dir is None else storage_dir)
        (self.storage_dir / "blobs").mkdir(parents=True, exist_ok=True)
        self.port = port
        self.repos: dict = {}  # (repo_type, repo_id) -> Repo
        self.requests: list = []
        self.unhandled: list = []
        self.fail_next_commit: Optional[str] = None
        self.fail_next_download: Optional[str] = None
        self.stall_seconds = 2.0
        self._lock = threading.Lock()
        self._counter = 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        assert self._server is not None, "LocalHub not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
        if self._own_dir:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self) -> "LocalHub":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def client_env(self, hf_home: os.PathLike, token: Optional[str] = None) -> dict:
        """Environment variables pointing a *fresh* Python process at this hub with an isolated cache."""
        env = {"HF_ENDPOINT": self.url, "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(Path(hf_home) / "hub"),
               "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    def _put_blob(self, data: bytes) -> tuple:
        """Store content-addressed; written via rename so a reader never sees a partial blob."""
        oid = git_blob_oid(data)
        path = self.storage_dir / "blobs" / oid
        if not path.exists():
            tmp = path.with_name(f"{oid}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return oid, len(data)

    def read_blob(self, oid: str) -> bytes:
        return (self.storage_dir / "blobs" / oid).read_bytes()

    def _new_commit(self, repo: Repo, parent: Optional[str], files: dict, message: str) -> Commit:
        """Caller holds the lock. The id is unique per commit even for identical trees, like git's."""
        self._counter += 1
        seed = json.dumps([parent, sorted(files.items()), message, time.time_ns(), self._counter])
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, files, message, _now())
        repo.commits[commit.oid] = commit
        return commit

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str:
        """Commit oid a branch points at (for assertions)."""
        return self.repos[(repo_type, repo_id)].branches[revision]


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the ``hub`` bound by ``LocalHub.start``. HTTP/1.1 keep-alive, like the real Hub."""

    hub: LocalHub
    user: Optional[str] = None  # per request: set by _dispatch, with ``body`` and ``query``
    protocol_version = "HTTP/1.1"
    timeout = 30  # a stuck client must not pin a server thread forever

    def log_request(self, code="-", size="-") -> None:
        self.hub.requests.append((self.command, urlsplit(self.path).path, int(code) if str(code).isdigit() else code))

    def log_message(self, format, *args) -> None:  # noqa: A002 - silence stderr logging of http.server
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_DELETE = do_PUT = do_GET

    def _read_body(self, limit: Optional[int] = None) -> Optional[bytes]:
        """Whole body, or None when the client vanished before sending all of it (the caller must change nothing)."""
        if self.headers.get("Transfer-Encoding"):  # the 0.36 client always sends Content-Length
            self.close_connection = True
            raise HubError(411, "LocalHub needs a Content-Length body")
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length if limit is None else min(limit, length))
        return data if len(data) == length else None

    def _abort(self, reset: bool = True) -> None:
        """End the connection mid-exchange: RST (SO_LINGER 0) drops unsent data; otherwise a plain FIN after it."""
        self.hub.requests.append((self.command, urlsplit(self.path).path, "aborted"))
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        self.connection.close()

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _user(self) -> Optional[str]:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        user = self.hub.tokens.get(auth.split(" ", 1)[-1].strip())
        if user is None:  # never echo the token back: it would end up in client exception messages
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        hub = self.hub
        try:
            if self.command == "POST" and "/commit/" in path and hub.fail_next_commit:
                fault, hub.fail_next_commit = hub.fail_next_commit, None
                if fault == "drop":
                    self._read_body(limit=int(self.headers.get("Content-Length") or 0) // 2)
                    return self._abort()
                self._read_body()
                raise HubError(500, "Injected failure")
            body = self._read_body()
            if body is None:
                return self._abort()
            self.query, self.body, self.user = query, body, self._user()
            self._route(self.command, path)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json({"error": err.message, **err.extra}, err.status, headers)
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # malformed payloads: 400, not a traceback
            self.close_connection = True
            self._json({"error": f"Bad request: {type(err).__name__}: {err}"}, 400, {"X-Error-Message": "Bad request"})

    def _route(self, m: str, path: str) -> None:
        simple = {("GET", "/api/whoami-v2"): self._whoami, ("POST", "/api/repos/create"): self._create_repo,
                  ("DELETE", "/api/repos/delete"): self._delete_repo,
                  ("POST", "/api/validate-yaml"): lambda: self._json({"errors": [], "warnings": []})}
        if (m, path) in simple:
            return simple[(m, path)]()
        match = _API_REPO.match(path)
        if match:
            kind, repo_id, action, rev, rest = match.groups()
            repo = self._repo(kind[:-1], repo_id)
            rev = unquote(rev) if rev else "main"
            rest = unquote(rest[1:]) if rest else ""
            handler = {(None, "GET"): self._info, ("revision", "GET"): self._info, ("tree", "GET"): self._tree,
                       ("paths-info", "POST"): self._paths_info, ("preupload", "POST"): self._preupload,
                       ("commit", "POST"): self._commit, ("refs", "GET"): self._refs,
                       ("branch", "POST"): self._create_branch}.get((action, m))
            if handler is not None:
                return handler(repo, rev, rest)
        match = _RESOLVE.match(path)
        if match and m in ("GET", "HEAD"):
            kind, repo_id, rev, filename = match.groups()
            return self._resolve(self._repo("dataset" if kind else "model", repo_id), unquote(rev), unquote(filename))
        self.hub.unhandled.append((m, path))
        raise HubError(404, f"LocalHub has no route for {m} {path}")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        """Private repos of other users are indistinguishable from missing ones, as on the Hub."""
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and repo.owner != self.user):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _check_write(self, repo: Repo) -> None:
        if self.user is None:
            raise HubError(401, "You must be authenticated to write to a repository")
        if self.user != repo.owner:
            raise HubError(403, f"You don't have the rights to write to {repo.repo_id}")

    @staticmethod
    def _commit_for(repo: Repo, rev: str) -> Commit:
        oid = repo.branches.get(rev.removeprefix("refs/heads/")) or (rev if rev in repo.commits else None)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commits[oid]

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.hub.url}/{REPO_PREFIX[repo.repo_type]}{repo.repo_id}"

    @staticmethod
    def _entries(commit: Commit, base: str, recursive: bool) -> list:
        """Tree listing below ``base``: files plus the folders the Hub infers from their paths."""
        prefix = f"{base}/" if base else ""
        files, folders = [], {}
        for path, (oid, size) in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):
                folders.setdefault(prefix + "/".join(parts[:i]), []).append(oid)
            if recursive or len(parts) == 1:
                files.append({"type": "file", "path": path, "oid": oid, "size": size})
        if base and not files and not folders:
            raise HubError(404, f"{base} does not exist on this revision", "EntryNotFound")
        dirs = [{"type": "directory", "path": p, "size": 0, "oid": hashlib.sha1("".join(o).encode()).hexdigest()}
                for p, o in sorted(folders.items())]
        return dirs + files

    def _whoami(self) -> None:
        if self.user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        self._json({"type": "user", "id": self.user, "name": self.user, "fullname": self.user, "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}}})

    def _create_repo(self) -> None:
        if self.user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        payload = json.loads(self.body or b"{}")
        repo_type = payload.get("type") or "model"
        namespace, name = payload.get("organization") or self.user, payload.get("name") or ""
        if repo_type not in REPO_PREFIX or not _NAME.match(name):
            raise HubError(400, f"Invalid repo type or name: {repo_type} {name!r}")
        if namespace != self.user:
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}")
        repo_id = f"{namespace}/{name}"
        with self.hub._lock:
            if (repo_type, repo_id) in self.hub.repos:
                existing = self.hub.repos[(repo_type, repo_id)]  # the client's exist_ok path reads "url"
                raise HubError(409, f"You already created this {repo_type} repo", url=self._repo_url(existing))
            repo = Repo(repo_type, repo_id, self.user, bool(payload.get("private")))
            files = {".gitattributes": self.hub._put_blob(GITATTRIBUTES)}
            repo.branches["main"] = self.hub._new_commit(repo, None, files, "initial commit").oid
            self.hub.repos[(repo_type, repo_id)] = repo
        self._json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        payload = json.loads(self.body or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.user}/{payload.get('name')}"
        repo = self._repo(repo_type, repo_id)
        self._check_write(repo)
        with self.hub._lock:
            self.hub.repos.pop((repo_type, repo_id), None)
        self._json({})

    def _info(self, repo: Repo, rev: str, _rest: str) -> None:
        commit = self._commit_for(repo, rev)
        blobs = self.query.get("blobs", [""])[0].lower() in ("1", "true")
        siblings = [{"rfilename": p, **({"size": s, "blobId": o} if blobs else {})}
                    for p, (o, s) in sorted(commit.files.items())]
        info = {"_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": commit.oid, "lastModified": commit.date,
                "createdAt": repo.created, "private": repo.private, "gated": False, "disabled": False,
                "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        self._json(info)

    def _tree(self, repo: Repo, rev: str, rest: str) -> None:
        recursive = self.query.get("recursive", [""])[0].lower() in ("1", "true")
        self._json(self._entries(self._commit_for(repo, rev), rest.strip("/"), recursive))

    def _paths_info(self, repo: Repo, rev: str, _rest: str) -> None:
        commit = self._commit_for(repo, rev)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(self.body).get("paths", [])
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        entries = {e["path"]: e for e in self._entries(commit, "", recursive=True)}
        self._json([entries[p.strip("/")] for p in paths if p.strip("/") in entries])

    def _preupload(self, repo: Repo, rev: str, _rest: str) -> None:
        """Every file goes "regular" (inline base64), so the client never needs LFS or Xet."""
        self._check_write(repo)
        commit = self._commit_for(repo, rev)
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": commit.files.get(f["path"], (None,))[0]} for f in json.loads(self.body).get("files", [])]
        self._json({"files": files, "commitOid": commit.oid})

    def _commit(self, repo: Repo, rev: str, _rest: str) -> None:
        """Parse and validate the whole NDJSON body first, then publish by moving the branch in one step."""
        self._check_write(repo)
        if self.query.get("create_pr"):
            raise HubError(400, "LocalHub does not support pull requests")
        try:
            lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        except ValueError as err:
            raise HubError(400, f"Invalid NDJSON commit payload: {err}") from None
        if not lines or lines[0].get("key") != "header" or not lines[0]["value"].get("summary"):
            raise HubError(400, "The first NDJSON line must be a header with a non-empty summary")
        header, ops = lines[0]["value"], []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = str(value.get("path", "")).strip("/") if key == "deletedFolder" else value.get("path", "")
            if not path or path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
                raise HubError(400, f"Invalid path in commit: {path!r}")
            if key == "file":
                try:
                    data = base64.b64decode(value.get("content", ""), validate=True)
                except binascii.Error:
                    raise HubError(400, f"Invalid base64 content for {path}") from None
                ops.append((key, path, data))
            elif key in ("deletedFile", "deletedFolder"):
                ops.append((key, path, None))
            else:
                raise HubError(400, f"LocalHub does not support commit operation {key!r} (no LFS)")
        blobs = {path: self.hub._put_blob(data) for key, path, data in ops if key == "file"}
        with self.hub._lock:
            if rev not in repo.branches:
                raise HubError(404, f"Invalid rev id: {rev} (commits go to an existing branch)", "RevisionNotFound")
            parent = repo.branches[rev]
            if header.get("parentCommit") not in (None, parent):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.commits[parent].files)
            for key, path, _ in ops:
                if key == "file":
                    files[path] = blobs[path]
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                else:
                    doomed = [p for p in files if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
            message = header["summary"] + (f"\n\n{header['description']}" if header.get("description") else "")
            commit = self.hub._new_commit(repo, parent, files, message)
            repo.branches[rev] = commit.oid  # the single step that makes the commit visible
        self._json({"success": True, "commitOid": commit.oid, "pullRequestUrl": None,
                    "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}"})

    def _refs(self, repo: Repo, _rev: str, _rest: str) -> None:
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in sorted(repo.branches.items())]
        self._json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _create_branch(self, repo: Repo, branch: str, _rest: str) -> None:
        self._check_write(repo)
        start = json.loads(self.body or b"{}").get("startingPoint") or "main"
        with self.hub._lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            repo.branches[branch] = self._commit_for(repo, start).oid
        self._json({})

    def _resolve(self, repo: Repo, rev: str, filename: str) -> None:
        """Regular-file download: ETag is the blob oid, X-Repo-Commit the resolved commit; single Range supported."""
        commit = self._commit_for(repo, rev)
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if filename not in commit.files:
            raise HubError(404, f"Entry not found: {filename}", "EntryNotFound", headers)
        oid, size = commit.files[filename]
        headers["ETag"] = f'"{oid}"'
        data = self.hub.read_blob(oid)
        status, rng = 200, self.headers.get("Range")
        if rng:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            start, end = match.groups() if match else ("", "")
            first = max(0, size - int(end)) if not start and end else int(start or 0)
            last = min(int(end), size - 1) if start and end else size - 1
            if not (start or end) or first > last:
                raise HubError(416, "Requested range not satisfiable", None, {"Content-Range": f"bytes */{size}"})
            status, data = 206, data[first:last + 1]
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if self.command == "GET" and self.hub.fail_next_download:
            fault, self.hub.fail_next_download = self.hub.fail_next_download, None
            if fault == "500":
                raise HubError(500, "Injected failure")
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            if fault == "stall":
                time.sleep(self.hub.stall_seconds)
            return self._abort(reset=False)
        self._send(status, data, headers, content_type="application/octet-stream")


def patch_client(monkeypatch: pytest.MonkeyPatch, hub: LocalHub, hf_home: os.PathLike) -> None:
    """Point an already-imported ``huggingface_hub`` (and transformers, if imported) at ``hub``.

    ``huggingface_hub.constants`` is computed once at import from the environment, and a few values were copied
    elsewhere at import time too: ``file_download.HUGGINGFACE_CO_URL_TEMPLATE`` (used by ``hf_hub_url``) and the
    module-level ``hf_api.api`` instance, whose bound methods are the public ``create_repo``/``upload_folder``/...
    """
    import sys

    from huggingface_hub import constants, file_download, hf_api

    url, home = hub.url, Path(hf_home)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    for name, value in hub.client_env(home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    for name, value in {"ENDPOINT": url, "HUGGINGFACE_CO_URL_TEMPLATE": template, "HF_HUB_DISABLE_XET": True,
                        "HF_HUB_DISABLE_TELEMETRY": True, "HF_HUB_OFFLINE": False, "HF_HOME": str(home),
                        "HF_HUB_CACHE": str(home / "hub"), "HF_ASSETS_CACHE": str(home / "assets"),
                        "HF_TOKEN_PATH": str(home / "token"), "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
                        "HF_XET_CACHE": str(home / "xet")}.items():
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None:  # its defaults were also frozen at import; never import it here (slow)
        monkeypatch.setattr(transformers_hub, "HUGGINGFACE_CO_RESOLVE_ENDPOINT", url)
        monkeypatch.setattr(transformers_hub, "TRANSFORMERS_CACHE", str(home / "hub"))


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """A started ``LocalHub`` (tokens ``DEFAULT_TOKENS``) with the in-process client and env pointed at it."""
    with LocalHub(storage_dir=tmp_path / "hub-storage") as hub:
        patch_client(monkeypatch, hub, tmp_path / "hf-home")
        yield hub
