"""hf_crossenc.recipes: distillation rounds and seed soups call the single run with replaced arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_crossenc.arguments import DataArguments, ModelArguments, TeacherArguments
from hf_crossenc.commands.train import main
from hf_crossenc.recipes import run_rounds
from hf_crossenc.results import CrossEncoderJobResult
from hf_crossenc.training_args import CrossEncoderTrainingArguments


@pytest.mark.parametrize("init", ["base", "previous"])
def test_distill_init_chooses_where_round_2_starts(tmp_path, monkeypatch, init):

    calls = []

    def fake_train_once(model_args, data_args, teacher_args, training_args, earlier_rounds=None):  # records each round's arguments
        calls.append((model_args, teacher_args, training_args))
        result = CrossEncoderJobResult(training_args.output_dir, {"validation": {"spearman": 0.5}}, {})
        Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
        result.write()
        return result

    out = tmp_path / "out"
    model_args = ModelArguments(model_name_or_path="base-model", dropout=0.2)
    teacher_args = TeacherArguments(
        teacher="bi", distill_rounds=3, later_rounds_init=init, later_rounds_dropout=0.0, later_rounds_freeze_layers=2
    )
    data_args = DataArguments(train_file="t.csv")
    run_rounds(model_args, data_args, teacher_args, CrossEncoderTrainingArguments(output_dir=str(out)), train_once=fake_train_once)
    starts = [model.model_name_or_path for model, _, _ in calls]
    teachers = [teach.cross_encoder_teacher for _, teach, _ in calls]
    rounds = [str(out / "rounds" / "round-1"), str(out / "rounds" / "round-2")]
    assert teachers == [None, *rounds]
    assert starts == (["base-model"] * 3 if init == "base" else ["base-model", *rounds])
    assert [model.dropout for model, _, _ in calls] == [0.2, 0.0, 0.0]  # --later_rounds_dropout: rounds 2 and 3 only
    assert [model.freeze_layers for model, _, _ in calls] == [0, 2, 2]  # --later_rounds_freeze_layers: rounds 2 and 3 only
    assert [train.output_dir for _, _, train in calls] == [*rounds, str(out)]
    assert {teach.distill_rounds for _, teach, _ in calls} == {1}


def tiny_teacher_run(stsb_slices, tiny_model_dir) -> list[str]:
    """Flags of a one-epoch run on 24 STS-B pairs, the tiny model as both base and bi-encoder teacher."""
    flags = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    flags += ["--validation_file", str(stsb_slices["validation"]), "--teacher", str(tiny_model_dir), "--num_train_epochs", "1"]
    return flags + ["--max_train_samples", "24", "--bf16", "false", "--max_length", "32"]


def test_distill_rounds_teach_the_last_round_with_the_previous_model(tmp_path, caplog, stsb_slices, tiny_model_dir):
    import json
    import logging

    import numpy as np

    from hf_crossenc import CrossEncoderPredictor

    caplog.set_level(logging.INFO, logger="hf_crossenc")
    out = tmp_path / "out"
    flags = tiny_teacher_run(stsb_slices, tiny_model_dir) + ["--silver_pairs", "1"]
    flags += ["--distill_rounds", "2", "--later_rounds_silver_pairs", "2", "--cross_encoder_share", "0.7", "--later_rounds_epochs", "2"]
    flags += ["--output_dir", str(out)]
    assert main([*flags, "--resume", "true"]) == 2 and not out.exists()  # nothing to resume yet
    assert main(flags) == 0
    round_1 = out / "rounds" / "round-1"
    assert (round_1 / "model.safetensors").is_file() and not list(round_1.glob("checkpoint-*"))
    first = json.loads((round_1 / "results.json").read_text())["run"]
    final = json.loads((out / "results.json").read_text())
    assert first["cross_encoder_teacher"] is None and first["train_examples_per_epoch"] <= 24 * 2
    run = final["run"]
    assert run["cross_encoder_teacher"] == "round-1" and run["cross_encoder_share"] == 0.7  # results.json is published: names, no paths
    assert run["silver_pairs"] == 2 and run["train_examples_per_epoch"] > first["train_examples_per_epoch"]
    assert (first["epochs"], run["epochs"]) == (1, 2)  # --later_rounds_epochs applies to round 2 only
    assert [r["round"] for r in run["distill_rounds"]] == [1, 2]
    assert run["distill_rounds"][1]["validation"] == final["validation"]
    assert "round 2/2" in caplog.text and "cross-encoder teacher" in caplog.text
    # The teacher of round 2 really is round 1's model: its targets are 0.7 x its scores + 0.3 x the line.
    from hf_crossenc.teacher import cross_encoder_teacher

    teacher = cross_encoder_teacher(TeacherArguments(cross_encoder_teacher=str(round_1), cross_encoder_share=0.7), lambda c: c)
    pairs = [("A cat sits.", "A cat is sitting."), ("Stocks fell.", "A dog barks.")]
    expected = 0.7 * CrossEncoderPredictor.from_pretrained(round_1).predict(pairs, symmetric=True) + 0.3 * np.array([0.2, 0.4])
    got = teacher(np.array([0.2, 0.4]), [a for a, _ in pairs], [b for _, b in pairs])
    assert np.allclose(got, expected, atol=2e-2)  # the teacher scores with precision="auto" (bf16 where native)
    assert "an earlier distillation round" in (out / "README.md").read_text()
    # --resume reuses the complete first round instead of training it again.
    caplog.clear()
    assert main([*flags, "--resume", "true"]) == 0
    assert "reusing the complete round" in caplog.text
    # A crash in round 2 before its first checkpoint: --resume still reuses round 1 and trains round 2.
    import shutil

    for path in out.iterdir():
        if path.name != "rounds":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    caplog.clear()
    assert main([*flags, "--resume", "true"]) == 0
    assert "reusing the complete round" in caplog.text
    assert [r["round"] for r in json.loads((out / "results.json").read_text())["run"]["distill_rounds"]] == [1, 2]


def test_finetuned_teacher_labels_every_round_and_is_never_published(tmp_path, caplog, stsb_slices, tiny_model_dir):
    import json
    import logging

    caplog.set_level(logging.INFO, logger="hf_crossenc")

    from hf_crossenc.publish import IGNORE_PATTERNS

    out = tmp_path / "out"
    flags = tiny_teacher_run(stsb_slices, tiny_model_dir) + ["--teacher_finetune_epochs", "1"]
    flags += ["--distill_rounds", "2", "--output_dir", str(out)]
    assert main(flags) == 0
    teacher = out / "rounds" / "round-1" / "teacher"
    assert (teacher / "model.safetensors").is_file() and not (out / "teacher").exists()
    assert not list(out.glob("**/teacher.partial"))
    first = json.loads((out / "rounds" / "round-1" / "results.json").read_text())["run"]
    last = json.loads((out / "results.json").read_text())["run"]
    assert (first["teacher"], first["teacher_finetune_epochs"]) == (tiny_model_dir.name, 1)
    assert (last["teacher"], last["teacher_finetune_epochs"]) == ("teacher", 0)  # round 2 reuses round 1's
    assert "teacher/**" in IGNORE_PATTERNS
    # Both cards name the teacher by the folder the user gave (its name: no local path), with its fine-tuning, never the
    # local teacher/ folder.
    for card in (out / "README.md", out / "rounds" / "round-1" / "README.md"):
        text = card.read_text()
        assert f"bi-encoder teacher (`{tiny_model_dir.name}`, mean-pooled embeddings, first fine-tuned for 1 epoch(s)" in text
        assert str(tiny_model_dir) not in text
        assert "| `teacher_finetune_epochs` | `1.0` |" in text and str(teacher) not in text
    # One round into the same folder: the same settings reuse the teacher, other ones replace it.
    single = [*flags[: flags.index("--distill_rounds")], "--output_dir", str(tmp_path / "one"), "--overwrite_output_dir", "true"]
    assert main(single) == 0
    made = json.loads((tmp_path / "one" / "teacher" / "finetune.json").read_text())
    caplog.clear()
    assert main(single) == 0 and "reusing the fine-tuned bi-encoder teacher" in caplog.text
    assert main([*single, "--seed", "7"]) == 0 and "replacing" in caplog.text
    assert json.loads((tmp_path / "one" / "teacher" / "finetune.json").read_text()) == {**made, "seed": 7}
