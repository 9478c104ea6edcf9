"""scripts/bench_scale.py: its synthetic files are pair files the job reads (regression CSV, reranking rows)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from hf_crossenc.arrow_data import open_table
from hf_crossenc.data import LabelScale, resolve_columns
from hf_crossenc.ranking import build_ranking_split, listwise_dataset
from hf_crossenc.task_data import pair_split

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEXTS = ["A cat sits.", "A dog runs.", "Rain falls, softly.", 'He said "no".', "Two men play chess."]


def test_synthetic_files_are_valid_pair_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    bench = load_script()
    regression, reranking = tmp_path / "r.csv", tmp_path / "l.csv"
    bench.write_regression(regression, 57, TEXTS)
    bench.write_reranking(reranking, 57, TEXTS, ["Who?", "What?"])
    table = open_table(regression)
    split = pair_split(table, resolve_columns(table), name="train", scale=LabelScale(0, 5))
    assert len(split) == 57 and min(split.dataset["label"]) >= 0.0 and max(split.dataset["label"]) <= 1.0
    ranking = build_ranking_split(open_table(reranking), name="train")
    assert sum(len(g.passages) for g in ranking.groups) <= 57 and all(1 in g.labels for g in ranking.groups)
    assert len(listwise_dataset(ranking.groups)) >= len(ranking.groups)


def test_job_flags_stop_nothing_early():
    bench = load_script()
    argv = bench.job_argv("listwise", Path("t.csv"), "m", Path("o"), steps=200, batch=8)
    assert argv[argv.index("--max_steps") + 1] == "201" and "--loss" in argv and "listwise" in argv
    assert "--label_scale" in bench.job_argv("regression", Path("t.csv"), "m", Path("o"), steps=200, batch=32)


def test_an_unknown_kind_is_a_flag_error():
    """``--kinds both`` once ran the listwise job under the name "both"."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--kinds", "both"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--kinds: unknown both" in proc.stderr and "Traceback" not in proc.stderr
