"""Smoke test of the side-by-side benchmark (short mode): it runs both sides and writes its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", REPO / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rounds_combine_into_medians_and_the_largest_peak():
    bench = load_bench()
    rounds = [
        {"samples_per_s": 10.0, "pairs_per_s": 200.0, "wall_s": 9.0, "peak_rss_mb": 900.0, "test_spearman": 0.75, "real_tokens": 7},
        {"samples_per_s": 30.0, "pairs_per_s": 100.0, "wall_s": 3.0, "peak_rss_mb": 1100.0, "test_spearman": 0.75, "real_tokens": 7},
        {"samples_per_s": 20.0, "pairs_per_s": 150.0, "wall_s": 5.0, "peak_rss_mb": 1000.0, "test_spearman": 0.75, "real_tokens": 7},
    ]
    combined = bench.combine(rounds)
    assert (combined["samples_per_s"], combined["pairs_per_s"], combined["wall_s"]) == (20.0, 150.0, 5.0)
    assert combined["peak_rss_mb"] == 1100.0 and combined["real_tokens"] == 7 and combined["test_spearman"] == 0.75
    assert [r["samples_per_s"] for r in combined["rounds"]] == [10.0, 30.0, 20.0] and "real_tokens" not in combined["rounds"][0]
    assert bench.combine(rounds[:1])["samples_per_s"] == 10.0


def test_quality_difference_is_paired_over_the_same_test_pairs():
    import numpy as np

    bench = load_bench()
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 1, 400)
    shared = labels + rng.normal(0, 0.3, 400)
    peer = {"test_scores": (shared + rng.normal(0, 0.12, 400)).tolist(), "test_labels": labels.tolist()}
    ours = {"test_scores": (shared + rng.normal(0, 0.02, 400)).tolist()}
    got = bench.quality_difference(peer, ours, resamples=300)
    direct = bench.spearman(ours["test_scores"], labels) - bench.spearman(peer["test_scores"], labels)
    assert got["spearman"] == pytest.approx(direct)
    low, high = got["interval"]
    assert 0 < low < direct < high and got["share_above_zero"] > 0.975 and got["resamples"] == 300
    swapped = bench.quality_difference({**ours, "test_labels": peer["test_labels"]}, peer, resamples=300)
    assert swapped["spearman"] == pytest.approx(-direct) and swapped["interval"][1] < 0


def test_rounds_must_be_positive():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--rounds", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--rounds must be at least 1" in proc.stderr


@pytest.mark.slow
@pytest.mark.benchmark_data("stsb")
def test_bench_quick_mode_runs_both_sides(tmp_path):
    from conftest import SHARED_DATA

    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--data_dir", str(SHARED_DATA / "stsb"),
           "--max_train_samples", "64", "--max_eval_samples", "64", "--rounds", "2", "--output", str(out),
           "--plot", str(tmp_path / "bench.png")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    for side in ("sentence-transformers", "hf_crossenc"):
        assert results[side]["train_examples"] == 64 and results[side]["predict_pairs"] == 64
        assert results[side]["samples_per_s"] > 0 and results[side]["peak_rss_mb"] > 0
        assert len(results[side]["predict_times_s"]) == 3  # pairs/s from the median of three scoring passes
        assert len(results[side]["rounds"]) == 2  # the sides ran alternately twice
    assert "training ratio by round:" in proc.stdout
    assert "ratio" in proc.stdout and (tmp_path / "bench.png").is_file()
    ours = results["hf_crossenc"]
    assert ours["pairs_per_s_fp32"] > 0 and ours["precision"] in ("fp32", "bf16")
    assert results["sentence-transformers"]["bf16"] == (results["cpu"]["avx512_bf16"] or results["cpu"]["amx"])  # its best setting
    assert f"CPU: {results['cpu']['model']}" in proc.stdout
    profile = ours["profile"]
    for name in ("inference", "training"):
        split = profile[name]
        assert 0 < split["matmul_share"] < 1 and 0 < split["other_ops_share"] < 1 and split["wall_s"] > 0
        assert profile[f"{name}_ceiling"]["gflop_per_s"] > 0 and ours[f"{name}_ceiling_per_s"] > 0
        assert f"{name} ceiling (linear layers alone at their measured bf16 rate" in proc.stdout
    assert "test Spearman, ours minus the peer, paired over the same test pairs:" in proc.stdout
    diff = results["test_spearman_difference"]
    assert diff["spearman"] == pytest.approx(ours["test_spearman"] - results["sentence-transformers"]["test_spearman"])
    assert diff["interval"][0] <= diff["spearman"] <= diff["interval"][1]
    assert "test_scores" not in ours and "test_labels" not in results["sentence-transformers"]  # summaries only
