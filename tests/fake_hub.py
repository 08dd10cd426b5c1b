"""A small Hugging Face Hub on 127.0.0.1, for the real huggingface_hub client (2.x) to talk to.

It speaks the endpoints that client calls for create_repo, create_branch, the README metadata
check, preupload / LFS batch / LFS PUT / NDJSON commit (the non-Xet upload path), model_info,
list_repo_refs, list_repo_tree and HEAD/GET resolve, with the headers the client reads
(X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size, X-Error-Code). Files ending in
``.safetensors`` are LFS files, as on the Hub. Commits, branches and blobs live in memory.

``tamper`` swaps the bytes served for a file while the advertised hashes stay, like a corrupted
mirror; ``requests`` records every (method, path) received.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml
from huggingface_hub import constants

LFS_SUFFIXES = (".safetensors",)
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """One file of a commit: where its bytes are and what the Hub says about them."""

    key: str  # into FakeHub.blobs
    size: int
    oid: str  # git blob sha1 (of the LFS pointer for LFS files)
    sha256: str | None  # LFS files only


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, StoredFile]] = field(default_factory=dict)


class FakeHub:
    """In-memory repos behind a threaded HTTP server; ``endpoint`` is its base URL."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._counter = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        # a short poll: shutdown() waits up to one poll interval (0.5 s by default) per test
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # state ---------------------------------------------------------------------------------
    def resolve(self, repo_id: str, revision: str) -> tuple[str, dict[str, StoredFile]] | None:
        """A branch name or a commit sha → (commit sha, files), or None."""
        repo = self.repos[repo_id]
        commit = repo.branches.get(revision, revision)
        return (commit, repo.commits[commit]) if commit in repo.commits else None

    def tamper(self, repo_id: str, path: str, data: bytes, revision: str = "main") -> None:
        """Serve ``data`` for ``path`` at ``revision`` while every advertised hash stays."""
        resolved = self.resolve(repo_id, revision)
        assert resolved is not None, f"{repo_id}@{revision} does not exist"
        self.blobs[resolved[1][path].key] = data

    def store(self, path: str, data: bytes) -> StoredFile:
        if path.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            self.blobs[sha] = data
            return StoredFile(sha, len(data), git_blob_sha1(_pointer(sha, len(data))), sha)
        oid = git_blob_sha1(data)
        self.blobs[oid] = data
        return StoredFile(oid, len(data), oid, None)

    def commit(self, repo_id: str, branch: str, files: dict[str, StoredFile], title: str) -> str:
        repo = self.repos[repo_id]
        self._counter += 1
        parent = repo.branches.get(branch, "")
        tree = sorted((p, f.oid) for p, f in files.items())
        sha = hashlib.sha1(json.dumps([parent, title, self._counter, tree]).encode()).hexdigest()
        repo.commits[sha] = dict(files)
        repo.branches[branch] = sha
        return sha


def _pointer(sha: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n".encode()


class ReplyError(Exception):
    """An error answer: status, X-Error-Code, message and further JSON fields."""

    def __init__(self, status: int, code: str | None, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in separate writes: without TCP_NODELAY each keep-alive
        # response waits on the client's delayed ACK (~40 ms)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._dispatch()

        def do_HEAD(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def do_PUT(self) -> None:
            self._dispatch()

        # plumbing --------------------------------------------------------------------------
        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            query = parse_qs(url.query)
            body = self._body()
            with hub.lock:
                hub.requests.append((self.command, url.path))
                try:
                    status, headers, payload = self._route(parts, query, body)
                except ReplyError as answer:
                    doc = {"error": answer.message, **answer.extra}
                    status, payload = answer.status, json.dumps(doc).encode()
                    headers = {"Content-Type": "application/json"}
                    if answer.code:
                        headers["X-Error-Code"] = answer.code
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _json(self, doc: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
            return status, {"Content-Type": "application/json"}, json.dumps(doc).encode()

        def _repo(self, repo_id: str) -> Repo:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and "authorization" not in self.headers):
                raise ReplyError(404, "RepoNotFound", f"Repository {repo_id} not found")
            return repo

        def _resolved(self, repo_id: str, revision: str) -> tuple[str, dict[str, StoredFile]]:
            self._repo(repo_id)
            resolved = hub.resolve(repo_id, revision)
            if resolved is None:
                raise ReplyError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return resolved

        def _writer(self) -> None:
            if "authorization" not in self.headers:
                raise ReplyError(401, None, "Invalid credentials in Authorization header")

        # routes ----------------------------------------------------------------------------
        def _route(self, p: list[str], query: dict[str, list[str]], body: bytes):
            verb = self.command
            if p[:3] == ["api", "repos", "create"] and verb == "POST":
                return self._create_repo(json.loads(body))
            if p[:2] == ["api", "validate-yaml"] and verb == "POST":
                return self._validate_yaml(json.loads(body))
            if p[:2] == ["api", "models"] and len(p) >= 4:
                repo_id, rest = f"{p[2]}/{p[3]}", p[4:]
                if not rest and verb == "GET":
                    return self._info(repo_id, "main", query)
                if rest[:1] == ["revision"] and verb == "GET":
                    return self._info(repo_id, "/".join(rest[1:]), query)
                if rest == ["refs"] and verb == "GET":
                    return self._refs(repo_id)
                if rest[:1] == ["tree"] and verb == "GET":
                    return self._tree(repo_id, rest[1])
                if rest[:1] == ["preupload"] and verb == "POST":
                    return self._preupload(repo_id, rest[1], json.loads(body))
                if rest[:1] == ["commit"] and verb == "POST":
                    return self._commit(repo_id, rest[1], body)
                if rest[:1] == ["branch"] and verb == "POST":
                    return self._branch(repo_id, rest[1], json.loads(body or b"{}"))
            if (
                len(p) == 6
                and p[1].endswith(".git")
                and p[2:] == ["info", "lfs", "objects", "batch"]
            ):
                return self._lfs_batch(json.loads(body))
            if p[:1] == ["lfs-upload"] and verb == "PUT":
                return self._lfs_put(p[1], body)
            if len(p) >= 5 and p[2] == "resolve" and verb in ("GET", "HEAD"):
                return self._resolve(f"{p[0]}/{p[1]}", p[3], "/".join(p[4:]))
            raise ReplyError(404, None, f"no route for {verb} {'/'.join(p)}")

        def _create_repo(self, doc: dict):
            self._writer()
            repo_id = f"{doc['organization']}/{doc['name']}"
            url = f"{hub.endpoint}/{repo_id}"
            if repo_id in hub.repos:  # the Hub's 409 carries the url too; the client reads it
                raise ReplyError(409, None, "You already created this model repo", url=url)
            hub.repos[repo_id] = Repo(private=doc.get("visibility") == "private")
            initial = {".gitattributes": hub.store(".gitattributes", GITATTRIBUTES)}
            hub.commit(repo_id, "main", initial, "initial commit")
            return self._json({"url": url, "name": repo_id})

        def _validate_yaml(self, doc: dict):
            text = doc["content"]
            if text.startswith("---\n"):
                try:
                    meta = yaml.safe_load(text[4 : text.index("\n---", 4)])
                except yaml.YAMLError as err:
                    return self._json({"errors": [{"message": str(err)}]}, status=400)
                if not isinstance(meta, dict):
                    return self._json({"errors": [{"message": "metadata is not a mapping"}]}, 400)
            return self._json({"errors": [], "warnings": []})

        def _info(self, repo_id: str, revision: str, query: dict[str, list[str]]):
            repo = self._repo(repo_id)
            commit, files = self._resolved(repo_id, revision)
            siblings = []
            for path, f in sorted(files.items()):
                entry: dict[str, Any] = {"rfilename": path}
                if query.get("blobs"):
                    entry |= {"size": f.size, "blobId": f.oid}
                    if f.sha256 is not None:
                        pointer = len(_pointer(f.sha256, f.size))
                        entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": pointer}
                siblings.append(entry)
            doc = {"id": repo_id, "sha": commit, "private": repo.private, "siblings": siblings}
            return self._json(doc)

        def _refs(self, repo_id: str):
            repo = self._repo(repo_id)
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                for name, sha in sorted(repo.branches.items())
            ]
            return self._json({"branches": branches, "tags": [], "converts": []})

        def _tree(self, repo_id: str, revision: str):
            _, files = self._resolved(repo_id, revision)
            entries = []
            for path, f in sorted(files.items()):
                entry: dict[str, Any] = {"type": "file", "path": path, "size": f.size, "oid": f.oid}
                if f.sha256 is not None:
                    pointer = len(_pointer(f.sha256, f.size))
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": pointer}
                entries.append(entry)
            return self._json(entries)

        def _preupload(self, repo_id: str, revision: str, doc: dict):
            self._writer()
            _, files = self._resolved(repo_id, revision)
            answer = []
            for item in doc["files"]:
                path = item["path"]
                lfs = path.endswith(LFS_SUFFIXES)
                old = files.get(path)
                remote = None if old is None else (old.sha256 if lfs else old.oid)
                answer.append(
                    {
                        "path": path,
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        "oid": remote,
                    }
                )
            return self._json({"files": answer})

        def _lfs_batch(self, doc: dict):
            self._writer()
            objects = []
            for obj in doc["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in hub.blobs:
                    href = f"{hub.endpoint}/lfs-upload/{obj['oid']}"
                    entry["actions"] = {"upload": {"href": href}}
                objects.append(entry)
            return self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

        def _lfs_put(self, oid: str, body: bytes):
            if hashlib.sha256(body).hexdigest() != oid:
                raise ReplyError(400, None, "uploaded bytes do not match the oid")
            hub.blobs[oid] = body
            return 200, {}, b""

        def _commit(self, repo_id: str, revision: str, body: bytes):
            self._writer()
            _, files = self._resolved(repo_id, revision)
            files = dict(files)
            title = ""
            for line in body.decode().splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    title = value["summary"]
                elif key == "file":
                    files[value["path"]] = hub.store(
                        value["path"], base64.b64decode(value["content"])
                    )
                elif key == "lfsFile":
                    if value["oid"] not in hub.blobs:
                        raise ReplyError(422, None, f"LFS object {value['oid']} was not uploaded")
                    data = hub.blobs[value["oid"]]
                    files[value["path"]] = hub.store(value["path"], data)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                else:
                    raise ReplyError(400, None, f"unsupported commit operation {key!r}")
            sha = hub.commit(repo_id, revision, files, title)
            url = f"{hub.endpoint}/{repo_id}/commit/{sha}"
            return self._json({"success": True, "commitOid": sha, "commitUrl": url})

        def _branch(self, repo_id: str, branch: str, doc: dict):
            self._writer()
            repo = self._repo(repo_id)
            if branch in repo.branches:
                raise ReplyError(409, None, f"branch {branch} already exists")
            commit, _ = self._resolved(repo_id, doc.get("startingPoint", "main"))
            repo.branches[branch] = commit
            return self._json({})

        def _resolve(self, repo_id: str, revision: str, path: str):
            commit, files = self._resolved(repo_id, revision)
            f = files.get(path)
            if f is None:
                raise ReplyError(404, "EntryNotFound", f"{path} does not exist at {revision}")
            data = hub.blobs[f.key]
            headers = {"X-Repo-Commit": commit, "ETag": f'"{f.oid}"'}
            if f.sha256 is not None:
                headers |= {"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)}
            return 200, headers, data

    return Handler


@contextmanager
def serve_fake_hub(monkeypatch: pytest.MonkeyPatch, cache_dir: Any) -> Iterator[FakeHub]:
    """A running FakeHub, with the client set for it: no Xet (regular LFS upload), a token
    (writes need one), geolip's store under ``cache_dir``."""
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # read at import by the client
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setenv("GEOLIP_HUB_CACHE", str(cache_dir))
    hub = FakeHub()
    try:
        yield hub
    finally:
        hub.close()
