"""Interrupted training: kill -9, then --resume, ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_crossenc.checkpoints import checkpoint_problem, latest_complete_checkpoint

REPO = Path(__file__).resolve().parents[1]


def train_cmd(tiny: Path, data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(REPO / "scripts" / "train.py"),
        "--model_name_or_path", str(tiny),
        "--train_file", str(data["train"]), "--validation_file", str(data["validation"]), "--test_file", str(data["test"]),
        "--label_scale", "0,5", "--output_dir", str(out), "--num_train_epochs", "3", "--per_device_train_batch_size", "8",
        "--learning_rate", "5e-4", "--max_length", "64", "--disable_tqdm", "true",
        "--eval_strategy", "steps", "--save_strategy", "steps", "--eval_steps", "4", "--save_steps", "4", "--save_total_limit", "3",
        "--logging_steps", "2", "--seed", "11", *extra,
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path, tiny_model_dir, stsb_slices):
    reference = tmp_path / "reference"
    done = subprocess.run(train_cmd(tiny_model_dir, stsb_slices, reference), env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(train_cmd(tiny_model_dir, stsb_slices, out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint-12" / "trainer_state.json").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists(), "the run finished before it could be killed"
    # A checkpoint that a crash cut off half-way: it must be detected and skipped.
    broken = out / "checkpoint-999"
    broken.mkdir()
    good = latest_complete_checkpoint(out)
    (broken / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:1000])
    assert checkpoint_problem(broken) is not None
    assert latest_complete_checkpoint(out) == good

    # The same command without --resume refuses to overwrite; with --resume it finishes the run.
    refused = subprocess.run(train_cmd(tiny_model_dir, stsb_slices, out), env=env(), capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run(
        train_cmd(tiny_model_dir, stsb_slices, out, "--resume", "true"), env=env(), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {good}" in resumed.stderr

    expected, got = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
    ref_results, results = json.loads((reference / "results.json").read_text()), json.loads((out / "results.json").read_text())
    for split in ("validation", "test"):
        for metric in ("pearson", "spearman"):
            assert results[split][metric] == pytest.approx(ref_results[split][metric], abs=1e-6)
