"""`hf-crossenc search`: grid expansion, run names, validation-only selection, and one real search on the tiny model."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from hf_crossenc import search
from hf_crossenc.cli import main as cli_main
from hf_crossenc.errors import ConfigError
from hf_crossenc.search import TEST_LABEL, aggregate, best_of, check_grid_keys, expand_grid, markdown_table, run_name


def test_expand_grid_is_the_ordered_cartesian_product():
    points = expand_grid(["learning_rate=3e-5,5e-5", "teacher_weight=0.3,0.5,0.7"])
    assert len(points) == 6
    assert points[0] == {"learning_rate": "3e-5", "teacher_weight": "0.3"}
    assert points[1] == {"learning_rate": "3e-5", "teacher_weight": "0.5"}  # the last key varies fastest
    assert points[-1] == {"learning_rate": "5e-5", "teacher_weight": "0.7"}
    assert [list(p) for p in points] == [["learning_rate", "teacher_weight"]] * 6
    assert expand_grid([" lr = 1 , 2 "]) == [{"lr": "1"}, {"lr": "2"}]
    assert expand_grid([]) == [{}]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [("lr", "expected KEY=VALUE1,VALUE2"), ("=1,2", "expected KEY=VALUE1"), ("lr=", "empty value"), ("lr=1,,2", "empty value")],
)
def test_expand_grid_bad_syntax(item, fragment):
    with pytest.raises(ConfigError, match=fragment):
        expand_grid([item])


def test_expand_grid_repeats_are_refused():
    with pytest.raises(ConfigError, match="listed twice"):
        expand_grid(["lr=1,1"])
    with pytest.raises(ConfigError, match="given twice"):
        expand_grid(["lr=1", "lr=2"])


def test_run_name():
    assert run_name({"learning_rate": "3e-5", "teacher_weight": "0.3", "seed": 42}) == "lr3e-5_tw0.3_s42"
    assert run_name({"max_grad_norm": "1.0"}) == "max_grad_norm1.0"
    assert run_name({"teacher": "bundled:all-MiniLM-L6-v2"}) == "teacherbundled-all-MiniLM-L6-v2"
    assert "/" not in run_name({"teacher": "../models/my teacher"})
    long_a, long_b = run_name({"teacher": "x" * 80 + "a"}), run_name({"teacher": "x" * 80 + "b"})
    assert long_a != long_b and len(long_a) < 60 and long_a == run_name({"teacher": "x" * 80 + "a"})


def test_unknown_grid_key_names_the_closest_flag():
    with pytest.raises(ConfigError, match="unknown training flag 'learning_rat'.*Did you mean 'learning_rate'"):
        check_grid_keys(expand_grid(["learning_rat=1e-5,2e-5"]))
    with pytest.raises(ConfigError, match="invalid value 'fast'"):
        check_grid_keys(expand_grid(["learning_rate=fast"]))
    with pytest.raises(ConfigError, match="use --seeds"):
        check_grid_keys(expand_grid(["seed=1,2"]))
    assert check_grid_keys(expand_grid(["learning-rate=1e-5"])) == [{"learning_rate": "1e-5"}]


def test_bad_search_input_exits_2_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(search, "_launch", _must_not_launch)
    code = cli_main(["search", "--grid", "learning_rat=1e-5", "--output_root", "runs"])
    err = capsys.readouterr().err
    assert code == 2 and "Did you mean 'learning_rate'" in err and "Traceback" not in err
    (tmp_path / "afile").write_text("x")
    assert cli_main(["search", "--grid", "learning_rate=1e-5", "--output_root", "afile"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli_main(["search", "--grid", "learning_rate=1e-5", "--output_root", "runs", "--", "--learning_rate", "2e-5"]) == 2
    assert "also a --grid key" in capsys.readouterr().err
    assert cli_main(["search", "--grid", "learning_rate=1e-5", "--output_root", "runs", "--", "--output_dir", "x"]) == 2
    assert "the search sets it per run" in capsys.readouterr().err
    assert cli_main(["search", "--grid", "learning_rate=1e-5", "--output_root", "runs", "--config", "missing.yaml"]) == 2
    assert "missing.yaml not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _must_not_launch(command, log):
    raise AssertionError(f"no run should start: {command}")


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
    note = search._noise_note(table, best, "spearman", "runs")
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


def _fake_training(fail: set[str]):
    """A stand-in for the training subprocess: writes results.json, weights and a checkpoint, or fails."""
    calls: list[list[str]] = []

    def launch(command: list[str], log: Path) -> int:
        calls.append(command)
        flags = dict(zip(command[4::2], command[5::2]))
        out = Path(flags["--output_dir"])
        if out.name in fail:
            log.write_text("Traceback ...\nRuntimeError: out of memory\n")
            return 3
        log.write_text("training...\n")
        lr, seed = float(flags["--learning_rate"]), int(flags["--seed"])
        val = {1.0: 0.5, 2.0: 0.7, 3.0: 0.6}[lr] + seed / 100
        results = {
            "validation": {"pearson": val, "spearman": val, "n": 10},
            "test": {"pearson": 1 - val, "spearman": 1 - val, "n": 10},
            "run": {"metric_for_best_model": "spearman", "train_runtime_s": 1.5},
        }
        (out / "checkpoint-5").mkdir(parents=True)
        (out / "checkpoint-5" / "model.safetensors").write_text("w")
        (out / "model.safetensors").write_text("w")
        (out / "rounds" / "round-1").mkdir(parents=True)  # an earlier distillation round
        (out / "rounds" / "round-1" / "model.safetensors").write_text("w")
        (out / "rounds" / "round-1" / "results.json").write_text("{}")
        (out / "README.md").write_text("card")
        (out / "results.json").write_text(json.dumps(results))
        return 0

    return launch, calls


def test_search_flow_with_seeds_failures_and_reuse(capsys, monkeypatch):
    """The whole command with training replaced by a fake: means over seeds, a failed run, deletion, resuming."""
    launch, calls = _fake_training(fail={"lr3_s2"})
    monkeypatch.setattr(search, "_launch", launch)
    argv = ["search", "--grid", "learning_rate=1,2,3", "--seeds", "1,2", "--output_root", "runs", "--", "--max_train_samples", "8"]
    assert cli_main(argv) == 1  # a run failed
    out, err = capsys.readouterr()
    assert len(calls) == 6 and all(c[:4] == [search.sys.executable, "-m", "hf_crossenc.cli", "train"] for c in calls)
    assert "lr3_s2: FAILED with exit code 3" in err and "RuntimeError: out of memory" in err
    assert "1 of 6 run(s) failed" in out and "Best: learning_rate=2" in out
    log = Path("runs/lr3_s2.log").read_text()
    assert "exit code 3" in log and "out of memory" in log
    report = json.loads(Path("runs/search.json").read_text())
    failed = next(r for r in report["runs"] if r["name"] == "lr3_s2")
    assert failed["exit_code"] == 3 and failed["stderr_tail"][-1] == "RuntimeError: out of memory"
    assert report["best"]["runs"] == ["lr2_s1", "lr2_s2"] and report["best"]["score"] == pytest.approx(0.715)
    assert report["metric"] == "spearman" and report["selection_split"] == "validation"
    for name in ("lr1_s1", "lr1_s2", "lr3_s1"):
        assert not Path("runs", name, "model.safetensors").exists() and not Path("runs", name, "checkpoint-5").exists()
        assert not Path("runs", name, "rounds", "round-1", "model.safetensors").exists()
        assert Path("runs", name, "results.json").is_file() and Path("runs", name, "README.md").is_file()
        assert Path("runs", name, "rounds", "round-1", "results.json").is_file()
    assert Path("runs/lr2_s1/model.safetensors").is_file() and Path("runs/lr2_s2/checkpoint-5").is_dir()
    assert Path("runs/lr2_s1/rounds/round-1/model.safetensors").is_file()
    md = Path("runs/search.md").read_text()
    assert "## Every run" in md and "--max_train_samples 8" in md and TEST_LABEL in md

    launch, calls = _fake_training(fail=set())
    monkeypatch.setattr(search, "_launch", launch)
    assert cli_main(argv) == 0
    out, err = capsys.readouterr()
    assert [Path(c[-1]).name for c in calls] == ["lr3_s2"]  # only the failed run is trained again
    assert err.count(": reused (results.json exists") == 5
    assert "Best: learning_rate=2" in out  # lr3 now has both seeds, but its mean (0.615) is lower


def test_dry_run_prints_the_plan_and_starts_nothing(capsys, monkeypatch):
    monkeypatch.setattr(search, "_launch", _must_not_launch)
    argv = ["search", "--grid", "learning_rate=3e-5,5e-5", "--grid", "max_length=32", "--output_root", "runs/s", "--dry_run"]
    assert cli_main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("train --learning_rate 3e-5 --max_length 32 --output_dir runs/s/lr3e-5_len32")
    assert lines[1].endswith("--output_dir runs/s/lr5e-5_len32") and "2 run(s), 2 to train" in lines[2]
    assert not Path("runs").exists()

    Path("runs/s/lr3e-5_len32").mkdir(parents=True)
    Path("runs/s/lr3e-5_len32/results.json").write_text("{}")
    Path("runs/s/lr5e-5_len32").mkdir()
    Path("runs/s/lr5e-5_len32/trainer_log.txt").write_text("interrupted")  # a run cut off before its first checkpoint
    assert cli_main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("# reused: results.json exists")
    assert lines[1].endswith("--output_dir runs/s/lr5e-5_len32 --overwrite_output_dir  # retrains into its partial folder")
    assert "2 run(s), 1 to train" in lines[2]


def test_search_end_to_end_on_the_tiny_model(tmp_path, capsys, monkeypatch, stsb_slices, tiny_model_dir):
    """Two real training runs (relative data paths resolve in the caller's cwd), then a rerun that reuses both."""
    config = tmp_path / "search.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_model_dir}\n"
        "train_file: data/train.csv\nvalidation_file: data/dev.csv\ntest_file: data/test.csv\n"
        "label_scale: '0,5'\nnum_train_epochs: 1\nmax_length: 32\nbf16: false\ndisable_tqdm: true\n"
    )
    argv = ["search", "--config", "search.yaml", "--grid", "learning_rate=1e-4,1e-3", "--seeds", "42", "--output_root", "runs/search"]
    assert cli_main(argv) == 0, Path("runs/search/lr1e-4_s42.log").read_text()[-3000:]
    out, err = capsys.readouterr()
    root = Path("runs/search")
    assert (root / "search.md").is_file() and (root / "search.json").is_file()
    report = json.loads((root / "search.json").read_text())
    names = [run["name"] for run in report["runs"]]
    assert names == ["lr1e-4_s42", "lr1e-3_s42"] and all(run["status"] == "trained" for run in report["runs"])
    spearman = {name: json.loads((root / name / "results.json").read_text())["validation"]["spearman"] for name in names}
    best = max(spearman, key=spearman.get)
    other = next(name for name in names if name != best)
    assert report["best"]["runs"] == [best] and report["best"]["score"] == pytest.approx(spearman[best])
    assert (root / best / "model.safetensors").is_file()
    assert not (root / other / "model.safetensors").exists() and not list((root / other).glob("checkpoint-*"))
    assert (root / other / "results.json").is_file() and (root / other / "README.md").is_file()
    assert f"{TEST_LABEL}: spearman" in out and f"| 1 **best** | {run_name(report['best']['point'])} | " in out
    low, high = json.loads((root / best / "results.json").read_text())["validation"]["intervals"]["bounds"]["spearman"]
    assert f"The best point's validation spearman has a 95% bootstrap interval of {low:.4f} – {high:.4f}" in out

    monkeypatch.setattr(search, "_launch", _must_not_launch)
    assert cli_main(argv) == 0
    out2, err2 = capsys.readouterr()
    assert err2.count(": reused (results.json exists") == 2
    assert json.loads((root / "search.json").read_text())["best"]["runs"] == [best]
    assert [line for line in out2.splitlines() if line.startswith("|")] == [line for line in out.splitlines() if line.startswith("|")]


def test_a_run_with_only_a_finished_first_round_is_resumed(tmp_path):
    """A multi-round run cut off in round 2 keeps rounds/round-1: resume it (retraining would redo round 1)."""
    round_one = tmp_path / "runs" / "lr3e-5" / "rounds" / "round-1"
    round_one.mkdir(parents=True)
    (round_one / "results.json").write_text("{}")
    (run,) = search.plan_runs([{"learning_rate": "3e-5"}], [], tmp_path / "runs", None, [])
    assert run.action == "resume" and run.extra == ["--resume"]


def test_reusing_a_run_made_with_other_flags_is_refused(capsys, monkeypatch):
    """A finished run remembers its flags (search_run.json): a search with other flags exits 2 before training."""
    launch, calls = _fake_training(fail=set())
    monkeypatch.setattr(search, "_launch", launch)
    argv = ["search", "--grid", "learning_rate=1,2", "--seeds", "1", "--output_root", "runs", "--", "--max_train_samples", "8"]
    assert cli_main(argv) == 0 and len(calls) == 2
    assert json.loads(Path("runs/lr1_s1/search_run.json").read_text())["train_args"][-4:] == [
        "--max_train_samples", "8", "--output_dir", str(Path("runs/lr1_s1")),
    ]  # fmt: skip
    Path("runs/search.json").unlink()  # as if that search had been stopped before writing it
    capsys.readouterr()
    assert cli_main([*argv[:-1], "16"]) == 2
    err = capsys.readouterr().err
    assert "run lr1_s1 in runs/lr1_s1 was trained with other flags" in err and "--max_train_samples 8" in err
    assert len(calls) == 2  # nothing was trained
    assert cli_main(argv) == 0 and len(calls) == 2  # the same flags reuse both runs
