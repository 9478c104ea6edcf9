"""Resume never mixes runs (run_fingerprint.json); --overwrite_output_dir removes the earlier run; --output_dir is checked
for writability before anything is read or loaded."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from hf_crossenc import job
from hf_crossenc.arguments import DataArguments, ModelArguments, TeacherArguments
from hf_crossenc.commands.train import main
from hf_crossenc.errors import ConfigError
from hf_crossenc.fingerprint import FINGERPRINT_FILE, differences, run_fingerprint, write_fingerprint
from hf_crossenc.recipes import run_rounds
from hf_crossenc.results import CrossEncoderJobResult
from hf_crossenc.training_args import CrossEncoderTrainingArguments

KEPT = ("model.safetensors", "README.md", "training_args.json", "results.json", FINGERPRINT_FILE)


def flags(tiny: Path, data: dict[str, Path], out: Path, epochs: int = 2, train: Path | None = None) -> list[str]:
    return [
        "--model_name_or_path", str(tiny), "--train_file", str(train or data["train"]),
        "--validation_file", str(data["validation"]), "--label_scale", "0,5", "--output_dir", str(out),
        "--num_train_epochs", str(epochs), "--per_device_train_batch_size", "8", "--max_train_samples", "32",
        "--max_eval_samples", "16", "--learning_rate", "5e-4", "--max_length", "32", "--seed", "11",
        "--disable_tqdm", "true", "--save_total_limit", "5",
    ]  # fmt: skip


def snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in KEPT}


def test_resume_with_other_settings_is_refused_and_the_run_left_alone(tmp_path, capsys, tiny_model_dir, stsb_slices):
    out = tmp_path / "run"
    base = flags(tiny_model_dir, stsb_slices, out)
    assert main(base) == 0
    assert all((folder / FINGERPRINT_FILE).is_file() for folder in [out, *out.glob("checkpoint-*")])
    before = snapshot(out)
    capsys.readouterr()

    changed = tmp_path / "train-changed.csv"
    changed.write_text(stsb_slices["train"].read_text().replace("A", "B", 1))
    cases = {
        ("--learning_rate", "1e-4"): "learning_rate: 0.0005 in the checkpoint, 0.0001 now",
        ("--seed", "12"): "seed: 11 in the checkpoint, 12 now",
    }
    for (flag, value), message in cases.items():
        assert main([*base, flag, value, "--resume", "true"]) == 2
        err = capsys.readouterr().err
        assert message in err and "--overwrite_output_dir" in err and "Traceback" not in err
    assert main([*flags(tiny_model_dir, stsb_slices, out, train=changed), "--resume", "true"]) == 2
    assert "train_file content differs" in capsys.readouterr().err
    assert snapshot(out) == before  # weights, card, training_args.json, results untouched

    # The same settings still resume (the path of a data file may change, its content may not).
    moved = tmp_path / "moved.csv"
    shutil.copy(stsb_slices["train"], moved)
    assert main([*flags(tiny_model_dir, stsb_slices, out, train=moved), "--resume", "true"]) == 0

    # A checkpoint written before fingerprints existed is refused, saying how to go on.
    for folder in out.glob("checkpoint-*"):
        (folder / FINGERPRINT_FILE).unlink()
    assert main([*base, "--resume", "true"]) == 2
    err = capsys.readouterr().err
    assert f"has no {FINGERPRINT_FILE}" in err and "--overwrite_output_dir" in err


def test_overwrite_onto_a_longer_run_removes_it_before_training(tmp_path, caplog, tiny_model_dir, stsb_slices):
    import logging

    caplog.set_level(logging.INFO, logger="hf_crossenc")
    out = tmp_path / "run"
    assert main(flags(tiny_model_dir, stsb_slices, out, epochs=3)) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-4", "checkpoint-8"]
    (out / "rounds" / "round-1").mkdir(parents=True)  # a distillation round of an older job
    (out / "notes.txt").write_text("mine")
    short = [*flags(tiny_model_dir, stsb_slices, out, epochs=1, train=None), "--overwrite_output_dir", "true"]
    assert main(short) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]  # the longer run's later ones are gone
    assert not (out / "rounds").exists() and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "results.json").read_text())["run"]["epochs"] == 1
    # --resume now continues the short run (before: the longer run's checkpoint-12, silently).
    caplog.clear()
    assert main([*short[:-2], "--resume", "true"]) == 0
    assert f"resuming from {out / 'checkpoint-4'}" in caplog.text
    # A bad input after --overwrite_output_dir stops before the earlier run is removed.
    missing = [*flags(tiny_model_dir, stsb_slices, out, train=tmp_path / "no.csv"), "--overwrite_output_dir", "true"]
    assert main(missing) == 2
    assert (out / "checkpoint-4" / "model.safetensors").is_file() and (out / "model.safetensors").is_file()


@pytest.mark.parametrize("where", ["under_a_file", "read_only_parent"])
def test_unwritable_output_dir_exits_2_before_anything_is_read(tmp_path, capsys, monkeypatch, tiny_model_dir, where):
    import os

    monkeypatch.setattr(job, "load_task_data", lambda *a, **k: pytest.fail("data read before --output_dir was checked"))
    train = tmp_path / "train.csv"
    train.write_text("sentence1,sentence2,score\na,b,0.5\n")
    if where == "under_a_file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "sub" / "out"
    else:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o555)
        if os.access(parent, os.W_OK):  # root: permissions do not stop writes
            parent.chmod(0o755)
            pytest.skip("running as root: a read-only folder is still writable")
        out = parent / "out"
    try:
        code = main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(train), "--output_dir", str(out)])
    finally:
        if where != "under_a_file":
            (tmp_path / "ro").chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and f"--output_dir {out}" in err and "Traceback" not in err
    assert not out.exists()


def test_a_round_trained_with_other_settings_is_not_reused(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    train_file = tmp_path / "t.csv"
    train_file.write_text("sentence1,sentence2,score\na,b,0.5\n")
    model_args, data_args = ModelArguments(model_name_or_path=str(tiny_model_dir)), DataArguments(train_file=str(train_file))
    teacher_args = TeacherArguments(teacher=str(tiny_model_dir), distill_rounds=2)
    training_args = CrossEncoderTrainingArguments(output_dir=str(out), resume=True, learning_rate=1e-4)
    round_1 = out / "rounds" / "round-1"
    round_1.mkdir(parents=True)
    CrossEncoderJobResult(str(round_1), {"validation": {"spearman": 0.5}}, {}).write()
    # Round 1 as an earlier command trained it: another learning rate.
    earlier = replace(training_args, learning_rate=5e-5, output_dir=str(round_1), overwrite_output_dir=True, push_to_hub=False)
    write_fingerprint(round_1, run_fingerprint(model_args, data_args, replace(teacher_args, distill_rounds=1), earlier))
    calls = []

    def fake_train_once(model, data, teach, train, earlier_rounds=None):
        calls.append(train.output_dir)
        return CrossEncoderJobResult(train.output_dir, {}, {})

    with pytest.raises(ConfigError, match=r"--resume \(round 1\).*learning_rate: 5e-05 in the checkpoint, 0.0001 now"):
        run_rounds(model_args, data_args, teacher_args, training_args, train_once=fake_train_once)
    assert calls == []
    # The same settings: round 1 is reused and only round 2 trains.
    run_rounds(model_args, data_args, teacher_args, replace(training_args, learning_rate=5e-5), train_once=fake_train_once)
    assert calls == [str(out)]


def test_differences_name_arguments_data_and_models():
    recorded = {"arguments": {"seed": 1, "loss": "bce"}, "data": {"train_file": "aa"}, "models": {"teacher": {"hub_id": "x"}}}
    current = {"arguments": {"seed": 2, "loss": "bce"}, "data": {"train_file": "bb"}, "models": {"teacher": {"hub_id": "y"}}}
    assert differences(recorded, current) == [
        "seed: 1 in the checkpoint, 2 now",
        "train_file content differs",
        "teacher: another model (its config.json or weight files differ)",
    ]
    assert differences(recorded, recorded) == []


def test_a_soup_member_trained_from_other_data_is_not_reused(tmp_path, tiny_model_dir):
    from hf_crossenc.recipes import run_soup

    out = tmp_path / "out"
    train_file = tmp_path / "t.csv"
    train_file.write_text("sentence1,sentence2,score\na,b,0.5\n")
    model_args, data_args, teacher_args = (
        ModelArguments(model_name_or_path=str(tiny_model_dir)),
        DataArguments(train_file=str(train_file)),
        TeacherArguments(),
    )
    training_args = CrossEncoderTrainingArguments(output_dir=str(out), resume=True, soup_seeds="5,6")
    member = out / "soup" / "seed-5"
    member.mkdir(parents=True)
    CrossEncoderJobResult(str(member), {}, {}).write()
    as_run = replace(training_args, soup_seeds=None, seed=5, output_dir=str(member), overwrite_output_dir=True, push_to_hub=False)
    write_fingerprint(member, run_fingerprint(model_args, data_args, teacher_args, as_run))
    train_file.write_text("sentence1,sentence2,score\na,b,0.7\n")  # the data changed since

    def fake_train_once(*args, **kwargs):
        pytest.fail("a member trained before the soup's member was checked")

    with pytest.raises(ConfigError, match=r"--resume \(soup member seed 5\).*train_file content differs"):
        run_soup(model_args, data_args, teacher_args, training_args, train_once=fake_train_once)


def test_overwrite_keeps_what_the_run_uses_and_files_it_does_not_write(tmp_path):
    from hf_crossenc.checkpoints import clear_previous_run

    out = tmp_path / "out"
    for name in ("checkpoint-3", "rounds/round-1", "soup/seed-5", "teacher"):
        (out / name).mkdir(parents=True)
    for name in ("model.safetensors", "README.md", "results.json", FINGERPRINT_FILE, "notes.txt"):
        (out / name).write_text("x")
    args = CrossEncoderTrainingArguments(output_dir=str(out))
    removed = clear_previous_run(args, [str(out / "rounds" / "round-1"), None, "some/hub-id"], keep_teacher=True)
    assert sorted(removed) == sorted(["checkpoint-3", "soup", "model.safetensors", "README.md", "results.json", FINGERPRINT_FILE])
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "rounds", "teacher"]
