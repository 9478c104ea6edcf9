"""Tests of ``tests/hub_server.py`` driven by the real ``huggingface_hub`` client.

``huggingface_hub`` reads ``HF_ENDPOINT`` (and ``HF_HOME``, ``HF_HUB_OFFLINE``...) once, at import
time, into ``huggingface_hub.constants`` (``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, the trusted
redirect origins in ``utils._http``...). Changing the environment afterwards has no effect, so every
client call runs in a fresh subprocess whose environment points at the local server (see
``test_client_uses_local_endpoint``, which checks that an env change after import is ignored).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hub_server import INVALID_CREDENTIALS, LocalHub, git_blob_sha1
from safetensors.numpy import save_file

# The project's conftest sets HF_HUB_OFFLINE=1 for every test not marked `hub`; its `hub` fixture
# starts a LocalHub for the test (token HUB_TOKEN, user HUB_USER) and points the environment at it.
pytestmark = pytest.mark.hub

TOKEN = "hf_local_test_token"  # == conftest.HUB_TOKEN
USER = "tester"  # == conftest.HUB_USER
REPO = f"{USER}/tiny-model"
MARKER = "@@RESULT@@"

# Prepended to every client script: `api`, `ARGS` (from argv) and `R` (printed as JSON at the end).
PRELUDE = """
import json, os, sys
from pathlib import Path
import huggingface_hub
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
ARGS = json.loads(sys.argv[1])
R = {"endpoint": constants.ENDPOINT}
api = HfApi()

def describe(exc):
    response = getattr(exc, "response", None)
    return {
        "type": type(exc).__name__,
        "mro": [cls.__name__ for cls in type(exc).__mro__],
        "status": getattr(response, "status_code", None),
        "message": str(exc),
    }

def expect_error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return describe(exc)
    raise AssertionError(f"{fn.__name__} did not raise")
"""

ClientRunner = Callable[..., dict[str, Any]]


@pytest.fixture
def run_client(hub: LocalHub, tmp_path: Path) -> ClientRunner:
    """Run a client script in a subprocess and return its ``R`` dict."""
    counter = iter(range(1000))

    def run(body: str, env: dict[str, str] | None = None, **args: Any) -> dict[str, Any]:
        script = tmp_path / f"client_{next(counter)}.py"
        script.write_text(PRELUDE + textwrap.dedent(body) + f"\nprint({MARKER!r} + json.dumps(R, default=str))\n")
        proc = subprocess.run(
            [sys.executable, str(script), json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
        )
        assert proc.returncode == 0, f"client failed:\n{proc.stdout}\n{proc.stderr}"
        result = json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith(MARKER))[len(MARKER) :])
        assert result["endpoint"] == hub.url  # the client really talks to the local server
        return result

    return run


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A small model folder: README with YAML front matter, safetensors weights, config."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- cross-encoder\n---\n\n# Tiny model\n")
    weights = {"weight": np.arange(12, dtype=np.float32).reshape(3, 4), "bias": np.ones(3, dtype=np.float32)}
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    return folder


def count(hub: LocalHub, method: str, substring: str) -> int:
    """Number of logged requests with this method whose path contains ``substring``."""
    return sum(1 for m, path in hub.requests if m == method and substring in path)


def test_client_uses_local_endpoint(hub: LocalHub, run_client: ClientRunner) -> None:
    result = run_client(
        """
        R["whoami"] = api.whoami()
        R["bad_whoami"] = expect_error(HfApi(token="hf_wrong").whoami)
        os.environ["HF_ENDPOINT"] = "http://127.0.0.2:9"  # too late: read at import time
        R["endpoint_after_env_change"] = constants.ENDPOINT
        R["url_after_env_change"] = huggingface_hub.hf_hub_url("a/b", "f.txt")
        """
    )
    assert result["whoami"]["name"] == USER
    assert result["whoami"]["type"] == "user"
    assert result["whoami"]["auth"]["accessToken"]["role"] == "write"
    assert result["bad_whoami"]["status"] == 401
    assert "HfHubHTTPError" in result["bad_whoami"]["mro"]
    assert result["endpoint_after_env_change"] == hub.url
    assert result["url_after_env_change"].startswith(hub.url)
    assert count(hub, "GET", "/api/whoami-v2") == 2


def test_create_repo_twice_with_exist_ok(hub: LocalHub, run_client: ClientRunner) -> None:
    result = run_client(
        """
        R["first"] = api.create_repo(ARGS["repo"], exist_ok=True)
        R["second"] = api.create_repo(ARGS["repo"], exist_ok=True)
        R["conflict"] = expect_error(api.create_repo, ARGS["repo"])
        R["exists"] = api.repo_exists(ARGS["repo"])
        R["missing_exists"] = api.repo_exists(f"{ARGS['repo']}-missing")
        """,
        repo=REPO,
    )
    assert result["first"] == result["second"] == f"{hub.url}/{REPO}"
    assert result["conflict"]["status"] == 409
    assert "HfHubHTTPError" in result["conflict"]["mro"]
    assert result["exists"] is True
    assert result["missing_exists"] is False
    assert count(hub, "POST", "/api/repos/create") == 3
    assert [c["message"] for c in hub.commits(REPO)] == ["initial commit"]


def test_upload_folder_then_snapshot_download(hub: LocalHub, run_client: ClientRunner, model_folder: Path, tmp_path: Path) -> None:
    result = run_client(
        """
        api.create_repo(ARGS["repo"])
        info = api.upload_folder(repo_id=ARGS["repo"], folder_path=ARGS["folder"], commit_message="Upload tiny model")
        R["oid"], R["commit_url"] = info.oid, info.commit_url
        R["files"] = api.list_repo_files(ARGS["repo"])
        R["commits"] = [c.commit_id for c in api.list_repo_commits(ARGS["repo"])]
        R["snapshot"] = snapshot_download(ARGS["repo"])  # default cache, inside the empty HF_HOME
        """,
        repo=REPO,
        folder=str(model_folder),
    )
    records = hub.commits(REPO)
    assert len(records) == 2  # "initial commit" made by create_repo, then exactly one upload commit
    upload = records[-1]
    assert upload["oid"] == result["oid"] and len(upload["oid"]) == 40
    assert upload["message"] == "Upload tiny model"
    assert upload["files"] == ["README.md", "config.json", "model.safetensors"]
    assert result["commit_url"] == f"{hub.url}/{REPO}/commit/{result['oid']}"
    assert sorted(result["files"]) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert result["commits"] == [result["oid"], records[0]["oid"]]

    snapshot = Path(result["snapshot"])
    assert snapshot.is_relative_to(tmp_path / "hf_home" / "hub")
    assert snapshot.name == result["oid"]
    for name in ("README.md", "config.json", "model.safetensors"):
        assert (snapshot / name).read_bytes() == (model_folder / name).read_bytes()
    assert count(hub, "GET", f"/{REPO}/resolve/{result['oid']}/model.safetensors") == 1
    assert count(hub, "POST", "/validate-yaml") == 1


def test_reupload_of_unchanged_folder_makes_no_commit(hub: LocalHub, run_client: ClientRunner, model_folder: Path) -> None:
    result = run_client(
        """
        api.create_repo(ARGS["repo"])
        R["first"] = api.upload_folder(repo_id=ARGS["repo"], folder_path=ARGS["folder"]).oid
        R["second"] = api.upload_folder(repo_id=ARGS["repo"], folder_path=ARGS["folder"]).oid
        # create_commit (used by upload_file) skips unchanged files the same way.
        config = Path(ARGS["folder"], "config.json")
        R["third"] = api.upload_file(path_or_fileobj=str(config), path_in_repo="config.json", repo_id=ARGS["repo"]).oid
        config.write_text('{"model_type": "bert", "hidden_size": 8}')
        R["changed"] = api.upload_folder(repo_id=ARGS["repo"], folder_path=ARGS["folder"]).oid
        """,
        repo=REPO,
        folder=str(model_folder),
    )
    assert result["first"] == result["second"] == result["third"]
    records = hub.commits(REPO)
    assert [r["oid"] for r in records[1:]] == [result["first"], result["changed"]]
    assert records[-1]["files"] == ["config.json"]  # only the modified file is re-sent
    assert count(hub, "POST", f"/api/models/{REPO}/commit/") == 2
    assert count(hub, "POST", f"/api/models/{REPO}/preupload/") == 4


def test_create_pr(hub: LocalHub, run_client: ClientRunner, model_folder: Path) -> None:
    result = run_client(
        """
        repo = ARGS["repo"]
        api.create_repo(repo)
        api.upload_folder(repo_id=repo, folder_path=ARGS["folder"])
        Path(ARGS["folder"], "README.md").write_text("---\\nlicense: mit\\n---\\nUpdated\\n")
        # upload_folder (hf_xet installed) opens the PR via /discussions, then commits to refs/pr/N.
        pr = api.upload_folder(repo_id=repo, folder_path=ARGS["folder"], create_pr=True)
        R["pr"] = [pr.pr_url, pr.pr_revision, pr.pr_num]
        # create_commit asks the commit endpoint itself to open the PR (?create_pr=1).
        pr2 = api.upload_file(path_or_fileobj=b"notes", path_in_repo="notes.txt", repo_id=repo, create_pr=True)
        R["pr2"] = [pr2.pr_url, pr2.pr_revision]
        R["main_readme"] = Path(hf_hub_download(repo, "README.md")).read_text()
        R["pr_readme"] = Path(hf_hub_download(repo, "README.md", revision=pr.pr_revision)).read_text()
        R["pr2_files"] = sorted(api.list_repo_files(repo, revision=pr2.pr_revision))
        R["pr_refs"] = [r.ref for r in api.list_repo_refs(repo, include_pull_requests=True).pull_requests]
        """,
        repo=REPO,
        folder=str(model_folder),
    )
    assert result["pr"] == [f"{hub.url}/{REPO}/discussions/1", "refs/pr/1", 1]
    assert result["pr2"] == [f"{hub.url}/{REPO}/discussions/2", "refs/pr/2"]
    assert result["main_readme"].startswith("---\nlicense: apache-2.0")
    assert result["pr_readme"] == "---\nlicense: mit\n---\nUpdated\n"
    assert "notes.txt" in result["pr2_files"]
    assert result["pr_refs"] == ["refs/pr/1", "refs/pr/2"]
    assert [(r["ref"], r["files"]) for r in hub.commits(REPO)[2:]] == [("refs/pr/1", ["README.md"]), ("refs/pr/2", ["notes.txt"])]
    assert count(hub, "POST", f"/api/models/{REPO}/commit/main?create_pr=1") == 1
    assert count(hub, "POST", f"/api/models/{REPO}/commit/refs%2Fpr%2F1") == 1
    assert count(hub, "POST", f"/api/models/{REPO}/discussions") == 1


def test_wrong_token_and_private_repo(hub: LocalHub, run_client: ClientRunner) -> None:
    result = run_client(
        """
        bad = HfApi(token="hf_wrong")
        R["create"] = expect_error(bad.create_repo, ARGS["repo"])
        R["create_exist_ok"] = expect_error(bad.create_repo, ARGS["repo"], exist_ok=True)
        R["exists"] = api.repo_exists(ARGS["repo"])
        private = ARGS["repo"] + "-private"
        api.create_repo(private, private=True)
        api.upload_file(path_or_fileobj=b"secret", path_in_repo="secret.txt", repo_id=private)
        R["anonymous"] = expect_error(hf_hub_download, private, "secret.txt", token=False)
        R["anonymous_info"] = expect_error(api.model_info, private, token=False)
        R["authorized"] = Path(hf_hub_download(private, "secret.txt")).read_text()
        """,
        repo=REPO,
    )
    for key in ("create", "create_exist_ok"):
        assert result[key]["status"] == 401
        assert "HfHubHTTPError" in result[key]["mro"]
        assert INVALID_CREDENTIALS in result[key]["message"]
    assert result["exists"] is False
    assert hub.commits(REPO) == []
    assert result["anonymous"]["type"] == "RepositoryNotFoundError"
    assert result["anonymous_info"]["type"] == "RepositoryNotFoundError"
    assert result["authorized"] == "secret"


# What the client does when the commit POST fails (checked against huggingface_hub 2.4.0):
# - `upload_folder` (with hf_xet installed, the default here) goes through `_upload_pipeline`, which
#   sends the commit with `_send_commit(retry_on_error=True)`, i.e. `http_backoff`: HTTP
#   408/429/500/502/503/504 and transport errors (dropped connection, timeout) are retried up to 5
#   times (sleeping 1, 2, 4, 8, 8 s). A lost *response* would therefore create a duplicate commit.
# - `create_commit` / `upload_file` send the commit once (`get_session().post`): a 5xx raises
#   `HfHubHTTPError`, a dropped connection raises the raw `httpx2.RemoteProtocolError` (not an
#   `HfHubHTTPError`!). Our publish code must retry these itself.
# - `preupload` always goes through `http_backoff` (retried in both paths).
@pytest.mark.parametrize("drop", [False, True], ids=["http-500", "dropped-connection"])
def test_commit_failures_and_client_retries(hub: LocalHub, run_client: ClientRunner, model_folder: Path, drop: bool) -> None:
    fault = {"drop": True} if drop else {"status": 500}
    folder_repo, file_repo = f"{USER}/via-upload-folder", f"{USER}/via-create-commit"
    hub.fail_next("POST", f"/api/models/{folder_repo}/commit/", **fault)
    hub.fail_next("POST", f"/api/models/{file_repo}/preupload/", status=503)
    hub.fail_next("POST", f"/api/models/{file_repo}/commit/", **fault)
    result = run_client(
        """
        api.create_repo(ARGS["folder_repo"])
        api.create_repo(ARGS["file_repo"])
        R["oid"] = api.upload_folder(repo_id=ARGS["folder_repo"], folder_path=ARGS["folder"]).oid
        upload = api.upload_file
        R["error"] = expect_error(upload, path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=ARGS["file_repo"])
        """,
        folder_repo=folder_repo,
        file_repo=file_repo,
        folder=str(model_folder),
    )
    # upload_folder: retried, and exactly one commit landed.
    assert count(hub, "POST", f"/api/models/{folder_repo}/commit/") == 2
    assert hub.commits(folder_repo)[-1]["oid"] == result["oid"]
    assert len(hub.commits(folder_repo)) == 2
    # upload_file: preupload retried after the 503, the commit itself is not retried.
    assert count(hub, "POST", f"/api/models/{file_repo}/preupload/") == 2
    assert count(hub, "POST", f"/api/models/{file_repo}/commit/") == 1
    assert len(hub.commits(file_repo)) == 1
    if drop:
        assert result["error"]["type"] == "RemoteProtocolError"
        assert "TransportError" in result["error"]["mro"]
        assert "HfHubHTTPError" not in result["error"]["mro"]
    else:
        assert result["error"]["status"] == 500
        assert "HfHubHTTPError" in result["error"]["mro"]


def test_model_info_and_missing_entries(hub: LocalHub, run_client: ClientRunner, model_folder: Path) -> None:
    result = run_client(
        """
        from huggingface_hub.errors import EntryNotFoundError
        repo = ARGS["repo"]
        api.create_repo(repo)
        R["oid"] = api.upload_folder(repo_id=repo, folder_path=ARGS["folder"]).oid
        info = api.model_info(repo)
        R["info"] = {"id": info.id, "sha": info.sha, "private": info.private, "modified": info.last_modified}
        R["siblings"] = sorted(s.rfilename for s in info.siblings)
        R["sizes"] = {s.rfilename: s.size for s in api.model_info(repo, files_metadata=True).siblings}
        R["missing"] = expect_error(hf_hub_download, repo, "missing.bin")
        try:
            hf_hub_download(repo, "missing.bin")
        except EntryNotFoundError:
            R["is_entry_not_found"] = True
        R["file_exists"] = [api.file_exists(repo, "config.json"), api.file_exists(repo, "missing.bin")]
        R["bad_revision"] = expect_error(hf_hub_download, repo, "config.json", revision="no-such-branch")
        R["bad_repo"] = expect_error(hf_hub_download, repo + "-missing", "config.json")
        bad_card = b"---\\nlicense: [mit\\n---\\n"
        R["invalid_yaml"] = expect_error(api.upload_file, path_or_fileobj=bad_card, path_in_repo="README.md", repo_id=repo)
        """,
        repo=REPO,
        folder=str(model_folder),
    )
    assert result["info"]["id"] == REPO
    assert result["info"]["sha"] == result["oid"]
    assert result["info"]["private"] is False
    assert result["info"]["modified"] is not None
    assert result["siblings"] == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert result["sizes"]["model.safetensors"] == (model_folder / "model.safetensors").stat().st_size
    assert result["missing"]["type"] == "RemoteEntryNotFoundError"
    assert result["missing"]["status"] == 404
    assert result["is_entry_not_found"] is True
    assert result["file_exists"] == [True, False]
    assert result["bad_revision"]["type"] == "RevisionNotFoundError"
    assert result["bad_repo"]["type"] == "RepositoryNotFoundError"
    assert result["invalid_yaml"]["type"] == "ValueError"
    assert "Invalid metadata in README.md" in result["invalid_yaml"]["message"]
    assert len(hub.commits(REPO)) == 2


def test_branches_tree_and_delete(hub: LocalHub, run_client: ClientRunner, model_folder: Path) -> None:
    (model_folder / "sub" / "deep").mkdir(parents=True)
    (model_folder / "sub" / "deep" / "notes.txt").write_text("deep notes")
    result = run_client(
        """
        from huggingface_hub import RepoFile
        repo = ARGS["repo"]
        api.create_repo(repo)
        api.upload_folder(repo_id=repo, folder_path=ARGS["folder"])
        api.create_branch(repo, branch="dev")
        api.create_branch(repo, branch="dev", exist_ok=True)
        R["branch_conflict"] = expect_error(api.create_branch, repo, branch="dev")
        api.upload_file(path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id=repo, revision="dev")
        R["dev_file"] = Path(hf_hub_download(repo, "dev.txt", revision="dev")).read_text()
        R["main_files"] = sorted(api.list_repo_files(repo))
        R["dev_files"] = sorted(api.list_repo_files(repo, revision="dev"))
        entry = lambda e: ("file" if isinstance(e, RepoFile) else "dir", e.path)
        R["top"] = sorted(entry(e) for e in api.list_repo_tree(repo))
        R["recursive"] = sorted(entry(e) for e in api.list_repo_tree(repo, recursive=True))
        R["sub"] = sorted(entry(e) for e in api.list_repo_tree(repo, path_in_repo="sub"))
        R["branches"] = sorted(b.name for b in api.list_repo_refs(repo).branches)
        R["dev_commits"] = [c.title for c in api.list_repo_commits(repo, revision="dev")]
        api.delete_repo(repo)
        R["exists_after_delete"] = api.repo_exists(repo)
        api.delete_repo(repo, missing_ok=True)
        R["delete_missing"] = expect_error(api.delete_repo, repo)
        """,
        repo=REPO,
        folder=str(model_folder),
    )
    assert result["branch_conflict"]["status"] == 409
    assert result["dev_file"] == "dev only"
    assert "dev.txt" not in result["main_files"]
    assert "dev.txt" in result["dev_files"] and "sub/deep/notes.txt" in result["dev_files"]
    assert ["dir", "sub"] in result["top"] and ["file", "sub/deep/notes.txt"] not in result["top"]
    assert {("dir", "sub"), ("dir", "sub/deep"), ("file", "sub/deep/notes.txt")} <= {tuple(e) for e in result["recursive"]}
    assert result["sub"] == [["dir", "sub/deep"]]
    assert result["branches"] == ["dev", "main"]
    assert result["dev_commits"] == ["Upload dev.txt with huggingface_hub", "Upload folder using huggingface_hub", "initial commit"]
    assert result["exists_after_delete"] is False
    assert result["delete_missing"]["type"] == "RepositoryNotFoundError"
    assert hub.commits(REPO) == []


def test_transformers_autoconfig_from_local_hub(hub: LocalHub, run_client: ClientRunner, tmp_path: Path) -> None:
    run_client(
        """
        from transformers import BertConfig
        config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
        config.save_pretrained(ARGS["folder"])
        api.create_repo(ARGS["repo"])
        api.upload_folder(repo_id=ARGS["repo"], folder_path=ARGS["folder"])
        """,
        repo=REPO,
        folder=str(tmp_path / "bert"),
    )
    fresh_home = tmp_path / "fresh_hf_home"
    result = run_client(
        """
        from transformers import AutoConfig
        config = AutoConfig.from_pretrained(ARGS["repo"])
        R["config"] = [type(config).__name__, config.model_type, config.hidden_size, config.vocab_size]
        R["cache"] = constants.HF_HUB_CACHE
        """,
        env={"HF_HOME": str(fresh_home)},
        repo=REPO,
    )
    assert result["config"] == ["BertConfig", "bert", 32, 99]
    assert Path(result["cache"]) == fresh_home / "hub"
    assert list((fresh_home / "hub").glob("models--tester--tiny-model/snapshots/*/config.json"))
    assert count(hub, "GET", f"/{REPO}/resolve/") >= 1


# --------------------------------------------------------------------------- raw HTTP protocol


def _http(hub: LocalHub, method: str, path: str, body: bytes | dict | None = None, headers: dict[str, str] | None = None):
    """Send one request with urllib (no proxy); return ``(status, headers, body bytes)``."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(hub.url + path, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_raw_protocol(tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with LocalHub(tmp_path / "hub", token=TOKEN) as hub:
        status, headers, body = _http(hub, "GET", "/api/nothing-here")
        assert status == 404 and "Route not found" in json.loads(body)["error"]

        status, headers, body = _http(hub, "POST", "/api/repos/create", {"name": "raw"}, {"Authorization": "Bearer nope"})
        assert status == 401 and json.loads(body) == {"error": INVALID_CREDENTIALS}
        assert headers["X-Error-Message"] == INVALID_CREDENTIALS
        assert _http(hub, "POST", "/api/repos/create", {"name": "raw"})[0] == 401  # missing token
        status, _, body = _http(hub, "POST", "/api/repos/create", {"name": "raw"}, auth)
        assert status == 200 and json.loads(body) == {"url": f"{hub.url}/tester/raw", "name": "tester/raw", "id": "tester/raw"}
        status, _, body = _http(hub, "POST", "/api/repos/create", {"name": "raw"}, auth)
        assert status == 409 and json.loads(body)["url"] == f"{hub.url}/tester/raw"

        content = b"0123456789"
        preupload = {"files": [{"path": "data.bin", "sample": "", "size": 10}]}
        status, _, body = _http(hub, "POST", "/api/models/tester/raw/preupload/main", preupload, auth)
        assert json.loads(body)["files"] == [{"path": "data.bin", "uploadMode": "regular", "shouldIgnore": False}]
        lines = [
            {"key": "header", "value": {"summary": "add data", "description": ""}},
            {"key": "file", "value": {"path": "data.bin", "content": "MDEyMzQ1Njc4OQ==", "encoding": "base64"}},
        ]
        ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        status, _, body = _http(hub, "POST", "/api/models/tester/raw/commit/main", ndjson, {**auth, "Content-Type": "application/x-ndjson"})
        oid = json.loads(body)["commitOid"]
        assert status == 200 and json.loads(body)["commitUrl"] == f"{hub.url}/tester/raw/commit/{oid}"
        status, _, body = _http(hub, "POST", "/api/models/tester/raw/preupload/main", preupload, auth)
        assert json.loads(body)["files"][0]["oid"] == git_blob_sha1(content)

        status, headers, body = _http(hub, "HEAD", "/tester/raw/resolve/main/data.bin")
        assert status == 200 and body == b""
        assert headers["X-Repo-Commit"] == oid
        assert headers["ETag"] == f'"{git_blob_sha1(content)}"'
        assert headers["Content-Length"] == "10"
        assert _http(hub, "GET", f"/tester/raw/resolve/{oid}/data.bin")[2] == content
        status, headers, body = _http(hub, "GET", "/tester/raw/resolve/main/data.bin", headers={"Range": "bytes=2-5"})
        assert (status, body, headers["Content-Range"]) == (206, b"2345", "bytes 2-5/10")
        assert _http(hub, "GET", "/tester/raw/resolve/main/data.bin", headers={"Range": "bytes=7-"})[2] == b"789"
        assert _http(hub, "GET", "/tester/raw/resolve/main/data.bin", headers={"Range": "bytes=-3"})[2] == b"789"
        assert _http(hub, "GET", "/tester/raw/resolve/main/data.bin", headers={"Range": "bytes=20-"})[0] == 416

        for path, code in [
            ("/tester/raw/resolve/main/missing.bin", "EntryNotFound"),
            ("/tester/raw/resolve/nope/data.bin", "RevisionNotFound"),
            ("/tester/nope/resolve/main/data.bin", "RepoNotFound"),
        ]:
            status, headers, _ = _http(hub, "GET", path)
            assert (status, headers["X-Error-Code"]) == (404, code)
        assert _http(hub, "HEAD", "/tester/raw/resolve/main/missing.bin")[1]["X-Repo-Commit"] == oid

        stale = [{"key": "header", "value": {"summary": "stale", "parentCommit": "0" * 40}}]
        status, _, _ = _http(hub, "POST", "/api/models/tester/raw/commit/main", json.dumps(stale[0]).encode(), auth)
        assert status == 412
        delete = [stale[0] | {"value": {"summary": "rm"}}, {"key": "deletedFile", "value": {"path": "missing.bin"}}]
        status, headers, _ = _http(
            hub, "POST", "/api/models/tester/raw/commit/main", b"\n".join(json.dumps(x).encode() for x in delete), auth
        )
        assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")

        assert _http(hub, "POST", "/api/validate-yaml", {"content": "---\na: [1\n---\n"})[0] == 400
        assert _http(hub, "POST", "/api/validate-yaml", {"content": "---\na: 1\n---\ntext"})[2] == b"{}"

        hub.fail_next("GET", "/resolve/main/data.bin", drop=True)
        with pytest.raises((http.client.RemoteDisconnected, urllib.error.URLError, ConnectionError)):
            _http(hub, "GET", "/tester/raw/resolve/main/data.bin")
        hub.fail_next("GET", "/resolve/", status=503, count=2)
        assert [_http(hub, "GET", "/tester/raw/resolve/main/data.bin")[0] for _ in range(3)] == [503, 503, 200]
        with pytest.raises(ValueError):
            hub.fail_next("GET", "/", status=500, drop=True)

        assert ("GET", "/api/nothing-here") in hub.requests
        assert [c["message"] for c in hub.commits("tester/raw")] == ["initial commit", "add data"]
    with pytest.raises(RuntimeError):
        _ = hub.url
