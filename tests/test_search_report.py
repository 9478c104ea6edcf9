"""hf_crossenc.search_report: runs aggregated by grid point, the best point, and the report's tables and notes."""

from __future__ import annotations

import math
import statistics

import pytest

from hf_crossenc.errors import ConfigError
from hf_crossenc.search_report import TEST_LABEL, aggregate, best_of, markdown_table, noise_note, run_name


def _run(point: dict[str, str], seed: int, val: float, test: float, status: str = "trained") -> dict:
    ok = status != "failed"
    return {
        "name": run_name({**point, "seed": seed}),
        "point": point,
        "seed": seed,
        "status": status,
        "validation": {"pearson": val - 0.01, "spearman": val, "n": 48} if ok else None,
        "test": {"pearson": test - 0.01, "spearman": test, "n": 48} if ok else None,
        "runtime_s": 10.0 if ok else None,
    }


def test_run_name():
    assert run_name({"learning_rate": "3e-5", "teacher_weight": "0.3", "seed": 42}) == "lr3e-5_tw0.3_s42"
    assert run_name({"max_grad_norm": "1.0"}) == "max_grad_norm1.0"
    assert run_name({"teacher": "bundled:all-MiniLM-L6-v2"}) == "teacherbundled-all-MiniLM-L6-v2"
    assert "/" not in run_name({"teacher": "../models/my teacher"})
    long_a, long_b = run_name({"teacher": "x" * 80 + "a"}), run_name({"teacher": "x" * 80 + "b"})
    assert long_a != long_b and len(long_a) < 60 and long_a == run_name({"teacher": "x" * 80 + "a"})


def test_aggregate_selects_on_validation_not_test():
    rows = [
        _run({"lr": "1"}, 1, val=0.80, test=0.60),
        _run({"lr": "1"}, 2, val=0.70, test=0.62),
        _run({"lr": "2"}, 1, val=0.72, test=0.90),  # the best on test, never chosen for it
        _run({"lr": "2"}, 2, val=0.74, test=0.92),
        _run({"lr": "3"}, 1, val=0.0, test=0.0, status="failed"),
        _run({"lr": "4"}, 1, val=math.nan, test=0.95),  # collapsed: NaN validation sorts last among scored
    ]
    table = aggregate(rows, "spearman")
    assert [row["point"]["lr"] for row in table] == ["1", "2", "4", "3"]
    first = table[0]
    assert first["score"] == pytest.approx(0.75) and first["n"] == 2 and first["seeds"] == [1, 2]
    assert first["std"] == pytest.approx(statistics.stdev([0.80, 0.70]))
    assert first["validation"]["pearson"]["mean"] == pytest.approx(0.74)
    assert first["test"]["spearman"]["mean"] == pytest.approx(0.61)
    assert table[3]["n"] == 0 and table[3]["failed"] == 1
    best = best_of(table)
    assert best is first
    test_best = max(table, key=lambda row: row["test"].get("spearman", {"mean": -1})["mean"])
    assert test_best["point"] == {"lr": "4"} and test_best is not best

    text = markdown_table(table, "spearman", ["lr"], best)
    header = text.splitlines()[0]
    assert "validation spearman (selection)" in header and f"{TEST_LABEL}: spearman" in header
    assert "| 1 **best** | lr1 | 1 | 1, 2 | 0.7500 ± 0.0707 |" in text
    assert "(1 of 1 failed)" in text


def test_summary_names_the_points_inside_the_best_points_interval():
    def with_interval(row: dict, low: float, high: float) -> dict:
        row["validation"]["intervals"] = {"level": 0.95, "resamples": 1000, "resampled": "pairs", "bounds": {"spearman": [low, high]}}
        return row

    rows = [
        with_interval(_run({"lr": "1"}, 1, val=0.80, test=0.6), 0.70, 0.85),
        with_interval(_run({"lr": "1"}, 2, val=0.70, test=0.6), 0.60, 0.78),
        with_interval(_run({"lr": "2"}, 1, val=0.73, test=0.6), 0.65, 0.80),  # inside the best's 0.65 - 0.815
        with_interval(_run({"lr": "5"}, 1, val=0.50, test=0.6), 0.40, 0.60),  # below it
        with_interval(_run({"lr": "9"}, 1, val=0.90, test=0.6), 0.85, 0.95),  # above it, but one of its runs failed
        _run({"lr": "9"}, 2, val=0.0, test=0.0, status="failed"),
    ]
    table = aggregate(rows, "spearman")
    best = best_of(table)
    assert (
        best["point"] == {"lr": "1"} and best["interval"]["low"] == pytest.approx(0.65) and best["interval"]["high"] == pytest.approx(0.815)
    )
    note = noise_note(table, best, "spearman", "runs")
    assert (
        "95% bootstrap interval of 0.6500 – 0.8150 (resampling the validation split's pairs, the model fixed; the bounds of its 2 runs averaged)"
        in note
    )
    assert "1 other point(s) score inside it (lr2)" in note and "lr5" not in note and "lr9" not in note
    assert "hf-crossenc evaluate runs/lr1_s1 VALIDATION_FILE --compare runs/lr2_s1" in note
    # Without intervals in every run of the point (older results.json, --bootstrap_resamples 0) there is no note.
    del rows[1]["validation"]["intervals"]
    assert best_of(aggregate(rows, "spearman"))["interval"] is None


def test_aggregate_prefers_points_whose_runs_all_succeeded():
    rows = [
        _run({"lr": "1"}, 1, val=0.70, test=0.6),
        _run({"lr": "1"}, 2, val=0.70, test=0.6),
        _run({"lr": "2"}, 1, val=0.90, test=0.6),
        _run({"lr": "2"}, 2, val=0.0, test=0.0, status="failed"),
    ]
    table = aggregate(rows, "spearman")
    assert table[0]["point"] == {"lr": "2"}  # ranked first by its one finished run ...
    assert best_of(table)["point"] == {"lr": "1"}  # ... but not chosen: half of its seeds failed
    with pytest.raises(ConfigError, match="no validation 'map'.*available: \\['pearson', 'spearman'\\]"):
        aggregate(rows, "map")
