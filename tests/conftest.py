"""Shared fixtures: offline Hub settings, a per-test working directory, a tiny model built once."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """Every test runs in its own tmp dir with its own HF_HOME; nothing may touch the network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    if request.node.get_closest_marker("hub") is None:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


def stsb_file(split: str) -> Path:
    path = SHARED_DATA / "stsb" / f"{split}.csv"
    if not path.is_file():
        pytest.fail(f"benchmark data missing: {path} (the checkout needs ../shared/data beside it)")
    return path


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
