"""A small Hugging Face Hub-compatible HTTP server for offline tests (stdlib only).

It implements the subset of the Hub API that ``huggingface_hub`` 2.4 uses to create repos,
upload folders (every file is a "regular" git blob sent base64-encoded in the NDJSON commit
payload, so no LFS/Xet transfer ever happens), list and download files, manage branches and
pull requests. Blobs are stored content-addressed on disk (``root/blobs/<git sha1>``); repos,
refs and per-commit file trees live in memory. Like the real Hub, ``create_repo`` makes an
"initial commit" (``.gitattributes``) and the server accepts commits that change nothing: it is
the client that skips unchanged files, using the ``oid`` returned by ``preupload``.

Not implemented: LFS/Xet uploads, ``.gitignore`` filtering, pagination, tags, gated repos.

Usage::

    with LocalHub(tmp_path / "hub", token="hf_test") as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test", ...}
        hub.fail_next("POST", "/commit/", status=500)  # next commit answers HTTP 500
        ...
        assert hub.commits("tester/my-model")[-1]["message"] == "Upload folder"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
INITIAL_GITATTRIBUTES = b"".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n".encode() for ext in ("bin", "h5", "onnx", "pt", "pth", "safetensors", "zip")
)


def git_blob_sha1(data: bytes) -> str:
    """Return the git blob oid of ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubError(Exception):
    """An error answered as JSON ``{"error": message}`` with the Hub's ``X-Error-*`` headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})


@dataclass
class Commit:
    """One commit: its full file tree (path -> blob sha1) and what it changed."""

    oid: str
    parent: str | None
    ref: str
    message: str
    description: str
    tree: dict[str, str]
    files: list[str]
    deleted: list[str]
    date: str = field(default_factory=_now)

    def record(self) -> dict[str, Any]:
        """Return a JSON-able copy, as exposed by :meth:`LocalHub.commits`."""
        return {**asdict(self), "tree": sorted(self.tree)}


@dataclass
class Repo:
    """In-memory state of one repository."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: str = field(default_factory=_now)
    refs: dict[str, str] = field(default_factory=dict)  # "main" or "refs/pr/N" -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)  # insertion-ordered
    discussions: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Fault:
    method: str
    path_substring: str
    status: int | None
    drop: bool
    remaining: int


@dataclass
class _Request:
    method: str
    path: str
    segments: list[str]
    query: dict[str, list[str]]
    headers: Any
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err

    def flag(self, name: str) -> bool:
        return self.query.get(name, [""])[-1].lower() in ("1", "true", "yes")


@dataclass
class _Response:
    status: int = 200
    payload: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class LocalHub:
    """A Hub-compatible server bound to ``127.0.0.1`` on a free port, served in a daemon thread."""

    def __init__(self, root: Path, token: str, user: str = "tester") -> None:
        self.root = Path(root)
        self.token = token
        self.user = user
        self._blobs = self.root / "blobs"
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._sizes: dict[str, int] = {}
        self._faults: list[_Fault] = []
        self._requests: list[tuple[str, str]] = []
        self._counter = 0
        self._server: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public API

    def start(self) -> LocalHub:
        """Bind a free port on 127.0.0.1 and serve requests in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("LocalHub already started")
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._server = _HubHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        logger.info("LocalHub serving %s at %s", self.root, self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (use it as ``HF_ENDPOINT``)."""
        if self._server is None:
            raise RuntimeError("LocalHub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Snapshot of every request received, as ``(method, raw path with query)``."""
        with self._lock:
            return list(self._requests)

    def commits(self, repo_id: str, repo_type: str = "model") -> list[dict[str, Any]]:
        """Commit records of a repo (all refs, oldest first); ``[]`` if the repo does not exist."""
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            return [c.record() for c in repo.commits.values()] if repo else []

    def fail_next(self, method: str, path_substring: str, status: int | None = None, drop: bool = False, count: int = 1) -> None:
        """Make the next ``count`` requests matching ``method`` and ``path_substring`` fail.

        The failing request is either answered with ``status`` (JSON error body) or, with
        ``drop=True``, its body is read and the connection is closed without any answer.
        Injected failures happen before any processing: the request has no effect.
        """
        if (status is None) == (not drop):
            raise ValueError("pass exactly one of `status` or `drop=True`")
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_substring, status, drop, count))

    # ------------------------------------------------------------------ storage

    def _store_blob(self, data: bytes) -> str:
        oid = git_blob_sha1(data)
        path = self._blobs / oid
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        with self._lock:
            self._sizes[oid] = len(data)
        return oid

    def _commit(
        self,
        repo: Repo,
        ref: str,
        base: str | None,
        message: str,
        description: str,
        additions: dict[str, str],
        deletions: list[tuple[str, bool]],
    ) -> Commit:
        """Create a commit on ``ref`` on top of commit ``base`` (caller holds the lock)."""
        if base is not None and base not in repo.commits:
            raise HubError(400, f"Invalid parent commit: {base}")
        tree = dict(repo.commits[base].tree) if base else {}
        deleted: list[str] = []
        for path, is_folder in deletions:
            prefix = path.rstrip("/") + "/"
            hits = [p for p in tree if p.startswith(prefix)] if is_folder else [p for p in (path,) if p in tree]
            if not hits:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            for hit in hits:
                del tree[hit]
            deleted.extend(hits)
        tree.update(additions)
        self._counter += 1
        seed = [base, sorted(tree.items()), message, description, self._counter, time.time_ns()]
        oid = hashlib.sha1(json.dumps(seed).encode()).hexdigest()
        commit = Commit(oid, base, ref, message, description, tree, files=sorted(additions), deleted=sorted(deleted))
        repo.commits[commit.oid] = commit
        repo.refs[ref] = commit.oid
        return commit

    def _resolve(self, repo: Repo, revision: str) -> Commit:
        """Resolve a branch, ``refs/heads/X``, ``refs/pr/N`` or commit oid to a commit."""
        name = revision.removeprefix("refs/heads/")
        oid = repo.refs.get(name) or (revision if revision in repo.commits else None)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIXES.get(repo.repo_type, '')}{repo.repo_id}"

    # ------------------------------------------------------------------ request handling

    def _authorized(self, req: _Request) -> bool:
        scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.token.encode())

    def _require_auth(self, req: _Request) -> None:
        if not self._authorized(req):
            raise HubError(401, INVALID_CREDENTIALS, headers={"X-Error-Message": INVALID_CREDENTIALS})

    def _repo(self, req: _Request, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        if write:
            self._require_auth(req)
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized(req)):
            # The real Hub answers 401 for private repos so as not to leak their existence.
            status = 404 if repo is None else 401
            raise HubError(status, "Repository not found", "RepoNotFound")
        return repo

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            self._requests.append((method, path))
            for fault in self._faults:
                if fault.method == method and fault.path_substring in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _route(self, req: _Request) -> _Response:
        segs, method = req.segments, req.method
        if segs[:1] == ["api"] and len(segs) >= 2:
            head = segs[1]
            if head == "whoami-v2" and method == "GET":
                return self._whoami(req)
            if head == "agent-harnesses" and method == "GET":
                return _Response(payload={"standardEnvVars": [], "harnesses": {}})
            if head == "validate-yaml" and method == "POST":
                return self._validate_yaml(req)
            if segs[1:] == ["repos", "create"] and method == "POST":
                return self._create_repo(req)
            if segs[1:] == ["repos", "delete"] and method == "DELETE":
                return self._delete_repo(req)
            if head in REPO_TYPES and len(segs) >= 4:
                with self._lock:
                    return self._repo_api(req, REPO_TYPES[head], f"{segs[2]}/{segs[3]}", segs[4:])
        elif "resolve" in segs[1:-2] and method in ("GET", "HEAD"):
            return self._resolve_file(req)
        raise HubError(404, f"Route not found: {method} {urlsplit(req.path).path}")

    def _repo_api(self, req: _Request, repo_type: str, repo_id: str, rest: list[str]) -> _Response:
        method, action = req.method, (rest[0] if rest else "")
        if method == "GET" and action in ("", "revision"):
            revision = rest[1] if action == "revision" and len(rest) > 1 else "main"
            return self._repo_info(req, self._repo(req, repo_type, repo_id), revision)
        if method == "GET" and action == "tree" and len(rest) >= 2:
            repo = self._repo(req, repo_type, repo_id)
            return self._tree(repo, rest[1], "/".join(rest[2:]), req.flag("recursive"))
        if method == "GET" and action == "commits" and len(rest) >= 2:
            return self._list_commits(self._repo(req, repo_type, repo_id), rest[1])
        if method == "GET" and action == "refs":
            return self._refs(self._repo(req, repo_type, repo_id), req.flag("include_prs"))
        if method == "POST" and action == "preupload" and len(rest) >= 2:
            return self._preupload(req, self._repo(req, repo_type, repo_id, write=True), rest[1])
        if method == "POST" and action == "commit" and len(rest) >= 2:
            return self._commit_api(req, self._repo(req, repo_type, repo_id, write=True), rest[1])
        if method == "POST" and action == "branch" and len(rest) >= 2:
            return self._branch(req, self._repo(req, repo_type, repo_id, write=True), rest[1])
        if action == "discussions" and method == "POST" and len(rest) == 1:
            return self._create_discussion(req, self._repo(req, repo_type, repo_id, write=True))
        if action == "discussions" and method == "GET" and len(rest) == 2 and rest[1].isdigit():
            return self._discussion(self._repo(req, repo_type, repo_id), int(rest[1]))
        raise HubError(404, f"Route not found: {method} {urlsplit(req.path).path}")

    # ------------------------------------------------------------------ endpoints

    def _whoami(self, req: _Request) -> _Response:
        self._require_auth(req)
        auth = {"type": "access_token", "accessToken": {"displayName": "local-test-token", "role": "write", "createdAt": _now()}}
        user = {"type": "user", "id": hashlib.sha1(self.user.encode()).hexdigest()[:24], "name": self.user, "fullname": self.user}
        return _Response(payload={**user, "email": f"{self.user}@localhost", "orgs": [], "auth": auth})

    def _validate_yaml(self, req: _Request) -> _Response:
        content = str(req.json().get("content", ""))
        match = re.match(r"^---\r?\n(.*?)\r?\n---\s*(\r?\n|$)", content, flags=re.DOTALL)
        if match is None:
            return _Response(payload={})
        try:
            import yaml  # optional: only used if available
        except ImportError:
            return _Response(payload={})
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            message = f"Invalid YAML in README.md metadata: {err}"
        else:
            if data is None or isinstance(data, dict):
                return _Response(payload={})
            message = "README.md metadata must be a YAML mapping"
        payload = {"error": message, "errors": [{"message": message}]}
        return _Response(400, payload, headers={"X-Error-Message": "Invalid README.md metadata"})

    def _create_repo(self, req: _Request) -> _Response:
        self._require_auth(req)
        body = req.json()
        name = str(body.get("name") or "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise HubError(400, f"Invalid repo name: {name!r}")
        repo_id = f"{body.get('organization') or self.user}/{name}"
        repo_type = body.get("type") or "model"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        with self._lock:
            existing = self._repos.get((repo_type, repo_id))
            if existing is not None:
                error = f"You already created this {repo_type} repo"
                return _Response(409, {"error": error, "url": self._repo_url(existing)})
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private)
            self._repos[(repo_type, repo_id)] = repo
            gitattributes = {".gitattributes": self._store_blob(INITIAL_GITATTRIBUTES)}
            self._commit(repo, "main", None, "initial commit", "", gitattributes, [])
            return _Response(payload={"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, req: _Request) -> _Response:
        self._require_auth(req)
        body = req.json()
        repo_id = f"{body.get('organization') or self.user}/{body.get('name')}"
        with self._lock:
            if self._repos.pop((body.get("type") or "model", repo_id), None) is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
        return _Response(payload={})

    def _repo_info(self, req: _Request, repo: Repo, revision: str) -> _Response:
        commit = self._resolve(repo, revision)
        blobs = req.flag("blobs")
        siblings = [
            {"rfilename": path, **({"size": self._sizes.get(oid), "blobId": oid} if blobs else {})}
            for path, oid in sorted(commit.tree.items())
        ]
        ids = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "modelId": repo.repo_id}
        state = {"private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": []}
        dates = {"sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at}
        storage = sum(self._sizes.get(oid, 0) for oid in set(commit.tree.values()))
        payload = {**ids, "author": repo.repo_id.split("/")[0], **dates, **state, "siblings": siblings, "usedStorage": storage}
        return _Response(payload=payload)

    def _tree(self, repo: Repo, revision: str, path: str, recursive: bool) -> _Response:
        tree = self._resolve(repo, revision).tree
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        files = {p: oid for p, oid in tree.items() if p.startswith(prefix)}
        if prefix and not files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        dirs: set[str] = set()
        entries = []
        for file_path, oid in sorted(files.items()):
            parts = file_path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                dirs.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "oid": oid, "size": self._sizes.get(oid, 0), "path": file_path})
        folders = [{"type": "directory", "oid": self._tree_oid(tree, d), "size": 0, "path": d} for d in sorted(dirs)]
        return _Response(payload=folders + entries)

    @staticmethod
    def _tree_oid(tree: dict[str, str], folder: str) -> str:
        items = sorted((p, oid) for p, oid in tree.items() if p.startswith(folder + "/"))
        return hashlib.sha1(json.dumps(items).encode()).hexdigest()

    def _list_commits(self, repo: Repo, revision: str) -> _Response:
        commit: Commit | None = self._resolve(repo, revision)
        items = []
        while commit is not None:
            message = commit.message + (f"\n\n{commit.description}" if commit.description else "")
            authors = [{"user": self.user, "avatar": None}]
            items.append({"id": commit.oid, "title": commit.message, "message": message, "authors": authors, "date": commit.date})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return _Response(payload=items)

    def _refs(self, repo: Repo, include_prs: bool) -> _Response:
        def ref_info(name: str, oid: str) -> dict[str, str]:
            full = name if name.startswith("refs/") else f"refs/heads/{name}"
            return {"name": name, "ref": full, "targetCommit": oid}

        branches = [ref_info(n, o) for n, o in repo.refs.items() if not n.startswith("refs/")]
        payload: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
        if include_prs:
            payload["pullRequests"] = [ref_info(n, o) for n, o in repo.refs.items() if n.startswith("refs/pr/")]
        return _Response(payload=payload)

    def _preupload(self, req: _Request, repo: Repo, revision: str) -> _Response:
        commit = self._resolve(repo, revision)
        files = []
        for item in req.json().get("files", []):
            path = str(item["path"])
            info: dict[str, Any] = {"path": path, "uploadMode": "regular", "shouldIgnore": False}
            if path in commit.tree:
                info["oid"] = commit.tree[path]  # lets the client drop unchanged files
            files.append(info)
        return _Response(payload={"files": files, "commitOid": commit.oid})

    def _commit_api(self, req: _Request, repo: Repo, revision: str) -> _Response:
        try:
            lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        except ValueError as err:
            raise HubError(400, f"Invalid NDJSON payload: {err}") from err
        header = next((line.get("value") or {} for line in lines if line.get("key") == "header"), None)
        if not header or not header.get("summary"):
            raise HubError(400, "Missing commit header with a non-empty summary")
        additions: dict[str, str] = {}
        deletions: list[tuple[str, bool]] = []
        for line in lines:
            key, value = line.get("key"), line.get("value") or {}
            if key == "file":
                content = value.get("content", "")
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                additions[value["path"]] = self._store_blob(data)
            elif key in ("deletedFile", "deletedFolder"):
                deletions.append((value["path"], key == "deletedFolder"))
            elif key != "header":
                raise HubError(400, f"Unsupported commit operation: {key!r} (this server never asks for LFS uploads)")
        name, parent = revision.removeprefix("refs/heads/"), header.get("parentCommit")
        if name not in repo.refs:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        summary, description, create_pr = header["summary"], header.get("description") or "", req.flag("create_pr")
        if not create_pr and parent and parent != repo.refs[name]:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        base = parent or repo.refs[name]
        if create_pr:  # like the Hub: the PR (from `parentCommit` if given) only exists if the commit succeeds
            name = f"refs/pr/{len(repo.discussions) + 1}"
        commit = self._commit(repo, name, base, summary, description, additions, deletions)
        payload = {"success": True, "commitOid": commit.oid, "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}"}
        if create_pr:
            num = self._new_discussion(repo, summary, description, is_pr=True)
            payload["pullRequestUrl"] = f"{self._repo_url(repo)}/discussions/{num}"
        return _Response(payload=payload)

    def _branch(self, req: _Request, repo: Repo, branch: str) -> _Response:
        if branch in repo.refs:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = (req.json() if req.body else {}).get("startingPoint") or "main"
        repo.refs[branch] = self._resolve(repo, start).oid
        return _Response(payload={})

    def _new_discussion(self, repo: Repo, title: str, description: str, is_pr: bool, base: str | None = None) -> int:
        """Open discussion number N; a PR also gets the ``refs/pr/N`` ref (at ``base`` if given)."""
        num = len(repo.discussions) + 1
        repo.discussions[num] = {"title": title, "description": description, "isPullRequest": is_pr, "at": _now()}
        if is_pr and base is not None:
            repo.refs[f"refs/pr/{num}"] = base
        return num

    def _create_discussion(self, req: _Request, repo: Repo) -> _Response:
        body = req.json()
        is_pr = bool(body.get("pullRequest"))
        num = self._new_discussion(repo, body.get("title", ""), body.get("description", ""), is_pr, repo.refs["main"])
        return _Response(payload={"num": num, "pullRequest": is_pr, "url": f"{self._repo_url(repo)}/discussions/{num}"})

    def _discussion(self, repo: Repo, num: int) -> _Response:
        info = repo.discussions.get(num)
        if info is None:
            raise HubError(404, f"Discussion {num} not found")
        payload = {"num": num, "title": info["title"], "isPullRequest": info["isPullRequest"], "createdAt": info["at"]}
        payload |= {"status": "draft" if info["isPullRequest"] else "open", "author": {"name": self.user}, "events": []}
        payload |= {"repo": {"name": repo.repo_id, "type": repo.repo_type}, "changes": {"base": "refs/heads/main"}}
        return _Response(payload={**payload, "filesWithConflicts": [], "diff": ""})

    def _resolve_file(self, req: _Request) -> _Response:
        segs = req.segments
        index = segs.index("resolve", 1)
        typed = segs[0] in ("datasets", "spaces", "kernels") and index > 2
        repo_type = REPO_TYPES[segs[0]] if typed else "model"
        repo_id = "/".join(segs[1 if typed else 0 : index])
        revision, filename = segs[index + 1], "/".join(segs[index + 2 :])
        with self._lock:
            commit = self._resolve(self._repo(req, repo_type, repo_id), revision)
        if filename not in commit.tree:
            headers = {"X-Repo-Commit": commit.oid}
            raise HubError(404, f"Entry not found: {filename}", "EntryNotFound", headers)
        oid = commit.tree[filename]
        size = self._sizes.get(oid) or (self._blobs / oid).stat().st_size
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{oid}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        start, end, status = 0, size - 1, 200
        range_header = req.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", range_header)
            if match is None or not any(match.groups()):
                raise HubError(416, f"Invalid range: {range_header}", headers={"Content-Range": f"bytes */{size}"})
            first, last = match.groups()
            start, end = (int(first), min(int(last or size - 1), size - 1)) if first else (max(size - int(last), 0), size - 1)
            if start >= size or start > end:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if req.method == "HEAD":
            headers["Content-Length"] = str(end - start + 1)
            return _Response(status, raw=b"", headers=headers)
        with open(self._blobs / oid, "rb") as blob:
            blob.seek(start)
            return _Response(status, raw=blob.read(end - start + 1), headers=headers)


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    hub: LocalHub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HubHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _dispatch(self) -> None:
        hub = self.server.hub
        method = self.command.upper()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the client always sends it
        fault = hub._take_fault(method, self.path)
        if fault is not None and fault.drop:
            logger.info("Dropping connection for %s %s (injected)", method, self.path)
            self.close_connection = True
            return
        if fault is not None:
            logger.info("Answering %s to %s %s (injected)", fault.status, method, self.path)
            status = fault.status or 500
            response = _Response(status, {"error": f"Injected failure (HTTP {status})"})
        else:
            split = urlsplit(self.path)
            segments = [unquote(s) for s in split.path.split("/") if s]
            req = _Request(method, self.path, segments, parse_qs(split.query), self.headers, body)
            try:
                response = hub._route(req)
            except HubError as err:
                headers = {"X-Error-Message": err.message, **err.headers}
                if err.code:
                    headers["X-Error-Code"] = err.code
                response = _Response(err.status, {"error": err.message}, headers=headers)
            except Exception as err:  # pragma: no cover - a bug in this server
                logger.exception("LocalHub failed on %s %s", method, self.path)
                response = _Response(500, {"error": f"Internal error: {err!r}"})
        self._send(method, response)

    def _send(self, method: str, response: _Response) -> None:
        if response.raw is not None:
            data = response.raw
        else:
            data = json.dumps(response.payload).encode()
            response.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        self.send_response(response.status)
        response.headers.setdefault("Content-Length", str(len(data)))
        for name, value in response.headers.items():
            # Header values must be single-line latin-1 (error messages may contain anything).
            value = " ".join(str(value).split()).encode("latin-1", "replace").decode("latin-1")
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)


def main() -> None:
    """Serve a LocalHub in the foreground (used by the GitHub workflow): prints its URL, runs until killed."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(description="Local Hub-compatible test server on 127.0.0.1")
    parser.add_argument("--root", required=True, help="folder for the stored blobs")
    parser.add_argument("--token-env", default="HF_TOKEN", help="environment variable holding the accepted token")
    parser.add_argument("--url-file", default=None, help="also write the URL to this file")
    args = parser.parse_args()
    token = os.environ.get(args.token_env)
    if not token:
        sys.exit(f"set {args.token_env} to the token the server should accept")
    hub = LocalHub(Path(args.root), token=token).start()
    if args.url_file:
        Path(args.url_file).write_text(hub.url + "\n")
    sys.stdout.write(hub.url + "\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
