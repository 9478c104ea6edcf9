"""hf_crossenc.job through the `train` command (in-process): the whole run, its failure modes and what it records."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_crossenc.commands.train import main
from hf_crossenc.errors import ConfigError


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
    assert "--model_name_or_path 'outputs/stsb-not-trained-yet' is not a folder under" in err and "Traceback" not in err
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
    assert run["train_examples_per_epoch"] > 16 + 2 and run["silver_file"] == "extra.csv"  # with --silver_pairs too
    assert f"added 2 teacher-labelled pairs from {silver}" in caplog.text

    bad = tmp_path / "bad.csv"
    bad.write_text("sentence1,sentence2\nA cat sits.,\n")
    code, err = run_main(capsys, *common, "--silver_file", str(bad), "--output_dir", str(tmp_path / "out2"))
    assert code == 2 and f"file {bad}, row 2, column 'sentence2'" in err
    assert not (tmp_path / "out2").exists()


def test_score_both_orders_is_recorded_and_used(tmp_path, stsb_slices, tiny_model_dir):
    import json

    import numpy as np

    from hf_crossenc import CrossEncoderPredictor

    out = tmp_path / "sym"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    argv += ["--validation_file", str(stsb_slices["validation"]), "--num_train_epochs", "1", "--learning_rate", "5e-4"]
    argv += ["--max_train_samples", "32", "--bf16", "false", "--max_length", "32", "--score_both_orders", "--output_dir", str(out)]
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

    from hf_crossenc.config import parse_job_arguments

    given = {(): None, ("--freeze_embeddings",): True, ("--freeze_embeddings", "false"): False, ("--freeze_embeddings", "true"): True}
    for flags, value in given.items():  # None: resolved by the task when the run starts
        assert parse_job_arguments(["--train_file", "x.csv", "--output_dir", str(tmp_path / "x"), *flags])[0].freeze_embeddings is value
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


def test_the_python_api_trains_and_returns_what_results_json_holds(tmp_path, stsb_slices, tiny_model_dir):
    import json

    from hf_crossenc import CrossEncoderJobResult, CrossEncoderTrainingArguments, DataArguments, ModelArguments, TeacherArguments, train

    out = tmp_path / "out"
    result = train(
        ModelArguments(model_name_or_path=str(tiny_model_dir), max_length=32),
        DataArguments(
            train_file=str(stsb_slices["train"]),
            validation_file=str(stsb_slices["validation"]),
            test_file=str(stsb_slices["test"]),
            label_scale="0,5",
            max_train_samples=32,
        ),
        CrossEncoderTrainingArguments(output_dir=str(out), num_train_epochs=1, bf16=False, bootstrap_resamples=0),
    )
    assert isinstance(result, CrossEncoderJobResult) and result.output_dir == str(out)
    assert result.to_dict() == json.loads((out / "results.json").read_text())
    assert set(result.metrics) == {"validation", "test"} and set(result.metrics["test"]) == {"pearson", "spearman", "n"}
    assert CrossEncoderJobResult.read(out) == result
    assert (result.run["task"], result.run["train_pairs"], result.run["train_pair_order"]) == ("regression", 32, "swap")
    with pytest.raises(ConfigError, match="needs training data"):  # the default job belongs to the command line
        train(ModelArguments(), DataArguments(), CrossEncoderTrainingArguments(output_dir=str(tmp_path / "x")), TeacherArguments())
    assert not (tmp_path / "x").exists()
