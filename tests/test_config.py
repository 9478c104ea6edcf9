"""hf_crossenc.config: YAML config + command line -> the job's argument dataclasses; the default job; renamed flags."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hf_crossenc.config import default_recipe_path, parse_job_arguments
from hf_crossenc.errors import ConfigError
from hf_crossenc.modeling import BUNDLED_MODEL


def test_config_file_with_cli_override(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("num_train_epochs: 3\nlearning_rate: 1.0e-4\nlabel_scale: '0,5'\nbf16: false\n")
    model_args, data_args, _, args = parse_job_arguments(["--config", str(config), "--learning_rate", "2e-4", "--output_dir", "o"])
    assert args.num_train_epochs == 3
    assert args.learning_rate == pytest.approx(2e-4)
    assert data_args.label_scale == "0,5"
    assert args.bf16 is False
    assert model_args.max_length == 128


def test_config_typo_names_closest_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("learning_rat: 1.0e-4\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rat'.*Did you mean 'learning_rate'"):
        parse_job_arguments(["--config", str(config)])


def test_help_lists_config_and_a_config_cannot_name_another(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_job_arguments(["--help"])
    assert exit_info.value.code == 0
    assert "--config CONFIG" in capsys.readouterr().out
    config = tmp_path / "c.yaml"
    config.write_text(f"config: {tmp_path / 'other.yaml'}\n")
    with pytest.raises(ConfigError, match="unknown key 'config'"):
        parse_job_arguments(["--config", str(config)])


def test_no_flags_is_the_tuned_default_job():
    """With no --config and no data, the defaults are configs/stsb.yaml's recipe; flags still override it."""
    import yaml

    shipped = yaml.safe_load((Path(__file__).parents[1] / "configs" / "stsb.yaml").read_text(encoding="utf-8"))
    model_args, data_args, teacher_args, args = parse_job_arguments(["--learning_rate", "3e-5"])
    parsed = {**vars(model_args), **vars(data_args), **vars(teacher_args), **args.to_dict()}
    paths = {"model_name_or_path", "train_file", "validation_file", "test_file", "label_scale", "output_dir"}
    recipe = {key: value for key, value in shipped.items() if key not in paths}
    assert recipe.pop("learning_rate") == pytest.approx(8e-5)
    assert {key: parsed[key] for key in recipe} == recipe
    assert args.learning_rate == pytest.approx(3e-5) and teacher_args.distill_rounds == 2
    _, _, no_teacher, _ = parse_job_arguments(["--teacher_weight", "0", "--distill_rounds", "1"])
    no_teacher.check("regression")
    assert (no_teacher.teacher, no_teacher.silver_pairs, no_teacher.teacher_finetune_epochs) == (None, 0, 0.0)


def test_own_data_keeps_the_generic_defaults(tmp_path):
    _, _, teacher_args, args = parse_job_arguments(["--train_file", str(tmp_path / "t.csv")])
    assert (teacher_args.teacher, teacher_args.distill_rounds, args.per_device_train_batch_size) == (None, 1, 16)
    assert args.learning_rate == pytest.approx(5e-5) and args.num_train_epochs == 3


@pytest.mark.parametrize("flag", ["--train_file", "--train-file", "--dataset_name", "--dataset-name"])
def test_own_data_in_any_spelling_skips_the_default_job(flag):
    _, _, teacher_args, training_args = parse_job_arguments([flag, "pairs.csv", "--output_dir", "out"])
    assert teacher_args.distill_rounds == 1 and training_args.learning_rate == 5e-5  # not the STS-B job's 2 / 8e-5


def test_the_default_job_is_the_shipped_config_file():
    """One definition: the package's recipe is configs/stsb.yaml itself."""
    shipped = Path(__file__).parents[1] / "configs" / "stsb.yaml"
    assert default_recipe_path().read_bytes() == shipped.read_bytes()


def test_default_job_teacher_and_its_removal():
    _, data_args, teacher_args, _ = parse_job_arguments([])
    data_args.check("regression")
    teacher_args.check("regression")
    assert data_args.label_scale == "0,5" and data_args.train_file.endswith("train.csv")
    assert (teacher_args.teacher, teacher_args.teacher_weight, teacher_args.silver_pairs) == (BUNDLED_MODEL, 0.5, 1)
    assert teacher_args.teacher_finetune_epochs == 2.0
    # Naming one's own teacher drops the default job's teacher as a whole (its silver pairs and fine-tuning too).
    _, _, own, _ = parse_job_arguments(["--teacher", "some/bi-encoder"])
    own.check("regression")
    assert (own.teacher, own.teacher_weight, own.silver_pairs, own.teacher_finetune_epochs) == ("some/bi-encoder", 0.5, 0, 0.0)


@pytest.mark.parametrize(
    ("old", "new", "value", "expected"),
    [
        ("--cross_encoder_teacher_weight", "cross_encoder_share", "0.3", 0.3),
        ("--distill_silver_pairs", "later_rounds_silver_pairs", "4", 4),
        ("--distill-epochs", "later_rounds_epochs", "2", 2.0),
        ("--distill_init", "later_rounds_init", "base", "base"),
        ("--distill_dropout", "later_rounds_dropout", "0.1", 0.1),
        ("--distill_freeze_layers", "later_rounds_freeze_layers", "1", 1),
        ("--symmetric_train", "train_pair_order", "both", "both"),
    ],
)
def test_renamed_flags_still_work_with_a_warning(old, new, value, expected, caplog):
    caplog.set_level(logging.WARNING, logger="hf_crossenc")
    for argv in ([old, value], [f"{old}={value}"]):
        caplog.clear()
        parsed = parse_job_arguments(["--train_file", "t.csv", *argv])
        assert [getattr(group, new) for group in parsed if hasattr(group, new)] == [expected]
        assert "deprecated" in caplog.text and f"--{new}" in caplog.text


def test_renamed_keys_in_a_config_file_still_work(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hf_crossenc")
    config = tmp_path / "c.yaml"
    config.write_text("train_file: t.csv\nsymmetric_inference: true\ncross_encoder_teacher_weight: 0.25\n")
    model_args, _, teacher_args, _ = parse_job_arguments(["--config", str(config)])
    assert model_args.score_both_orders is True and teacher_args.cross_encoder_share == 0.25
    assert "'symmetric_inference' is deprecated" in caplog.text and "'score_both_orders'" in caplog.text
