"""Nonsense argument values are refused up front (hf_crossenc.validation): every numeric and enumerated flag of every
command, before any data or model is loaded, with the flag named and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_crossenc import cli
from hf_crossenc.commands.train import main as train_main
from hf_crossenc.errors import ConfigError
from hf_crossenc.validation import RANGES, TypeMismatch, coerce_value, position_limit

PAIRS_CSV = "sentence1,sentence2,score\nA cat sits.,A cat is sitting.,4.5\nA man runs.,A woman cooks.,0.5\n"


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.csv"
    path.write_text(PAIRS_CSV)
    return path


def train_argv(pairs: Path, out: Path, *extra: str) -> list[str]:
    return ["--train_file", str(pairs), "--label_scale", "0,5", "--eval_strategy", "no", "--output_dir", str(out), *extra]


def assert_refused(code: int, err: str, flag: str, out: Path) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()


BAD_TRAINING_VALUES = [
    ("--per_device_train_batch_size", "0", "--per_device_train_batch_size must be at least 1, got 0."),
    ("--per_device_eval_batch_size", "-4", "must be at least 1"),
    ("--learning_rate", "-1e-5", "--learning_rate must be greater than 0, got -1e-05."),
    ("--learning_rate", "0", "must be greater than 0"),
    ("--learning_rate", "nan", "must be a finite number"),
    ("--num_train_epochs", "0", "--num_train_epochs must be greater than 0 (or give --max_steps), got 0."),
    ("--num_train_epochs", "-2", "must be greater than 0"),
    ("--max_steps", "0", "must be at least 1 (or -1: train --num_train_epochs)"),
    ("--max_steps", "-5", "must be at least 1"),
    ("--warmup_steps", "-0.1", "must be 0 or more"),
    ("--weight_decay", "-0.01", "must be 0 or more"),
    ("--max_grad_norm", "-1", "must be 0 or more"),
    ("--gradient_accumulation_steps", "0", "must be at least 1"),
    ("--max_length", "0", "--max_length must be at least 8, got 0."),
    ("--pad_to_multiple_of", "-8", "must be 0 or more"),
    ("--dropout", "1", "--dropout must lie in [0, 1), got 1."),
    ("--dropout", "-0.1", "must lie in [0, 1)"),
    ("--freeze_layers", "-1", "must be 0 or more"),
    ("--logging_steps", "0", "must be greater than 0"),
    ("--save_total_limit", "0", "must be at least 1"),
    ("--seed", "-1", "--seed must lie in [0, 4294967295], got -1."),
    ("--train_group_size", "1", "must be at least 2"),
    ("--teacher_temperature", "0", "must be greater than 0"),
    ("--teacher_weight", "1.5", "--teacher_weight must lie in [0, 1], got 1.5."),
    ("--cross_encoder_share", "-0.1", "must lie in [0, 1]"),
    ("--bootstrap_resamples", "-1", "--bootstrap_resamples must be 0 or more (0 = no intervals), got -1."),
    ("--cpu_threads", "0", "must be at least 1"),
    ("--cpu_kernel_cache", "-1", "must be 0 or more"),
    ("--recompute_above_tokens", "-1", "must be 0 or more"),
    ("--max_train_samples", "0", "--max_train_samples must be at least 1, got 0."),
    ("--max_eval_samples", "-3", "must be at least 1"),
    ("--silver_pairs", "-1", "must be 0 or more"),
    ("--distill_rounds", "0", "must be at least 1"),
    ("--later_rounds_silver_pairs", "-1", "must be 0 or more"),
    ("--later_rounds_epochs", "0", "must be greater than 0"),
    ("--later_rounds_dropout", "1.5", "must lie in [0, 1)"),
    ("--later_rounds_freeze_layers", "-2", "must be 0 or more"),
    ("--teacher_finetune_epochs", "-1", "must be 0 or more"),
]


@pytest.mark.parametrize(("flag", "value", "message"), BAD_TRAINING_VALUES, ids=[f"{f}={v}" for f, v, _ in BAD_TRAINING_VALUES])
def test_a_bad_training_value_exits_2_naming_the_flag_and_writes_nothing(flag, value, message, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    code = train_main(train_argv(pairs, out, f"{flag}={value}"))  # "=": argparse reads -1e-5 alone as a flag
    err = capsys.readouterr().err
    assert_refused(code, err, flag, out)
    assert message in err


def test_the_table_covers_the_numeric_flags_users_set():
    table_test = {flag.removeprefix("--") for flag, _, _ in BAD_TRAINING_VALUES}
    assert table_test <= set(RANGES)
    steps = {"eval_steps", "save_steps", "adam_beta1", "adam_beta2", "adam_epsilon", "data_seed", "eval_accumulation_steps"}
    assert steps <= set(RANGES)


def test_zero_epochs_are_allowed_with_max_steps():
    from hf_crossenc.config import parse_job_arguments

    *_, training_args = parse_job_arguments(["--train_file", "t.csv", "--num_train_epochs", "0", "--max_steps", "5"])
    assert (training_args.num_train_epochs, training_args.max_steps) == (0, 5)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("learning_rate: fast\n", "learning_rate must be a number, got 'fast'."),
        ("num_train_epochs: [1]\n", "num_train_epochs must be a number, got [1]."),
        ("per_device_train_batch_size: true\n", "per_device_train_batch_size must be a whole number, got True."),
        ("per_device_train_batch_size: 2.5\n", "per_device_train_batch_size must be a whole number, got 2.5."),
        ("max_length: {a: 1}\n", "max_length must be a whole number, got {'a': 1}."),
        ("overwrite_output_dir: maybe\n", "overwrite_output_dir must be true or false, got 'maybe'."),
        ("label_scale: [0, 5]\n", "label_scale must be a string, got [0, 5]."),
        ("positive_label: yes\n", "positive_label must be a string (quote it in YAML), got True."),
        ("train_pair_order: sideways\n", "train_pair_order must be one of swap, both, none, got 'sideways'."),
        ("task: ranking\n", "task must be one of regression, classification, reranking, got 'ranking'."),
        ("learning_rate: -1\n", "--learning_rate must be greater than 0, got -1."),
    ],
)
def test_a_config_value_of_the_wrong_type_exits_2_naming_file_and_key(yaml_text, message, pairs, tmp_path, capsys):
    config = tmp_path / "job.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "out"
    code = train_main(["--config", str(config), *train_argv(pairs, out)])
    err = capsys.readouterr().err
    assert_refused(code, err, message.split()[0], out)
    assert message in err
    if not message.startswith("--"):
        assert f"config file {config}: " in err


def test_config_values_are_converted_as_the_command_line_would():
    from hf_crossenc.config import build_parser, typed_values

    values = {
        "learning_rate": "8e-5",  # YAML 1.1 reads 8e-5 (no dot) as a string
        "num_train_epochs": 2,
        "per_device_train_batch_size": 32.0,
        "positive_label": 1,
        "overwrite_output_dir": "yes",
        "report_to": "tensorboard",
        "max_eval_samples": None,
    }
    typed = typed_values(values, "c.yaml", build_parser())
    assert typed == {
        "learning_rate": 8e-5,
        "num_train_epochs": 2.0,
        "per_device_train_batch_size": 32,
        "positive_label": "1",
        "overwrite_output_dir": True,
        "report_to": "tensorboard",
        "max_eval_samples": None,
    }
    assert type(typed["per_device_train_batch_size"]) is int and type(typed["num_train_epochs"]) is float


def test_coerce_value_by_type():
    assert coerce_value("3", int) == 3 and coerce_value(["a", 1], list[str]) == ["a", "1"]
    assert coerce_value(None, int | None) is None and coerce_value([1], None | str | list[str]) == ["1"]
    for value, hint in ((True, int), ("x", float), (None, float), ([1], str), (2, bool), ("x", dict)):
        with pytest.raises(TypeMismatch):
            coerce_value(value, hint)


def test_max_length_beyond_the_models_position_table_exits_2_before_the_weights_load(tiny_model_dir, pairs, tmp_path, capsys, monkeypatch):
    from hf_crossenc import job

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(job, "load_model", no_weights)
    monkeypatch.setattr(job, "load_tokenizer", no_weights)
    out = tmp_path / "out"
    code = train_main(train_argv(pairs, out, "--model_name_or_path", str(tiny_model_dir), "--max_length", "256"))
    err = capsys.readouterr().err
    assert_refused(code, err, "--max_length", out)
    assert "--max_length 256 is more than the base model" in err and "holds 128 tokens; use --max_length 128 or less" in err


def test_position_limit_leaves_out_the_padding_offset_of_roberta_style_models():
    from transformers import BertConfig, DebertaV2Config, RobertaConfig

    assert position_limit(BertConfig(max_position_embeddings=128)) == 128
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None  # relative positions: no table


def test_the_python_api_raises_config_error_before_reading_data(tmp_path):
    from hf_crossenc import CrossEncoderTrainingArguments, DataArguments, ModelArguments, train

    missing = str(tmp_path / "missing.csv")  # read after the checks: a DataError would mean they came too late
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="--max_length must be at least 8, got 2."):
        train(ModelArguments(max_length=2), DataArguments(train_file=missing), CrossEncoderTrainingArguments(output_dir=str(out)))
    args = CrossEncoderTrainingArguments(output_dir=str(out), eval_strategy="no")
    args.learning_rate = -1.0  # changed after construction: train() checks again
    with pytest.raises(ConfigError, match="--learning_rate must be greater than 0, got -1."):
        train(ModelArguments(), DataArguments(train_file=missing), args)
    with pytest.raises(ConfigError, match="--num_train_epochs must be greater than 0"):
        CrossEncoderTrainingArguments(output_dir=str(out), num_train_epochs=0)
    with pytest.raises(ConfigError, match="--per_device_train_batch_size must be a whole number, got '8'."):
        CrossEncoderTrainingArguments(output_dir=str(out), per_device_train_batch_size="8")
    with pytest.raises(ConfigError, match="--train_sampling_strategy must be one of"):
        CrossEncoderTrainingArguments(output_dir=str(out), train_sampling_strategy="shuffled")
    with pytest.raises(ConfigError, match="invalid arguments: .*fp16 and bf16"):  # transformers' own refusal
        CrossEncoderTrainingArguments(output_dir=str(out), fp16=True, bf16=True)
    assert not out.exists()


BAD_COMMAND_VALUES = [
    (["evaluate", "m", "d.csv", "--batch_size", "0"], "--batch_size"),
    (["evaluate", "m", "d.csv", "--bootstrap", "-1"], "--bootstrap"),
    (["evaluate", "m", "d.csv", "--level", "1.5"], "--level"),
    (["evaluate", "m", "d.csv", "--level", "0"], "--level"),
    (["evaluate", "m", "d.csv", "--cpu_kernel_cache", "-1"], "--cpu_kernel_cache"),
    (["predict", "m", "--pair", "a", "b", "--batch_size", "0"], "--batch_size"),
    (["predict", "m", "--pair", "a", "b", "--batch_size", "many"], "--batch_size"),
    (["rank", "m", "--query", "q", "--passage", "p", "--top_k", "0"], "--top_k"),
    (["rank", "m", "--query", "q", "--passage", "p", "--batch_size", "-2"], "--batch_size"),
    (["mine", "in.csv", "--output", "o.csv", "--num_negatives", "0"], "--num_negatives"),
    (["mine", "in.csv", "--output", "o.csv", "--range_min", "-1"], "--range_min"),
    (["mine", "in.csv", "--output", "o.csv", "--range_max", "0"], "--range_max"),
    (["mine", "in.csv", "--output", "o.csv", "--batch_size", "0"], "--batch_size"),
    (["mine", "in.csv", "--output", "o.csv", "--max_length", "0"], "--max_length"),
    (["mine", "in.csv", "--output", "o.csv", "--margin", "nan"], "--margin"),
    (["mine", "in.csv", "--output", "o.csv", "--max_score", "inf"], "--max_score"),
    (["search", "--output_root", "r", "--seeds", "42,-1"], "--seeds"),
    (["search", "--output_root", "r", "--seeds", "42,x"], "--seeds"),
    (["publish", "d", "--repo-id", "a/b", "--max-attempts", "0"], "--max-attempts"),
    (["publish", "d", "--repo-id", "a/b", "--retry-backoff", "-1"], "--retry-backoff"),
    (["data", "fetch", "sts"], "name"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD_COMMAND_VALUES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_COMMAND_VALUES])
def test_a_bad_number_of_another_command_exits_2_from_argparse_naming_the_flag(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:  # argparse: before the command runs, so nothing is loaded
        cli.main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "o.csv").exists()


def test_search_grid_values_are_checked_against_the_training_ranges():
    from hf_crossenc.search import check_grid_keys

    with pytest.raises(
        ConfigError, match=r"--grid per_device_train_batch_size=0: --per_device_train_batch_size must be at least 1, got 0\."
    ):
        check_grid_keys([{"per_device_train_batch_size": "16"}, {"per_device_train_batch_size": "0"}])
    with pytest.raises(ConfigError, match="--learning_rate must be greater than 0"):
        check_grid_keys([{"learning_rate": "-1e-5"}])
    assert check_grid_keys([{"learning_rate": "3e-5"}]) == [{"learning_rate": "3e-5"}]
