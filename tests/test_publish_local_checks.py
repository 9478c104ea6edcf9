"""Publishing never half-acts: every local check (token, offline mode, weights, card) runs before the first request, and
the model folder is never changed, on failure or on success (the card with the repo id is uploaded from a temporary copy).

CLI runs in subprocesses against the local Hub (tests/hub_server.py), as in tests/test_publish.py.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HUB_TOKEN, HUB_USER
from hub_server import LocalHub
from test_publish import build_model_folder, client_env, run_cli, uploadable

from hf_crossenc.model_card import MODEL_ID_COMMENT, MODEL_ID_PLACEHOLDER

pytestmark = pytest.mark.hub

REPO_ROOT = Path(__file__).resolve().parents[1]
CARD = f"""---
license: apache-2.0
library_name: sentence-transformers
tags:
- cross-encoder
---

# Tiny cross-encoder

{MODEL_ID_COMMENT}; replace "{MODEL_ID_PLACEHOLDER}" in the snippets below with the Hub id once published. -->
```python
model = CrossEncoderPredictor.from_pretrained("{MODEL_ID_PLACEHOLDER}")
```
"""


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry of the folder: a file's sha256, or 'dir'."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def card_template(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder whose README.md is a generated card still waiting for its model id."""
    folder = build_model_folder(tiny_model_dir, tmp_path_factory.mktemp("checks") / "model")
    (folder / "README.md").write_text(CARD, encoding="utf-8")
    return folder


@pytest.fixture
def folder(card_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(card_template, tmp_path / "model"))


def download_card(hub: LocalHub, repo_id: str, home: Path) -> str:
    code = f"from huggingface_hub import hf_hub_download; print(hf_hub_download({repo_id!r}, 'README.md'))"
    env = client_env(hub.url, home)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1]).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("env_change", "message"),
    [
        ({"HF_TOKEN": None}, "no Hugging Face token"),
        ({"HF_HUB_OFFLINE": "1"}, "offline mode is on (HF_HUB_OFFLINE=1): unset HF_HUB_OFFLINE"),
    ],
    ids=["no-token", "offline"],
)
def test_refused_before_any_request_and_folder_unchanged(hub: LocalHub, folder: Path, tmp_path: Path, env_change, message) -> None:
    before = snapshot(folder)
    env = client_env(hub.url, tmp_path / "empty_hf_home", HF_OIDC_RESOURCE=None, **env_change)
    proc = run_cli(env, tmp_path, str(folder), "--repo-id", f"{HUB_USER}/refused")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""
    assert snapshot(folder) == before  # README.md too: the card is not rewritten before a refusal
    assert hub.requests == []
    assert HUB_TOKEN not in proc.stderr


def test_truncated_weights_are_refused_and_nothing_is_uploaded(hub: LocalHub, folder: Path, tmp_path: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # cut off half-way, header intact
    before = snapshot(folder)
    repo_id = f"{HUB_USER}/truncated"
    proc = run_cli(client_env(hub.url, tmp_path / "hf_home"), tmp_path, str(folder), "--repo-id", repo_id)
    assert proc.returncode == 2, proc.stderr
    assert str(weights) in proc.stderr and "truncated" in proc.stderr and "Traceback" not in proc.stderr
    assert hub.commits(repo_id) == [] and hub.requests == []
    assert snapshot(folder) == before


def test_uploaded_card_names_the_repo_and_the_folder_is_left_as_it_was(hub: LocalHub, folder: Path, tmp_path: Path) -> None:
    before = snapshot(folder)
    env = client_env(hub.url, tmp_path / "hf_home")
    for repo_id in (f"{HUB_USER}/first", f"{HUB_USER}/second"):  # the same folder to two repos: each card its own id
        proc = run_cli(env, tmp_path, str(folder), "--repo-id", repo_id)
        assert proc.returncode == 0, proc.stderr
        assert snapshot(folder) == before  # the local README.md keeps its placeholder
        card = download_card(hub, repo_id, tmp_path / f"fresh_{repo_id.split('/')[1]}")
        assert f'from_pretrained("{repo_id}")' in card
        assert MODEL_ID_PLACEHOLDER not in card and MODEL_ID_COMMENT not in card
        assert card.startswith("---\nlicense: apache-2.0\n")
        upload = hub.commits(repo_id)[-1]
        assert upload["files"] == uploadable(folder)  # the staging copy uploads exactly the folder's files
        assert HUB_TOKEN not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- train --push_to_hub


def write_pairs(path: Path) -> Path:
    rows = ["sentence1,sentence2,label"] + [f"a sentence {i},another sentence {i},{i % 6}" for i in range(12)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("env_change", "message"),
    [
        ({"HF_HUB_OFFLINE": "1"}, "--push_to_hub cannot reach the Hub while offline mode is on (HF_HUB_OFFLINE=1)"),
        ({"HF_TOKEN": None}, "--push_to_hub: no Hugging Face token"),
    ],
    ids=["offline", "no-token"],
)
def test_train_push_to_hub_is_refused_before_training(hub: LocalHub, tiny_model_dir: Path, tmp_path: Path, env_change, message) -> None:
    data = write_pairs(tmp_path / "pairs.csv")
    out = tmp_path / "run"
    env = client_env(hub.url, tmp_path / "empty_hf_home", HF_OIDC_RESOURCE=None, OMP_NUM_THREADS="1", **env_change)
    cmd = [
        sys.executable, str(REPO_ROOT / "scripts" / "train.py"),
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(data), "--validation_file", str(data),
        "--label_scale", "0,5", "--output_dir", str(out), "--num_train_epochs", "1", "--disable_tqdm", "true",
        "--push_to_hub", "true", "--hub_model_id", "x/y",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # nothing written: the check comes before the data, the model and the output folder
    assert "training on" not in proc.stderr and hub.requests == []
    assert time.monotonic() - started < 120
    assert HUB_TOKEN not in proc.stderr + proc.stdout
