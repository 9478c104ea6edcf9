"""`hf-crossenc search`: grid expansion, run names, validation-only selection, and one real search on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_crossenc import search
from hf_crossenc.cli import main as cli_main
from hf_crossenc.errors import ConfigError
from hf_crossenc.search import check_grid_keys, expand_grid
from hf_crossenc.search_report import TEST_LABEL, run_name


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


def _must_not_launch(run):
    raise AssertionError(f"no run should start: {run.command}")


def _fake_training(fail: set[str]):
    """A stand-in for the training subprocess: writes results.json, weights and a checkpoint, or fails."""
    calls: list[list[str]] = []

    def launch(run: search.PlannedRun) -> int:
        calls.append(run.command)
        flags = dict(zip(run.train_args[0::2], run.train_args[1::2]))
        out = Path(flags["--output_dir"])
        log = run.log
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
    assert len(calls) == 6 and all(c[:2] == ["hf-crossenc", "train"] for c in calls)
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
    assert run.action == "resume" and run.command[-1] == "--resume"


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


def test_a_run_with_bad_data_fails_in_its_child_process_with_the_message_in_its_log(capsys):
    """A run is `train` in a spawned child process: bad input there exits 2, and the search shows the log's tail."""
    argv = ["search", "--grid", "learning_rate=1e-4", "--output_root", "runs", "--", "--train_file", "missing.csv", "--label_scale", "0,5"]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert "lr1e-4: FAILED with exit code 2" in err and "missing.csv" in err and "Traceback" not in err
    log = Path("runs/lr1e-4.log").read_text()
    assert log.startswith("# hf-crossenc train --learning_rate 1e-4 --train_file missing.csv") and "ERROR hf_crossenc" in log
