"""`hf-crossenc publish --include_logs` against the local Hub server: the TensorBoard traces in runs/ are uploaded with the
flag and left out without it (the helpers are test_publish.py's: CLI subprocesses with the hub's environment)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hub_server import LocalHub
from test_publish import build_model_folder, client_env, run_cli

from hf_crossenc.publish import IGNORE_PATTERNS, ignore_patterns

pytestmark = pytest.mark.hub

TRACE = "runs/Dec06_05-00-00_host/events.out.tfevents.1796532911.host.123.0"


@pytest.fixture(scope="module")
def folder_with_logs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_model_folder(tiny_model_dir, tmp_path_factory.mktemp("publish-logs") / "model")
    trace = folder / TRACE
    trace.parent.mkdir(parents=True)
    trace.write_bytes(b"\x18\x00\x00\x00\x00\x00\x00\x00 not a real trace, only its bytes are uploaded")
    return folder


def test_ignore_patterns_keep_runs_out_unless_logs_are_included() -> None:
    assert ignore_patterns() == list(IGNORE_PATTERNS) and "runs/**" in IGNORE_PATTERNS
    assert ignore_patterns(include_logs=True) == [pattern for pattern in IGNORE_PATTERNS if pattern != "runs/**"]


@pytest.mark.parametrize("flag", [None, "--include_logs", "--include-logs"])
def test_runs_are_in_the_commit_only_with_the_flag(hub: LocalHub, folder_with_logs: Path, tmp_path: Path, flag: str | None) -> None:
    folder = Path(shutil.copytree(folder_with_logs, tmp_path / "model"))
    repo_id = "tester/logs" if flag else "tester/no-logs"
    proc = run_cli(client_env(hub.url, tmp_path / "hf_home"), tmp_path, str(folder), "--repo-id", repo_id, *([flag] if flag else []))
    assert proc.returncode == 0, proc.stderr
    upload = hub.commits(repo_id)[-1]
    runs = [path for path in upload["tree"] if path.startswith("runs/")]
    assert runs == ([TRACE] if flag else [])
    assert "model.safetensors" in upload["tree"]
    assert not any(path.startswith(("checkpoint-", "rounds/", "soup/")) for path in upload["tree"])  # still left out


def test_include_logs_without_a_trace_warns(hub: LocalHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = build_model_folder(tiny_model_dir, tmp_path / "model")
    proc = run_cli(client_env(hub.url, tmp_path / "hf_home"), tmp_path, str(folder), "--repo-id", "tester/no-trace", "--include_logs")
    assert proc.returncode == 0, proc.stderr
    assert "has no TensorBoard trace in runs/" in proc.stderr
    assert not any(path.startswith("runs/") for path in hub.commits("tester/no-trace")[-1]["tree"])
