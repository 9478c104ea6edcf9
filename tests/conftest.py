"""Shared fixtures: offline Hub settings, a per-test working directory, a tiny model built once and its tokenizer.

Tests that read the benchmark sets of ../shared/data carry the `benchmark_data` marker (with the sets they read;
none = all): when the files are absent they are skipped, or fail with HF_CROSSENC_REQUIRE_DATA=1 (our CI).
Tests using the `stsb_slices` or `trecqa_slices` fixtures get the marker by themselves.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import LocalHub  # noqa: E402
from tiny_model import build_tiny_model  # noqa: E402

from hf_crossenc import benchmarks  # noqa: E402

REQUIRE_DATA_ENV = "HF_CROSSENC_REQUIRE_DATA"
DATA_FIXTURES = {"stsb_slices": "stsb", "trecqa_slices": "trecqa"}
"""Fixtures that read a benchmark set: a test using one is marked `benchmark_data(<set>)`."""
HUB_TOKEN = "hf_local_test_token"
"""The write token the `hub` fixture's server accepts (also exported as HF_TOKEN)."""
HUB_USER = "tester"
HUB_ENV_REMOVED = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_TOKEN_PATH",
    "HUGGINGFACE_CO_STAGING",
    "HF_HUB_DISABLE_XET",
    *(f"{name}_proxy" for name in ("http", "https", "all", "HTTP", "HTTPS", "ALL")),
)


def hub_env(url: str, hf_home: Path, token: str = HUB_TOKEN) -> dict[str, str]:
    """Environment variables pointing a client subprocess at a local Hub (see also HUB_ENV_REMOVED)."""
    return {
        "HF_ENDPOINT": url,
        "HF_HOME": str(hf_home),
        "HF_TOKEN": token,
        "NO_PROXY": "127.0.0.1,localhost",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, name in DATA_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.benchmark_data(name))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `benchmark_data` test without its files: skipped, or failed under HF_CROSSENC_REQUIRE_DATA=1."""
    for marker in item.iter_markers("benchmark_data"):
        for name in marker.args or benchmarks.BENCHMARKS:
            for file in benchmarks.BENCHMARKS[name].sha256:
                require_benchmark_data(SHARED_DATA / name / file)


def require_benchmark_data(path: Path) -> Path:
    """`path`, a file of ../shared/data; when it is absent the test is skipped, or fails if HF_CROSSENC_REQUIRE_DATA=1."""
    if not path.is_file():
        message = f"benchmark data missing: {path} (`hf-crossenc data fetch all --dest {SHARED_DATA}` gets it)"
        if os.environ.get(REQUIRE_DATA_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_DATA_ENV}=1 makes its absence a failure", pytrace=False)
        pytest.skip(message)
    return path


def _no_download(url: str) -> bytes:
    raise RuntimeError(f"tests never download: {url} (monkeypatch hf_crossenc.benchmarks.download_bytes)")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """Every test runs in its own tmp dir with its own HF_HOME and benchmark cache; nothing may touch the network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv(benchmarks.DATA_ENV, str(tmp_path / "benchmark_cache"))
    monkeypatch.setattr(benchmarks, "download_bytes", _no_download)
    if request.node.get_closest_marker("hub") is None:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """A started LocalHub, with the environment of client subprocesses pointing at it.

    ``huggingface_hub`` reads HF_ENDPOINT at import time: run client code in subprocesses.
    """
    server = LocalHub(tmp_path / "hub", token=HUB_TOKEN, user=HUB_USER).start()
    for var in HUB_ENV_REMOVED:
        monkeypatch.delenv(var, raising=False)
    for var, value in hub_env(server.url, tmp_path / "hf_home").items():
        monkeypatch.setenv(var, value)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tokenizer(tiny_model_dir: Path):
    """A fresh tokenizer of the tiny model (per test: tests may change e.g. its padding side)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def stsb_file(split: str) -> Path:
    return require_benchmark_data(SHARED_DATA / "stsb" / f"{split}.csv")


def write_slice(src: Path, dst: Path, n: int, start: int = 0) -> Path:
    """Copy rows [start, start+n) of a CSV (with its header) into dst."""
    with src.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with dst.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([rows[0], *rows[1 + start : 1 + start + n]])
    return dst


@pytest.fixture
def stsb_slices(tmp_path: Path) -> dict[str, Path]:
    """Small STS-B train/dev/test slices in the test's tmp dir."""
    data = tmp_path / "data"
    data.mkdir()
    return {
        "train": write_slice(stsb_file("train"), data / "train.csv", 96),
        "validation": write_slice(stsb_file("dev"), data / "dev.csv", 48),
        "test": write_slice(stsb_file("test"), data / "test.csv", 48),
    }


def accelerate_launch(cwd: Path, launch_flags: list[str], script_flags: list[str]) -> subprocess.CompletedProcess:
    """Run `accelerate launch [launch_flags] scripts/train.py [script_flags]` offline; fail the test on a non-zero exit."""
    defaults = [] if "--config_file" in launch_flags else ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch_flags, *defaults, str(REPO / "scripts" / "train.py"), *script_flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"training failed:\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-6000:]}"
    return proc
