"""End-to-end checks of tests/hub_server.py with the real huggingface_hub client (no network beyond 127.0.0.1)."""

import os
import subprocess
import sys
import textwrap

import pytest
import requests
from huggingface_hub import HfApi, constants, create_repo, hf_hub_download, model_info, snapshot_download, upload_folder
from huggingface_hub.utils import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .hub_server import GITATTRIBUTES, local_hub  # noqa: F401  (pytest fixture)

TOKEN, OTHER_TOKEN = "hf_test_token", "hf_other_token"
REPO = "tester/tiny"
BLOB = bytes(range(256)) * 16  # 4 KiB of binary, every byte value


@pytest.fixture(autouse=True)
def _all_routes_known(local_hub):  # noqa: F811
    """Fail loudly if the client called an endpoint the server does not implement."""
    yield
    assert local_hub.unhandled == []


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "to-upload"
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden": 8}')
    (root / "sub" / "weights.bin").write_bytes(BLOB)
    return root


@pytest.fixture
def api():
    return HfApi(token=TOKEN)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_create_repo_and_exist_ok(local_hub, api):  # noqa: F811
    url = create_repo(REPO, token=TOKEN)  # module-level function: proves hf_api.api was re-pointed
    assert url.startswith(local_hub.url) and url.repo_id == REPO and url.repo_type == "model"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    assert api.whoami()["name"] == "tester"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("other/not-mine")
    assert err.value.response.status_code == 403


def test_upload_folder_then_download(local_hub, api, folder, tmp_path):  # noqa: F811
    api.create_repo(REPO)
    info = upload_folder(repo_id=REPO, folder_path=folder, token=TOKEN, commit_message="add files")
    assert info.oid == local_hub.head(REPO) and len(info.oid) == 40
    meta = model_info(REPO, token=TOKEN, files_metadata=True)
    assert meta.sha == info.oid and meta.id == REPO and meta.private is False
    assert {s.rfilename: s.size for s in meta.siblings} == {".gitattributes": len(GITATTRIBUTES), "config.json": 13,
                                                            "sub/weights.bin": len(BLOB)}

    assert _read(hf_hub_download(REPO, "sub/weights.bin")) == BLOB  # anonymous read of a public repo
    snap = snapshot_download(REPO, cache_dir=tmp_path / "fresh-cache")
    assert f"snapshots{os.sep}{info.oid}" in snap
    assert _read(os.path.join(snap, "config.json")) == b'{"hidden": 8}'
    assert _read(os.path.join(snap, "sub", "weights.bin")) == BLOB

    assert sorted(api.list_repo_files(REPO)) == [".gitattributes", "config.json", "sub/weights.bin"]
    top = {(e.path, type(e).__name__) for e in api.list_repo_tree(REPO)}
    assert top == {(".gitattributes", "RepoFile"), ("config.json", "RepoFile"), ("sub", "RepoFolder")}
    assert [e.path for e in api.list_repo_tree(REPO, path_in_repo="sub")] == ["sub/weights.bin"]
    paths = api.get_paths_info(REPO, ["config.json", "sub", "missing.txt"])
    assert [(p.path, type(p).__name__) for p in paths] == [("config.json", "RepoFile"), ("sub", "RepoFolder")]
    assert api.file_exists(REPO, "config.json") and not api.file_exists(REPO, "nope.json")


def test_new_commit_keeps_old_revision(local_hub, api, folder):  # noqa: F811
    api.create_repo(REPO)
    first = api.upload_folder(repo_id=REPO, folder_path=folder).oid
    (folder / "config.json").write_text('{"hidden": 16}')
    second = api.upload_folder(repo_id=REPO, folder_path=folder).oid
    assert second != first and api.model_info(REPO).sha == second
    assert _read(hf_hub_download(REPO, "config.json")) == b'{"hidden": 16}'
    assert _read(hf_hub_download(REPO, "config.json", revision=first)) == b'{"hidden": 8}'
    assert api.model_info(REPO, revision=first).sha == first
    # Unchanged files are detected through the preupload oid, so re-uploading makes no empty commit.
    assert api.upload_folder(repo_id=REPO, folder_path=folder).oid == second
    api.delete_file("sub/weights.bin", REPO)
    assert api.list_repo_files(REPO) == [".gitattributes", "config.json"]
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "sub/weights.bin")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")


def test_branches(local_hub, api, folder):  # noqa: F811
    api.create_repo(REPO)
    main = local_hub.head(REPO)
    api.create_branch(REPO, branch="dev")
    api.upload_file(path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id=REPO, revision="dev")
    assert local_hub.head(REPO) == main and api.file_exists(REPO, "dev.txt", revision="dev")
    assert {b.name for b in api.list_repo_refs(REPO).branches} == {"main", "dev"}


def test_private_repo_is_invisible(local_hub, api, folder):  # noqa: F811
    api.create_repo(REPO, private=True)
    api.upload_folder(repo_id=REPO, folder_path=folder)
    assert api.model_info(REPO).private is True
    for token in (OTHER_TOKEN, False):
        with pytest.raises(RepositoryNotFoundError):
            model_info(REPO, token=token)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(REPO, "config.json", token=token)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=OTHER_TOKEN).upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=REPO)
    assert _read(hf_hub_download(REPO, "config.json", token=TOKEN)) == b'{"hidden": 8}'
    api.delete_repo(REPO)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(REPO)


def test_wrong_token_is_rejected_and_never_leaked(local_hub, api, folder):  # noqa: F811
    secret = "hf_wrong_secret_value"
    api.create_repo(REPO)
    for call in (lambda: create_repo("tester/other", token=secret),
                 lambda: upload_folder(repo_id=REPO, folder_path=folder, token=secret)):
        with pytest.raises(HfHubHTTPError) as err:
            call()
        assert err.value.response.status_code == 401
        assert secret not in str(err.value)
    assert local_hub.head(REPO) == api.model_info(REPO).sha
    assert secret not in repr(local_hub.requests) and TOKEN not in repr(local_hub.requests)


def test_dropped_commit_leaves_repo_unchanged(local_hub, api, folder):  # noqa: F811
    api.create_repo(REPO)
    before = local_hub.head(REPO)
    local_hub.fail_next_commit = "drop"
    with pytest.raises(requests.ConnectionError):
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert local_hub.head(REPO) == before and api.model_info(REPO).sha == before
    assert api.list_repo_files(REPO) == [".gitattributes"]

    local_hub.fail_next_commit = "500"
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert err.value.response.status_code == 500 and local_hub.head(REPO) == before

    assert api.upload_folder(repo_id=REPO, folder_path=folder).oid != before  # faults fire once only


def test_interrupted_downloads(local_hub, api, folder, monkeypatch):  # noqa: F811
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=folder)
    local_hub.fail_next_download = "drop"  # truncated body: the client gives up, nothing lands in the cache
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        hf_hub_download(REPO, "sub/weights.bin")
    assert _read(hf_hub_download(REPO, "sub/weights.bin")) == BLOB
    local_hub.fail_next_download = "500"  # retried by the client's http_backoff (after ~1 s)
    assert _read(hf_hub_download(REPO, "config.json")) == b'{"hidden": 8}'
    assert ("GET", f"/{REPO}/resolve/main/config.json", 500) in local_hub.requests

    # A stalled body hits the read timeout, which the client answers by resuming with a Range request.
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.5)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)  # else the partial 2 KiB never reaches the file
    local_hub.fail_next_download, local_hub.stall_seconds = "stall", 1.0
    assert _read(hf_hub_download(REPO, "sub/weights.bin", cache_dir=folder / "other-cache")) == BLOB
    gets = [r for r in local_hub.requests if r[0] == "GET" and r[1].endswith("/resolve/main/sub/weights.bin")]
    assert [status for _, _, status in gets][-2:] == ["aborted", 206]


def test_subprocess_client_uses_hf_endpoint(local_hub, api, folder, tmp_path):  # noqa: F811
    api.create_repo(REPO)
    sha = api.upload_folder(repo_id=REPO, folder_path=folder).oid
    script = textwrap.dedent(
        f"""
        from huggingface_hub import constants, hf_hub_download
        assert constants.ENDPOINT == {local_hub.url!r}, constants.ENDPOINT
        path = hf_hub_download({REPO!r}, "config.json")
        assert {sha!r} in path and path.startswith({str(tmp_path / "child-home")!r}), path
        print(open(path).read())
        """
    )
    env = {**os.environ, **local_hub.client_env(tmp_path / "child-home")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"hidden": 8}'
