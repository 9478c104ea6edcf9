"""`hf-crossenc publish` / `hf_crossenc.publish` against the local Hub server (tests/hub_server.py).

``huggingface_hub`` reads HF_ENDPOINT when it is imported, so everything that talks to the server
runs in a subprocess (`python -m hf_crossenc.cli publish ...` and small `python -c` loaders that
check ``huggingface_hub.constants.ENDPOINT``). Failures that must happen before any network call
(bad folder, broken README, no token) run in-process, with ``HfApi`` replaced by a stub that fails
the test if it is ever constructed, and the server's request log checked to be empty.

Each CLI subprocess costs ~5 s, most of it importing torch/transformers through
``hf_crossenc/__init__.py``; the published repo of the main flow is shared by several tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
import torch
from conftest import HUB_ENV_REMOVED, HUB_TOKEN, HUB_USER, hub_env
from hub_server import LocalHub
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from safetensors.torch import save_file

from hf_crossenc import publish
from hf_crossenc.cli import main as cli_main
from hf_crossenc.publish import PublishError, PublishResult, call_with_retries, is_transient, publish_folder

pytestmark = pytest.mark.hub

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "@@RESULT@@"
PAIRS = [
    ("A man is playing a guitar.", "Someone plays an instrument."),
    ("A cat sleeps on the sofa.", "The stock market fell sharply today."),
    ("Two dogs run in a field.", "Two dogs are running through the grass outside."),
]
COMMIT_MESSAGE = "Upload cross-encoder with hf-crossenc"


# --------------------------------------------------------------------------- helpers


def build_model_folder(tiny: Path, out: Path) -> Path:
    """A trained-looking model folder: weights+config with score semantics, tokenizer, card, results, a checkpoint."""
    from huggingface_hub import ModelCard, ModelCardData
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_crossenc.modeling import ScoreSemantics, record_score_semantics

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1)
    with torch.no_grad():  # a head with some spread, so that the pairs get clearly different scores
        torch.nn.init.normal_(model.classifier.weight, std=2.0)
        model.classifier.bias.fill_(0.1)
    record_score_semantics(model.config, ScoreSemantics(label_scale=[0.0, 5.0], max_length=64))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(out)
    data = ModelCardData(
        license="apache-2.0", library_name="transformers", pipeline_tag="text-classification", tags=["cross-encoder", "hf-crossenc"]
    )
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n# Tiny cross-encoder\n\nA test model.\n").save(out / "README.md")
    (out / "results.json").write_text(json.dumps({"test": {"pearson": 0.12, "spearman": 0.1}}, indent=2) + "\n")
    (out / "checkpoint-1").mkdir()
    torch.save({"step": torch.ones(2)}, out / "checkpoint-1" / "optimizer.pt")  # a pickle: must never be uploaded
    (out / "rounds" / "round-1").mkdir(parents=True)  # an earlier distillation round: never uploaded
    (out / "rounds" / "round-1" / "results.json").write_text("{}\n")
    (out / "soup" / "seed-42").mkdir(parents=True)  # another member of a seed soup: never uploaded
    save_file({"w": torch.zeros(2)}, str(out / "soup" / "seed-42" / "model.safetensors"))
    return out


def uploadable(folder: Path) -> list[str]:
    """Files of the folder that publish must upload (everything but checkpoint-*/, rounds/ and soup/)."""
    rels = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    return sorted(r.as_posix() for r in rels if not r.parts[0].startswith("checkpoint-") and r.parts[0] not in ("rounds", "soup"))


def client_env(url: str, hf_home: Path, **overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HUB_ENV_REMOVED}
    env.update(hub_env(url, hf_home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hf_crossenc.cli", "publish", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def run_python(env: dict[str, str], cwd: Path, body: str, **args: Any) -> dict[str, Any]:
    """Run `body` in a fresh interpreter (`ARGS` in, `R` out); checks that the client used the local endpoint."""
    prelude = (
        "import json, sys\nfrom huggingface_hub import constants\nARGS = json.loads(sys.argv[1])\nR = {'endpoint': constants.ENDPOINT}\n"
    )
    code = prelude + body + f"\nprint({MARKER!r} + json.dumps(R))\n"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert proc.returncode == 0, f"client script failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith(MARKER))[len(MARKER) :])
    assert result["endpoint"] == env["HF_ENDPOINT"]
    return result


def count(hub: LocalHub, method: str, substring: str) -> int:
    return sum(1 for m, path in hub.requests if m == method and substring in path)


def assert_one_upload_commit(hub: LocalHub, repo_id: str, folder: Path) -> dict[str, Any]:
    records = hub.commits(repo_id)
    assert [r["message"] for r in records] == ["initial commit", COMMIT_MESSAGE]
    upload = records[-1]
    assert upload["files"] == uploadable(folder)
    assert upload["tree"] == sorted([".gitattributes", *uploadable(folder)])
    assert not any(path.startswith(("checkpoint-", "rounds/", "soup/")) for path in upload["tree"])
    return upload


@pytest.fixture(scope="module")
def model_template(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_folder(tiny_model_dir, tmp_path_factory.mktemp("publish") / "model")


@pytest.fixture
def model_folder(model_template: Path, tmp_path: Path) -> Path:
    """A private copy of the model folder for the test (tests may break it)."""
    return Path(shutil.copytree(model_template, tmp_path / "model"))


@dataclass
class Published:
    hub: LocalHub
    repo_id: str
    folder: Path
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def published(model_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """ONE publish through the CLI, shared by the tests that only read the result (or open PRs)."""
    root = tmp_path_factory.mktemp("published")
    server = LocalHub(root / "hub", token=HUB_TOKEN, user=HUB_USER).start()
    try:
        repo_id = f"{HUB_USER}/tiny-cross-encoder"
        proc = run_cli(client_env(server.url, root / "hf_home"), root, str(model_template), "--repo-id", repo_id)
        yield Published(server, repo_id, model_template, proc)
    finally:
        server.stop()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process guard: creating an HfApi or sending any Hub request fails the test."""
    import huggingface_hub

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("HfApi must not be created before the local checks pass")

    monkeypatch.setattr(huggingface_hub, "HfApi", forbidden)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


# --------------------------------------------------------------------------- main flow (shared repo)


def test_publish_makes_one_commit_without_checkpoints(published: Published) -> None:
    proc, hub = published.proc, published.hub
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{hub.url}/{published.repo_id}"
    assert "Traceback" not in proc.stderr
    upload = assert_one_upload_commit(hub, published.repo_id, published.folder)
    assert upload["files"] == ["README.md", "config.json", "model.safetensors", "results.json", "tokenizer.json", "tokenizer_config.json"]
    assert HUB_TOKEN not in proc.stdout + proc.stderr
    assert count(hub, "POST", f"/api/models/{published.repo_id}/commit/main") == 1


def test_published_model_loads_with_transformers_sentence_transformers_and_predictor(published: Published, tmp_path: Path) -> None:
    hub = published.hub
    fresh_home = tmp_path / "empty_hf_home"
    before = count(hub, "GET", "/model.safetensors")
    result = run_python(
        client_env(hub.url, fresh_home),
        tmp_path,
        """
import torch
from huggingface_hub import HfApi
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from hf_crossenc import CrossEncoderPredictor

pairs, repo, folder = [tuple(p) for p in ARGS["pairs"]], ARGS["repo"], ARGS["folder"]
local = AutoModelForSequenceClassification.from_pretrained(folder).eval()
remote = AutoModelForSequenceClassification.from_pretrained(repo).eval()
local_tok, remote_tok = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(repo)

def logits(model, tok, batch):
    enc = tok([a for a, _ in batch], [b for _, b in batch], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits

R["equal_batched"] = torch.equal(logits(local, local_tok, pairs), logits(remote, remote_tok, pairs))
R["equal_single"] = all(torch.equal(logits(local, local_tok, [p]), logits(remote, remote_tok, [p])) for p in pairs)
R["expected"] = [torch.sigmoid(logits(local, local_tok, [p])).item() for p in pairs]
R["labels_equal"] = [local.config.id2label == remote.config.id2label, local.config.label2id == remote.config.label2id]
R["id2label"] = {str(k): v for k, v in remote.config.id2label.items()}
R["semantics"] = remote.config.hf_crossenc
R["repo_files"] = sorted(HfApi().list_repo_files(repo))

pipe = pipeline("text-classification", model=repo)
outputs = [pipe({"text": a, "text_pair": b}) for a, b in pairs]
R["pipeline"] = [(o[0] if isinstance(o, list) else o)["score"] for o in outputs]
R["cross_encoder"] = [float(s) for s in CrossEncoder(repo).predict(pairs)]
R["predictor"] = [float(s) for s in CrossEncoderPredictor.from_pretrained(repo).predict(pairs)]
R["cache"] = constants.HF_HUB_CACHE
""",
        repo=published.repo_id,
        folder=str(published.folder),
        pairs=PAIRS,
    )
    assert result["equal_batched"] and result["equal_single"]
    assert result["labels_equal"] == [True, True]
    assert result["id2label"] == {"0": "LABEL_0"}
    assert result["semantics"]["label_scale"] == [0.0, 5.0] and result["semantics"]["activation"] == "sigmoid"
    assert result["repo_files"] == sorted([".gitattributes", *uploadable(published.folder)])
    assert Path(result["cache"]) == fresh_home / "hub"  # downloaded from the server into the empty HF_HOME
    assert count(hub, "GET", f"/{published.repo_id}/resolve/") > 0
    assert count(hub, "GET", "/model.safetensors") > before
    expected = result["expected"]
    assert len(set(expected)) == len(PAIRS) and max(expected) - min(expected) > 1e-3  # distinct scores: 1e-6 means something
    for name in ("pipeline", "cross_encoder", "predictor"):
        assert result[name] == pytest.approx(expected, abs=1e-6), name


def test_republishing_unchanged_folder_makes_no_commit(published: Published, tmp_path: Path) -> None:
    hub = published.hub
    before = hub.commits(published.repo_id)
    proc = run_cli(client_env(hub.url, tmp_path / "hf_home"), tmp_path, str(published.folder), "--repo-id", published.repo_id)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{hub.url}/{published.repo_id}"
    assert "nothing changed" in proc.stderr.lower()
    assert hub.commits(published.repo_id) == before


def test_create_pr_leaves_main_unchanged(published: Published, tmp_path: Path) -> None:
    hub = published.hub
    folder = Path(shutil.copytree(published.folder, tmp_path / "model"))
    (folder / "results.json").write_text(json.dumps({"test": {"pearson": 0.5}}) + "\n")
    main_before = [c["oid"] for c in hub.commits(published.repo_id) if c["ref"] == "main"]
    proc = run_cli(
        client_env(hub.url, tmp_path / "hf_home"),
        tmp_path,
        *(str(folder), "--repo-id", published.repo_id, "--create-pr", "--commit-message", "Update results"),
    )
    assert proc.returncode == 0, proc.stderr
    pr_url = proc.stdout.strip()
    assert pr_url.startswith(f"{hub.url}/{published.repo_id}/discussions/")
    records = hub.commits(published.repo_id)
    assert [c["oid"] for c in records if c["ref"] == "main"] == main_before
    pr_commits = [c for c in records if c["ref"].startswith("refs/pr/")]
    assert [(c["ref"], c["message"], c["files"]) for c in pr_commits] == [
        (f"refs/pr/{pr_url.rsplit('/', 1)[1]}", "Update results", ["results.json"])
    ]


# --------------------------------------------------------------------------- refusals


def test_wrong_token_is_a_clear_error_and_creates_nothing(hub: LocalHub, model_folder: Path, tmp_path: Path) -> None:
    secret = "hf_wrongSecretToken123"
    repo_id = f"{HUB_USER}/wrong-token"
    proc = run_cli(client_env(hub.url, tmp_path / "hf_home", HF_TOKEN=secret), tmp_path, str(model_folder), "--repo-id", repo_id)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert secret not in proc.stderr
    assert "HTTP 401" in proc.stderr and "HF_TOKEN" in proc.stderr and "hf auth login" in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert hub.commits(repo_id) == []
    assert count(hub, "POST", "/preupload/") == count(hub, "POST", "/commit/") == 0


def test_pickle_weights_are_refused_before_any_request(hub: LocalHub, model_folder: Path, capsys, no_network) -> None:
    (model_folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    code = cli_main(["publish", str(model_folder), "--repo-id", f"{HUB_USER}/pickled"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pytorch_model.bin" in err and "pickle" in err and "optimizer.pt" not in err
    assert hub.requests == []


def test_broken_readme_yaml_is_refused_before_upload(hub: LocalHub, model_folder: Path, capsys, no_network) -> None:
    (model_folder / "README.md").write_text("---\nlicense: apache-2.0\ntags: [cross-encoder\n---\n\n# Broken\n")
    code = cli_main(["publish", str(model_folder), "--repo-id", f"{HUB_USER}/broken-card"])
    err = capsys.readouterr().err
    assert code == 2
    assert "README.md" in err and "YAML" in err and "line 3" in err
    assert "Traceback" not in err
    assert hub.requests == []


def test_missing_token_is_refused_before_any_request(
    hub: LocalHub, model_folder: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, no_network
) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # online (HfApi still forbidden): the token check
    code = cli_main(["publish", str(model_folder), "--repo-id", f"{HUB_USER}/no-token"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no Hugging Face token" in err and "HF_TOKEN" in err and "hf auth login" in err
    assert hub.requests == []


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda f: (f / "model.safetensors").unlink(), "no safetensors weights"),
        (lambda f: (f / "config.json").unlink(), "no config.json"),
        (lambda f: shutil.rmtree(f), "does not exist"),
        (lambda f: (f / "runs").mkdir() or (f / "runs" / "events.pkl").write_bytes(b"x"), "runs/events.pkl"),
        (lambda f: (f / "README.md").write_text("---\n- a\n- b\n---\n"), "must be a mapping"),
        (lambda f: (f / "README.md").write_text("---\nlicense: mit\n\n# never closed\n"), "never closed"),
    ],
    ids=["no-weights", "no-config", "no-folder", "pickle-in-runs", "yaml-list", "unclosed-front-matter"],
)
def test_local_validation(model_folder: Path, breakage, message: str, no_network) -> None:
    breakage(model_folder)
    with pytest.raises(PublishError, match=message):
        publish_folder(model_folder, f"{HUB_USER}/x", token="hf_unused")


def test_local_validation_accepts_sharded_weights_and_checkpoint_pickles(model_folder: Path) -> None:
    weights = model_folder / "model.safetensors"
    shard = model_folder / "model-00001-of-00001.safetensors"
    weights.rename(shard)
    index = {"metadata": {}, "weight_map": {"classifier.bias": shard.name}}
    (model_folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert publish.validate_folder(model_folder) == model_folder  # checkpoint-1/optimizer.pt is allowed
    (model_folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(PublishError, match="missing"):
        publish.validate_folder(model_folder)


@pytest.mark.parametrize("repo_id", ["no-namespace", "a/b/c", "bad name/x"])
def test_invalid_repo_id(model_folder: Path, repo_id: str, no_network) -> None:
    with pytest.raises(PublishError, match="invalid repo id"):
        publish_folder(model_folder, repo_id, token="hf_unused")


# --------------------------------------------------------------------------- faults and retries


@pytest.mark.parametrize("fault", [{"status": 500}, {"drop": True}], ids=["http-500", "dropped-connection"])
def test_transient_failures_are_retried_without_duplicate_commit(hub: LocalHub, model_folder: Path, tmp_path: Path, fault) -> None:
    repo_id = f"{HUB_USER}/flaky"
    hub.fail_next("POST", "/api/repos/create", **fault)  # sent once by the client: our retry loop
    hub.fail_next("GET", f"/api/models/{repo_id}/revision/main", **fault)  # idem
    hub.fail_next("POST", "/commit/", **fault)  # the first commit attempt (upload_folder retries it itself)
    env = client_env(hub.url, tmp_path / "hf_home", HF_CROSSENC_PUBLISH_BACKOFF="0.01")
    proc = run_cli(env, tmp_path, str(model_folder), "--repo-id", repo_id)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{hub.url}/{repo_id}"
    assert_one_upload_commit(hub, repo_id, model_folder)
    assert count(hub, "POST", "/api/repos/create") == 2
    assert count(hub, "GET", f"/api/models/{repo_id}/revision/main") == 2
    assert count(hub, "POST", f"/api/models/{repo_id}/commit/main") == 2
    assert proc.stderr.count("retrying in 0.01 s (attempt 2 of 5)") == 2
    assert HUB_TOKEN not in proc.stderr


def test_lost_commit_response_does_not_duplicate_the_commit(
    hub: LocalHub, model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first commit lands but its response is a 500: the client replays it, which must not commit twice."""
    original = hub._commit_api
    calls: list[str] = []

    def landed_then_failed(req, repo, revision):
        response = original(req, repo, revision)
        calls.append(revision)
        if len(calls) == 1:
            raise RuntimeError("simulated failure after the commit was stored")  # the server answers 500
        return response

    monkeypatch.setattr(hub, "_commit_api", landed_then_failed)
    repo_id = f"{HUB_USER}/lost-response"
    proc = run_cli(client_env(hub.url, tmp_path / "hf_home"), tmp_path, str(model_folder), "--repo-id", repo_id, "--retry-backoff", "0.01")
    assert proc.returncode == 0, proc.stderr
    assert_one_upload_commit(hub, repo_id, model_folder)
    # the client's replay carried parentCommit=<old head> and was refused with 412, then we re-read the head
    assert len(calls) == 1 and count(hub, "POST", f"/api/models/{repo_id}/commit/main") == 2
    assert "HTTP 412" in proc.stderr
    assert "Nothing changed" not in proc.stderr


# --------------------------------------------------------------------------- unit tests (no network)


def _http_error(status: int, message: str = "boom") -> HfHubHTTPError:
    response = httpx2.Response(status, request=httpx2.Request("POST", "http://127.0.0.1:9/api/x"))
    return HfHubHTTPError(f"{status} {message}", response=response, server_message=message)


class Flaky:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_helper_backs_off_exponentially_on_transient_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [httpx2.ConnectError("refused"), _http_error(503), httpx2.RemoteProtocolError("dropped"), _http_error(429)]
    fn, sleeps = Flaky(errors), []
    with caplog.at_level("WARNING", logger="hf_crossenc.publish"):
        assert call_with_retries(fn, what="upload", max_attempts=5, backoff=0.5, sleep=sleeps.append) == "ok"
    assert fn.calls == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    warnings = [r for r in caplog.records if r.name == "hf_crossenc.publish"]
    assert len(warnings) == 4 and all(r.levelname == "WARNING" for r in warnings)
    assert "HTTP 503" in warnings[1].getMessage() and "retrying in 1.00 s (attempt 3 of 5)" in warnings[1].getMessage()


def test_retry_helper_gives_up_after_max_attempts() -> None:
    fn, sleeps = Flaky([_http_error(502)] * 10), []
    with pytest.raises(HfHubHTTPError):
        call_with_retries(fn, what="upload", max_attempts=3, backoff=1.0, sleep=sleeps.append)
    assert fn.calls == 3 and sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    "error", [_http_error(400), _http_error(401), _http_error(404), _http_error(412), OfflineModeIsEnabled("offline"), ValueError("bug")]
)
def test_retry_helper_does_not_retry_client_errors(error: BaseException) -> None:
    fn, sleeps = Flaky([error]), []
    with pytest.raises(type(error)):
        call_with_retries(fn, what="upload", sleep=sleeps.append)
    assert fn.calls == 1 and sleeps == []
    assert not is_transient(error)


def test_retry_log_never_contains_the_token(caplog: pytest.LogCaptureFixture) -> None:
    secret = "hf_secretValue42"
    fn = Flaky([httpx2.ConnectError(f"proxy said {secret}")])
    with caplog.at_level("WARNING"):
        call_with_retries(fn, what="upload", sleep=lambda s: None, redact=publish._redactor(secret))
    assert secret not in caplog.text and "hf_***" in caplog.text


class FakeApi:
    """Just enough of HfApi for `publish_folder`: the first upload opens PR 1, commits, then fails (412 on replay)."""

    def __init__(self) -> None:
        self.prs: list[str] = []
        self.heads = {"main": "a" * 40}
        self.uploads: list[dict[str, Any]] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        return f"http://hub/{repo_id}"

    def repo_info(self, repo_id: str, revision: str = "main") -> SimpleNamespace:
        return SimpleNamespace(sha=self.heads[revision], private=False)

    def list_repo_refs(self, repo_id: str, include_pull_requests: bool = False) -> SimpleNamespace:
        return SimpleNamespace(pull_requests=[SimpleNamespace(ref=ref) for ref in self.prs])

    def get_discussion_details(self, repo_id: str, num: int) -> SimpleNamespace:
        return SimpleNamespace(is_pull_request=True, title=COMMIT_MESSAGE, url=f"http://hub/{repo_id}/discussions/{num}")

    def upload_folder(self, **kwargs: Any) -> SimpleNamespace:
        self.uploads.append(kwargs)
        if len(self.uploads) == 1:
            self.prs.append("refs/pr/1")
            self.heads["refs/pr/1"] = "b" * 40
            raise _http_error(412, "A commit has happened since")
        head = self.heads[kwargs["revision"] or "main"]
        return SimpleNamespace(oid=head, commit_url=f"http://hub/c/{head}", pr_url=None)


def test_create_pr_retry_resumes_into_the_same_pull_request(model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    api = FakeApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: api)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # CI runs pytest with HF_HUB_OFFLINE=1
    result = publish_folder(model_folder, "u/r", create_pr=True, token="hf_fake", backoff=0.0)
    assert result == PublishResult("http://hub/u/r", "http://hub/c/" + "b" * 40, "b" * 40, "http://hub/u/r/discussions/1", True)
    first, second = api.uploads
    assert (first["create_pr"], first["revision"], first["parent_commit"]) == (True, None, "a" * 40)
    assert (second["create_pr"], second["revision"], second["parent_commit"]) == (False, "refs/pr/1", "b" * 40)
    assert first["ignore_patterns"] == ["checkpoint-*", "checkpoint-*/**", "runs/**", "rounds/**", "soup/**", "teacher/**", ".*"]
