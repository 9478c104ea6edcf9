"""Smoke test of the side-by-side benchmark (short mode): it runs both sides and writes its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_quick_mode_runs_both_sides(tmp_path):
    from conftest import SHARED_DATA

    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--data_dir", str(SHARED_DATA / "stsb"),
           "--max_train_samples", "64", "--max_eval_samples", "64", "--output", str(out), "--plot", str(tmp_path / "bench.png")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    for side in ("sentence-transformers", "hf_crossenc"):
        assert results[side]["train_examples"] == 64 and results[side]["predict_pairs"] == 64
        assert results[side]["samples_per_s"] > 0 and results[side]["peak_rss_mb"] > 0
        assert len(results[side]["predict_times_s"]) == 3  # pairs/s from the median of three scoring passes
    assert "ratio" in proc.stdout and (tmp_path / "bench.png").is_file()
    ours = results["hf_crossenc"]
    assert ours["pairs_per_s_bf16"] > 0 and 0 < ours["train_gflop_per_s"] < results["matmul_peak_gflops"]["bfloat16"] * 2
    assert "of the measured bf16 matmul peak" in proc.stdout
