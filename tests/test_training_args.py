"""hf_crossenc.training_args: CrossEncoderTrainingArguments' checks and per-task defaults, and bf16_is_fast."""

from __future__ import annotations

import pytest

from hf_crossenc.training_args import CrossEncoderTrainingArguments, bf16_is_fast


def make_args(tmp_path, **kwargs) -> CrossEncoderTrainingArguments:
    return CrossEncoderTrainingArguments(output_dir=str(tmp_path), report_to="none", **kwargs)


@pytest.mark.parametrize(
    ("task", "metric", "loss"), [("regression", "spearman", "bce"), ("classification", "accuracy", None), ("reranking", "map", "listwise")]
)
def test_metric_and_loss_default_by_task(tmp_path, task, metric, loss):
    args = make_args(tmp_path, task=task)
    assert args.metric_for_best_model == metric
    assert args.loss == loss  # classification: bce or ce, decided later from the labels
    assert make_args(tmp_path, task=task, metric_for_best_model="f1").metric_for_best_model == "f1"  # an explicit one is kept


def test_loss_must_fit_the_task(tmp_path):
    with pytest.raises(ValueError, match="--loss mse does not fit --task classification"):
        make_args(tmp_path, task="classification", loss="mse")
    with pytest.raises(ValueError, match="--loss listwise does not fit --task regression"):
        make_args(tmp_path, loss="listwise")
    assert make_args(tmp_path, task="reranking", loss="bce").loss == "bce"
    with pytest.raises(ValueError, match="--task must be one of"):
        make_args(tmp_path, task="generation")


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("train_group_size", 1, "--train_group_size"),
        ("cpu_threads", 0, "--cpu_threads"),
        ("cpu_kernel_cache", -1, "--cpu_kernel_cache"),
        ("recompute_above_tokens", -1, "--recompute_above_tokens"),
        ("bootstrap_resamples", -1, "--bootstrap_resamples"),
        ("remove_unused_columns", True, "--remove_unused_columns"),
    ],
)
def test_out_of_range_values_name_their_flag(tmp_path, field, value, flag):
    with pytest.raises(ValueError, match=flag):
        make_args(tmp_path, **{field: value})


def test_train_group_size_two_is_the_smallest_group(tmp_path):
    assert make_args(tmp_path, task="reranking", train_group_size=2).train_group_size == 2


def test_best_checkpoint_is_loaded_only_when_it_can_be(tmp_path):
    assert make_args(tmp_path).load_best_model_at_end  # evaluations every epoch: the best one is loaded
    assert not make_args(tmp_path, average_checkpoints=True).load_best_model_at_end  # the averaged weights are the model
    assert not make_args(tmp_path, eval_strategy="no").load_best_model_at_end  # no evaluations, no best checkpoint


def test_cpu_defaults_follow_the_hardware(tmp_path):
    args = make_args(tmp_path, use_cpu=True)
    assert args.bf16 == bf16_is_fast(use_cpu=True)
    assert args.fast_dropout is True
    assert make_args(tmp_path, use_cpu=True, bf16=False, fast_dropout=False).bf16 is False
    assert make_args(tmp_path, use_cpu=True, fast_dropout=False).fast_dropout is False


def test_bf16_is_fast_on_cpu_means_native_bf16_instructions():
    import torch

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert bf16_is_fast(use_cpu=True) is native
