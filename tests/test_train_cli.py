"""scripts/train.py argument handling and its failure modes (in-process, no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_crossenc.errors import ConfigError
from hf_crossenc.training import main, parse_args


def test_config_file_with_cli_override(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("num_train_epochs: 3\nlearning_rate: 1.0e-4\nlabel_scale: '0,5'\nbf16: false\n")
    model_args, data_args, args = parse_args(["--config", str(config), "--learning_rate", "2e-4", "--output_dir", "o"])
    assert args.num_train_epochs == 3
    assert args.learning_rate == pytest.approx(2e-4)
    assert data_args.label_scale == "0,5"
    assert args.bf16 is False
    assert model_args.max_length == 128


def test_config_typo_names_closest_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("learning_rat: 1.0e-4\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rat'.*Did you mean 'learning_rate'"):
        parse_args(["--config", str(config)])


def test_help_lists_config_and_a_config_cannot_name_another(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    assert "--config CONFIG" in capsys.readouterr().out
    config = tmp_path / "c.yaml"
    config.write_text(f"config: {tmp_path / 'other.yaml'}\n")
    with pytest.raises(ConfigError, match="unknown key 'config'"):
        parse_args(["--config", str(config)])


def run_main(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_bad_data_exits_2_and_writes_nothing(tmp_path, capsys, stsb_slices):
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence1,sentence2,similarity_score\na,b,3.0\nc,d,oops\n")
    out = tmp_path / "out"
    code, err = run_main(
        capsys,
        "--train_file",
        str(bad),
        "--validation_file",
        str(stsb_slices["validation"]),
        "--label_scale",
        "0,5",
        "--output_dir",
        str(out),
    )
    assert code == 2
    assert f"file {bad}, row 3, column 'similarity_score'" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_base_model_that_is_neither_a_folder_nor_loadable_exits_2(tmp_path, capsys, monkeypatch, stsb_slices):
    """A two-stage recipe run before its first stage: `outputs/<name>` does not exist yet and reads as a Hub id."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = ["--model_name_or_path", "outputs/stsb-not-trained-yet", "--train_file", str(stsb_slices["train"])]
    code, err = run_main(capsys, *argv, "--label_scale", "0,5", "--output_dir", str(out))
    assert code == 2
    assert "base model 'outputs/stsb-not-trained-yet' is not a folder under" in err and "Traceback" not in err
    assert not out.exists()


def test_unscaled_sts_labels_are_refused(tmp_path, capsys, stsb_slices):
    """The tutorial's bug (0–5 labels into BCE) cannot happen: without a scale it is an error."""
    out = tmp_path / "out"
    code, err = run_main(capsys, "--train_file", str(stsb_slices["train"]), "--output_dir", str(out))
    assert code == 2
    assert "outside the label scale [0, 1]" in err and "--label_scale 0,5" in err
    assert not out.exists()


def test_non_empty_output_dir_is_refused(tmp_path, capsys, stsb_slices):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, err = run_main(capsys, "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5", "--output_dir", str(out))
    assert code == 2 and "--overwrite_output_dir" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_missing_base_model_path(tmp_path, capsys, stsb_slices):
    out = tmp_path / "out"
    code, err = run_main(
        capsys,
        "--train_file",
        str(stsb_slices["train"]),
        "--validation_file",
        str(stsb_slices["validation"]),
        "--label_scale",
        "0,5",
        "--model_name_or_path",
        "./no/such/model",
        "--output_dir",
        str(out),
    )
    assert code == 2 and "does not exist" in err
    assert not out.exists()


def test_default_job_is_stsb_from_shared_data(tmp_path, capsys, monkeypatch):
    """With no data flags the job reads ../shared/data/stsb relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, "--output_dir", str(tmp_path / "out"))
    assert code == 2
    assert str(Path("..") / "shared" / "data" / "stsb" / "train.csv") in err and "file not found" in err


@pytest.mark.parametrize("case", range(len(__import__("test_data").BAD_INPUTS)))
def test_every_bad_input_exits_2_from_the_script_without_output(case, tmp_path, capsys, stsb_slices):
    """The data-level bad-input matrix, end to end through scripts/train.py's main()."""
    from test_data import BAD_INPUTS, write

    name, content, scale, fragment, row, column = BAD_INPUTS[case]
    bad = write(tmp_path, name, content)
    out = tmp_path / "out"
    args = ["--train_file", str(bad), "--validation_file", str(stsb_slices["validation"]), "--output_dir", str(out)]
    if scale:
        args += ["--label_scale", scale]
    code, err = run_main(capsys, *args)
    assert code == 2
    assert fragment in err and str(bad) in err
    if row is not None:
        assert f"row {row}" in err
    if column is not None:
        assert f"column {column!r}" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_default_job_and_teacher_defaults():
    from hf_crossenc.training import BUNDLED_MODEL, DataArguments, apply_defaults

    default_job = DataArguments()
    apply_defaults(default_job)
    assert default_job.label_scale == "0,5" and default_job.train_file.endswith("train.csv")
    assert (default_job.teacher, default_job.teacher_weight, default_job.silver_pairs) == (BUNDLED_MODEL, 0.5, 1)
    assert default_job.teacher_finetune_epochs == 2.0

    no_teacher = DataArguments(teacher_weight=0.0)  # the default job without its teacher: nothing to fine-tune
    apply_defaults(no_teacher)
    assert (no_teacher.teacher, no_teacher.silver_pairs, no_teacher.teacher_finetune_epochs) == (None, 0, 0.0)

    own_data = DataArguments(train_file="pairs.csv")
    apply_defaults(own_data)
    assert (own_data.teacher, own_data.teacher_weight, own_data.silver_pairs) == (None, 0.0, 0)
    assert own_data.teacher_finetune_epochs == 0.0

    with_teacher = DataArguments(train_file="pairs.csv", teacher="some/bi-encoder")
    apply_defaults(with_teacher)
    assert with_teacher.teacher_weight == 0.5

    for bad in (DataArguments(train_file="p.csv", silver_pairs=2), DataArguments(train_file="p.csv", teacher_weight=0.3),
                DataArguments(train_file="p.csv", teacher="t", teacher_weight=1.5)):  # fmt: skip
        with pytest.raises(ConfigError):
            apply_defaults(bad)


def test_silver_file_pairs_are_labelled_by_the_teacher(tmp_path, capsys, caplog, stsb_slices, tiny_model_dir):
    import json
    import logging

    caplog.set_level(logging.INFO, logger="hf_crossenc")
    silver = tmp_path / "extra.csv"
    silver.write_text("sentence1,sentence2,label\nA cat sits.,A cat is sitting.,1\nStocks fell.,A dog barks.,0\n")
    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    common += ["--validation_file", str(stsb_slices["validation"]), "--teacher", str(tiny_model_dir), "--num_train_epochs", "1"]
    common += ["--max_train_samples", "16", "--bf16", "false", "--max_length", "32"]
    out = tmp_path / "out"
    assert main([*common, "--silver_file", str(silver), "--silver_pairs", "1", "--output_dir", str(out)]) == 0
    run = json.loads((out / "results.json").read_text())["run"]
    assert run["train_examples_per_epoch"] > 16 + 2 and run["silver_file"] == str(silver)  # with --silver_pairs too
    assert f"added 2 teacher-labelled pairs from {silver}" in caplog.text

    bad = tmp_path / "bad.csv"
    bad.write_text("sentence1,sentence2\nA cat sits.,\n")
    code, err = run_main(capsys, *common, "--silver_file", str(bad), "--output_dir", str(tmp_path / "out2"))
    assert code == 2 and f"file {bad}, row 2, column 'sentence2'" in err
    assert not (tmp_path / "out2").exists()


def test_symmetric_inference_is_recorded_and_used(tmp_path, stsb_slices, tiny_model_dir):
    import json

    import numpy as np

    from hf_crossenc import CrossEncoderPredictor

    out = tmp_path / "sym"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    argv += ["--validation_file", str(stsb_slices["validation"]), "--num_train_epochs", "1", "--learning_rate", "5e-4"]
    argv += ["--max_train_samples", "32", "--bf16", "false", "--max_length", "32", "--symmetric_inference", "--output_dir", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["hf_crossenc"]["symmetric"] is True
    predictor = CrossEncoderPredictor.from_pretrained(out)
    pairs = [("A man eats.", "Someone is eating food."), ("The sky is blue.", "A dog runs in the park.")]
    np.testing.assert_allclose(predictor.predict(pairs), predictor.predict(pairs, symmetric=True))
    one_order = predictor.predict(pairs, symmetric=False)
    flipped = predictor.predict([(b, a) for a, b in pairs], symmetric=False)
    np.testing.assert_allclose(predictor.predict(pairs), (one_order + flipped) / 2, atol=1e-7)
    assert not np.array_equal(one_order, predictor.predict(pairs))
    results = json.loads((out / "results.json").read_text())
    import csv

    with open(stsb_slices["validation"], newline="") as f:
        rows = list(csv.DictReader(f))
    from hf_crossenc.metrics import correlation_metrics

    scores = predictor.predict([(r["sentence1"], r["sentence2"]) for r in rows])
    assert results["validation"]["spearman"] == pytest.approx(
        correlation_metrics(scores, [float(r["similarity_score"]) for r in rows])["spearman"]
    )
    assert "Symmetric scoring is on" in (out / "README.md").read_text()


def test_dropout_override_trains_with_it_but_saves_the_base_models_dropout(tmp_path, stsb_slices, tiny_model_dir):
    import json

    import torch

    from hf_crossenc.modeling import config_as_loaded, load_model_for_training

    base = json.loads((tiny_model_dir / "config.json").read_text())
    assert base["hidden_dropout_prob"] > 0
    model = load_model_for_training(str(tiny_model_dir), dropout=0.0)
    assert model.config.hidden_dropout_prob == 0.0  # what training sees ...
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    with config_as_loaded(model):  # ... and what a save writes
        assert model.config.hidden_dropout_prob == base["hidden_dropout_prob"]
    assert model.config.hidden_dropout_prob == 0.0

    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    argv += ["--validation_file", str(stsb_slices["validation"]), "--num_train_epochs", "1", "--max_train_samples", "16"]
    argv += ["--bf16", "false", "--max_length", "32", "--dropout", "0", "--output_dir", str(out)]
    assert main(argv) == 0
    for folder in [out, *out.glob("checkpoint-*")]:
        saved = json.loads((folder / "config.json").read_text())
        assert (saved["hidden_dropout_prob"], saved["attention_probs_dropout_prob"]) == (
            base["hidden_dropout_prob"],
            base["attention_probs_dropout_prob"],
        )
    assert "| `dropout` | `0.0` |" in (out / "README.md").read_text()  # the card records the training setting


def test_freeze_layers_stops_backpropagation_above_them(tiny_model_dir):
    import torch

    from hf_crossenc.errors import ConfigError
    from hf_crossenc.modeling import encoder_layers, freeze, load_model_for_training

    model = load_model_for_training(str(tiny_model_dir))
    freeze(model, embeddings=True)  # the word-embedding matrix only: the gradient still reaches the positions
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.base_model.embeddings.position_embeddings.weight.requires_grad
    assert all(p.requires_grad for p in encoder_layers(model).parameters())

    model = load_model_for_training(str(tiny_model_dir))
    stack = encoder_layers(model)
    assert len(stack) == 2 and stack is model.bert.encoder.layer
    freeze(model, layers=1)
    outputs = {}
    stack[0].register_forward_hook(lambda module, args, out: outputs.setdefault(0, out[0] if isinstance(out, tuple) else out))
    batch = {"input_ids": torch.tensor([[2, 5, 6, 3, 7, 8, 3]]), "labels": torch.tensor([0.5])}
    logits = model(input_ids=batch["input_ids"]).logits
    torch.nn.functional.mse_loss(logits.squeeze(-1), batch["labels"]).backward()
    assert not outputs[0].requires_grad  # nothing below layer 2 is on the backward graph
    frozen = [*model.base_model.embeddings.parameters(), *stack[0].parameters()]
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stack[1].parameters() if p.dim() > 1)
    assert model.classifier.weight.grad is not None
    for bad in (3, -1):
        with pytest.raises(ConfigError, match="transformer layers"):
            freeze(load_model_for_training(str(tiny_model_dir)), layers=bad)


def test_freeze_layers_keeps_their_weights_and_is_recorded(tmp_path, stsb_slices, tiny_model_dir):
    import json

    from safetensors.torch import load_file

    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    argv += ["--num_train_epochs", "1", "--max_train_samples", "16", "--per_device_train_batch_size", "4", "--bf16", "false"]
    argv += ["--max_length", "32", "--learning_rate", "1e-3", "--eval_strategy", "no", "--load_best_model_at_end", "false"]
    argv += ["--freeze_layers", "1", "--output_dir", str(out)]
    assert main([*argv[:-2], "--freeze_layers", "-1", "--output_dir", str(out)]) == 2 and not out.exists()
    assert main(argv) == 0
    base, trained = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    fixed = [name for name in trained if ".embeddings." in name or ".layer.0." in name]
    moved = [name for name in trained if ".layer.1." in name and name.endswith("weight")]
    assert fixed and moved
    assert all(torch_equal(trained[name], base[name.removeprefix("bert.")]) for name in fixed)
    assert not any(torch_equal(trained[name], base[name.removeprefix("bert.")]) for name in moved)
    run = json.loads((out / "results.json").read_text())["run"]
    assert (run["freeze_layers"], run["freeze_embeddings"]) == (1, True)  # the word embeddings: the regression default
    card = (out / "README.md").read_text()
    assert "| `freeze_layers` | `1` |" in card and "| `freeze_embeddings` | `True` |" in card


def test_freeze_embeddings_default_follows_the_task_and_a_flag_overrides_it(tmp_path, stsb_slices, tiny_model_dir):
    import json

    from safetensors.torch import load_file

    from hf_crossenc.training import default_freeze_embeddings, parse_args

    assert [default_freeze_embeddings(t) for t in ("regression", "reranking", "classification")] == [True, True, False]
    given = {(): None, ("--freeze_embeddings",): True, ("--freeze_embeddings", "false"): False, ("--freeze_embeddings", "true"): True}
    for flags, value in given.items():  # None: resolved by the task when the run starts
        assert parse_args(["--train_file", "x.csv", "--output_dir", str(tmp_path / "x"), *flags])[0].freeze_embeddings is value
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    argv += ["--num_train_epochs", "1", "--max_train_samples", "16", "--per_device_train_batch_size", "4", "--bf16", "false"]
    argv += ["--max_length", "32", "--learning_rate", "1e-3", "--eval_strategy", "no", "--load_best_model_at_end", "false"]
    assert main([*argv, "--freeze_embeddings", "false", "--output_dir", str(out)]) == 0
    name = "embeddings.word_embeddings.weight"
    assert not torch_equal(
        load_file(str(out / "model.safetensors"))["bert." + name], load_file(str(tiny_model_dir / "model.safetensors"))[name]
    )
    assert json.loads((out / "results.json").read_text())["run"]["freeze_embeddings"] is False
    assert "| `freeze_embeddings` |" not in (out / "README.md").read_text()  # the card lists it only when the matrix was fixed


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


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
    flags += ["--distill_rounds", "2", "--distill_silver_pairs", "2", "--cross_encoder_teacher_weight", "0.7", "--distill_epochs", "2"]
    flags += ["--output_dir", str(out)]
    assert main([*flags, "--resume", "true"]) == 2 and not out.exists()  # nothing to resume yet
    assert main(flags) == 0
    round_1 = out / "rounds" / "round-1"
    assert (round_1 / "model.safetensors").is_file() and not list(round_1.glob("checkpoint-*"))
    first = json.loads((round_1 / "results.json").read_text())["run"]
    final = json.loads((out / "results.json").read_text())
    assert first["cross_encoder_teacher"] is None and first["train_examples_per_epoch"] <= 24 * 2
    run = final["run"]
    assert run["cross_encoder_teacher"] == str(round_1) and run["cross_encoder_teacher_weight"] == 0.7
    assert run["silver_pairs"] == 2 and run["train_examples_per_epoch"] > first["train_examples_per_epoch"]
    assert (first["epochs"], run["epochs"]) == (1, 2)  # --distill_epochs applies to round 2 only
    assert [r["round"] for r in run["distill_rounds"]] == [1, 2]
    assert run["distill_rounds"][1]["validation"] == final["validation"]
    assert "round 2/2" in caplog.text and "cross-encoder teacher" in caplog.text
    # The teacher of round 2 really is round 1's model: its targets are 0.7 x its scores + 0.3 x the line.
    from hf_crossenc.training import DataArguments, cross_encoder_teacher

    teacher = cross_encoder_teacher(DataArguments(cross_encoder_teacher=str(round_1), cross_encoder_teacher_weight=0.7), lambda c: c)
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
    assert (first["teacher"], first["teacher_finetune_epochs"]) == (str(tiny_model_dir), 1)
    assert (last["teacher"], last["teacher_finetune_epochs"]) == (str(teacher), 0)  # round 2 reuses round 1's
    assert "teacher/**" in IGNORE_PATTERNS
    # Both cards name the teacher as the user gave it, with its fine-tuning, never the local teacher/ folder.
    for card in (out / "README.md", out / "rounds" / "round-1" / "README.md"):
        text = card.read_text()
        assert f"bi-encoder teacher (`{tiny_model_dir}`, mean-pooled embeddings, first fine-tuned for 1 epoch(s)" in text
        assert "| `teacher_finetune_epochs` | `1.0` |" in text and str(teacher) not in text
    # One round into the same folder: the same settings reuse the teacher, other ones replace it.
    single = [*flags[: flags.index("--distill_rounds")], "--output_dir", str(tmp_path / "one"), "--overwrite_output_dir", "true"]
    assert main(single) == 0
    made = json.loads((tmp_path / "one" / "teacher" / "finetune.json").read_text())
    caplog.clear()
    assert main(single) == 0 and "reusing the fine-tuned bi-encoder teacher" in caplog.text
    assert main([*single, "--seed", "7"]) == 0 and "replacing" in caplog.text
    assert json.loads((tmp_path / "one" / "teacher" / "finetune.json").read_text()) == {**made, "seed": 7}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--teacher_finetune_epochs", "-1"], "must be 0 or more"),
        (["--teacher_finetune_epochs", "1", "--teacher_weight", "0", "--silver_pairs", "0"], "needs --task regression"),
    ],
)
def test_teacher_finetune_epochs_is_checked(extra, message):
    from hf_crossenc.training import apply_defaults

    _, data_args, _ = parse_args(["--train_file", "t.csv", "--teacher", "bundled:all-MiniLM-L6-v2", *extra])
    with pytest.raises(ConfigError, match=message):
        apply_defaults(data_args)


def test_teacher_finetune_epochs_applies_to_similarity_and_reranking_only():
    from hf_crossenc.training import apply_defaults

    flags = ["--train_file", "t.csv", "--teacher", "bundled:all-MiniLM-L6-v2", "--teacher_finetune_epochs", "1"]
    for task in ("regression", "reranking"):
        _, data_args, _ = parse_args(flags)
        apply_defaults(data_args, task)
        assert data_args.teacher_finetune_epochs == 1.0
    _, data_args, _ = parse_args(flags)
    with pytest.raises(ConfigError, match="needs --task regression or reranking"):
        apply_defaults(data_args, "classification")


@pytest.mark.parametrize("init", ["base", "previous"])
def test_distill_init_chooses_where_round_2_starts(tmp_path, monkeypatch, init):
    import json

    from hf_crossenc import training

    calls = []

    def last(flags, name):  # the value of the flag's last occurrence, the one the parser keeps
        return flags[len(flags) - flags[::-1].index(name)]

    def fake_run(flags, earlier_rounds=None):  # records what each round would train with
        calls.append(flags)
        folder = Path(last(flags, "--output_dir"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps({"validation": {"spearman": 0.5}, "run": {}}))
        return {"validation": {"spearman": 0.5}, "run": {}}

    monkeypatch.setattr(training, "run", fake_run)
    out = tmp_path / "out"
    argv = ["--model_name_or_path", "base-model", "--train_file", "t.csv", "--teacher", "bi", "--output_dir", str(out)]
    data_args = training.DataArguments(
        train_file="t.csv", teacher="bi", distill_rounds=3, distill_init=init, distill_dropout=0.0, distill_freeze_layers=2
    )
    training.run_rounds([*argv, "--dropout", "0.2"], data_args, training.CrossEncoderTrainingArguments(output_dir=str(out)))
    starts = [last(flags, "--model_name_or_path") for flags in calls]
    teachers = [last(flags, "--cross_encoder_teacher") if "--cross_encoder_teacher" in flags else None for flags in calls]
    rounds = [str(out / "rounds" / "round-1"), str(out / "rounds" / "round-2")]
    assert teachers == [None, *rounds]
    assert starts == (["base-model"] * 3 if init == "base" else ["base-model", *rounds])
    assert [last(flags, "--dropout") for flags in calls] == ["0.2", "0.0", "0.0"]  # --distill_dropout: rounds 2 and 3 only
    frozen = [last(flags, "--freeze_layers") if "--freeze_layers" in flags else None for flags in calls]
    assert frozen == [None, "2", "2"]  # --distill_freeze_layers: rounds 2 and 3 only


def test_distill_rounds_need_a_bi_encoder_teacher():
    from hf_crossenc.training import DataArguments, apply_defaults

    for bad in (DataArguments(train_file="p.csv", distill_rounds=2), DataArguments(train_file="p.csv", cross_encoder_teacher="m"),
                DataArguments(train_file="p.csv", teacher="t", distill_rounds=0),
                DataArguments(train_file="p.csv", teacher="t", distill_rounds=2, distill_epochs=0),
                DataArguments(train_file="p.csv", teacher="t", distill_rounds=2, distill_dropout=1.0)):  # fmt: skip
        with pytest.raises(ConfigError):
            apply_defaults(bad)
    # A reranker teacher joins listwise groups' targets; pointwise reranking and classification have no use for it.
    reranking = dict(train_file="p.csv", teacher="t", cross_encoder_teacher="m")
    apply_defaults(DataArguments(**reranking), "reranking", "listwise")
    for task, loss in (("reranking", "bce"), ("classification", "bce")):
        with pytest.raises(ConfigError, match="--cross_encoder_teacher"):
            apply_defaults(DataArguments(**reranking), task, loss)
    with pytest.raises(ConfigError, match="--distill_rounds"):
        apply_defaults(DataArguments(**reranking, distill_rounds=2), "reranking", "listwise")


def test_no_flags_is_the_tuned_default_job():
    """With no --config and no data, the defaults are configs/stsb.yaml's recipe; flags still override it."""
    import yaml

    shipped = yaml.safe_load((Path(__file__).parents[1] / "configs" / "stsb.yaml").read_text(encoding="utf-8"))
    from hf_crossenc.training import apply_defaults

    model_args, data_args, args = parse_args(["--learning_rate", "3e-5"])
    apply_defaults(data_args)
    parsed = {**vars(model_args), **vars(data_args), **args.to_dict()}
    paths = {"model_name_or_path", "train_file", "validation_file", "test_file", "label_scale", "output_dir"}
    recipe = {key: value for key, value in shipped.items() if key not in paths}
    assert recipe.pop("learning_rate") == pytest.approx(8e-5)
    assert {key: parsed[key] for key in recipe} == recipe
    assert args.learning_rate == pytest.approx(3e-5) and data_args.distill_rounds == 2
    _, no_teacher, _ = parse_args(["--teacher_weight", "0", "--distill_rounds", "1"])
    apply_defaults(no_teacher)
    assert (no_teacher.teacher, no_teacher.silver_pairs) == (None, 0)


def test_own_data_keeps_the_generic_defaults(tmp_path):
    _, data_args, args = parse_args(["--train_file", str(tmp_path / "t.csv")])
    assert (data_args.teacher, data_args.distill_rounds, args.per_device_train_batch_size) == (None, 1, 16)
    assert args.learning_rate == pytest.approx(5e-5) and args.num_train_epochs == 3


@pytest.mark.parametrize("flag", ["--train_file", "--train-file", "--dataset_name", "--dataset-name"])
def test_own_data_in_any_spelling_skips_the_default_job(flag):
    from hf_crossenc.training import parse_args

    _, data_args, training_args = parse_args([flag, "pairs.csv", "--output_dir", "out"])
    assert data_args.distill_rounds == 1 and training_args.learning_rate == 5e-5  # not the STS-B job's 2 / 8e-5
