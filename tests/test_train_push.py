"""`scripts/train.py --push_to_hub` against the local test Hub: checkpoint pushes, final push, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HUB_ENV_REMOVED, HUB_TOKEN, hub_env
from huggingface_hub import ModelCard

pytestmark = pytest.mark.hub

REPO = Path(__file__).resolve().parents[1]
PICKLES = (".bin", ".pt", ".pth", ".pkl", ".pickle")


def train_and_push(tmp_path: Path, hub, tiny: Path, data: dict[str, Path], strategy: str) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in HUB_ENV_REMOVED}
    env.update(hub_env(hub.url, tmp_path / "hf_home"))
    env.update({"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_CROSSENC_PUBLISH_BACKOFF": "0.05"})
    cmd = [
        sys.executable, str(REPO / "scripts" / "train.py"),
        "--model_name_or_path", str(tiny),
        "--train_file", str(data["train"]), "--validation_file", str(data["validation"]), "--test_file", str(data["test"]),
        "--label_scale", "0,5", "--output_dir", str(out), "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
        "--learning_rate", "5e-4", "--max_length", "64", "--disable_tqdm", "true", "--license", "apache-2.0",
        "--push_to_hub", "true", "--hub_model_id", "tester/tiny-sts", "--hub_strategy", strategy,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out, proc


@pytest.mark.parametrize("strategy", ["every_save", "checkpoint"])
def test_training_pushes_checkpoints_and_final_model(tmp_path, hub, tiny_model_dir, stsb_slices, strategy):
    out, proc = train_and_push(tmp_path, hub, tiny_model_dir, stsb_slices, strategy)
    commits = hub.commits("tester/tiny-sts")
    messages = [c["message"] for c in commits]
    assert messages[0] == "initial commit"
    assert messages[1:] == [
        "Training in progress, step 12",
        "Training in progress, step 24",
        "End of training: best model and evaluation results",
    ]
    for commit in commits[1:]:
        assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= set(commit["tree"])
        assert not [p for p in commit["tree"] if p.endswith(PICKLES)], commit["tree"]
    final_tree = set(commits[-1]["tree"])
    assert {"results.json", "training_curve.png", "eval_scatter.png"} <= final_tree
    if strategy == "checkpoint":
        assert {"last-checkpoint/model.safetensors", "last-checkpoint/trainer_state.json"} <= final_tree

    # The final card on the Hub: model-index equal to results.json, snippets pointing at the repo.
    download = subprocess.run(
        [sys.executable, "-c", "import sys; from huggingface_hub import hf_hub_download; print(hf_hub_download('tester/tiny-sts', 'README.md'))"],
        env={**{k: v for k, v in os.environ.items() if k not in HUB_ENV_REMOVED}, **hub_env(hub.url, tmp_path / "fresh_home")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert download.returncode == 0, download.stderr
    card = ModelCard.load(download.stdout.strip().splitlines()[-1])
    results = json.loads((out / "results.json").read_text())
    values = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert values[("test", "spearman")] == pytest.approx(round(results["test"]["spearman"], 4))
    assert values[("validation", "pearson")] == pytest.approx(round(results["validation"]["pearson"], 4))
    assert card.data.license == "apache-2.0"
    assert 'from_pretrained("tester/tiny-sts")' in card.text

    # The token never reaches a written file or the logs.
    assert HUB_TOKEN not in proc.stdout + proc.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert HUB_TOKEN.encode() not in path.read_bytes(), path
