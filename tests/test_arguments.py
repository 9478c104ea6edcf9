"""hf_crossenc.arguments: each argument group's task-dependent defaults and checks."""

from __future__ import annotations

import pytest

from hf_crossenc.arguments import DataArguments, ModelArguments, TeacherArguments
from hf_crossenc.config import parse_job_arguments
from hf_crossenc.errors import ConfigError


def test_teacher_defaults():
    own_data = TeacherArguments()
    own_data.check("regression")
    assert (own_data.teacher, own_data.teacher_weight, own_data.silver_pairs, own_data.teacher_finetune_epochs) == (None, 0.0, 0, 0.0)
    with_teacher = TeacherArguments(teacher="some/bi-encoder")
    with_teacher.check("regression")
    assert with_teacher.teacher_weight == 0.5 and with_teacher.active
    for bad in (TeacherArguments(silver_pairs=2), TeacherArguments(teacher_weight=0.3), TeacherArguments(teacher="t", teacher_weight=1.5)):
        with pytest.raises(ConfigError):
            bad.check("regression")


def test_data_checks_follow_the_task():
    for task, order in (("regression", "swap"), ("classification", "none"), ("reranking", "none")):
        data = DataArguments(train_file="t.csv")
        data.check(task)
        assert data.train_pair_order == order
    with pytest.raises(ConfigError, match="--task reranking needs training data"):
        DataArguments().check("reranking")
    with pytest.raises(ConfigError, match="--label_scale applies to --task regression only"):
        DataArguments(train_file="t.csv", label_scale="0,5").check("classification")
    with pytest.raises(ConfigError, match="--train_pair_order must be 'none' for reranking"):
        DataArguments(train_file="t.csv", train_pair_order="swap").check("reranking")
    with pytest.raises(ConfigError, match="--max_eval_samples must be at least 1"):
        DataArguments(train_file="t.csv", max_eval_samples=0).check("regression")


def test_model_checks_follow_the_task():
    defaults = {task: ModelArguments() for task in ("regression", "reranking", "classification")}
    for task, model in defaults.items():
        model.check(task)
    assert [model.freeze_embeddings for model in defaults.values()] == [True, True, False]
    with pytest.raises(ConfigError, match="--score_both_orders does not apply to reranking"):
        ModelArguments(score_both_orders=True).check("reranking")
    with pytest.raises(ConfigError, match="--freeze_layers must be 0 or more"):
        ModelArguments(freeze_layers=-1).check("regression")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--teacher_finetune_epochs", "-1"], "must be 0 or more"),
        (["--teacher_finetune_epochs", "1", "--teacher_weight", "0", "--silver_pairs", "0"], "needs --task regression"),
    ],
)
def test_teacher_finetune_epochs_is_checked(extra, message):
    _, _, teacher_args, _ = parse_job_arguments(["--train_file", "t.csv", "--teacher", "bundled:all-MiniLM-L6-v2", *extra])
    with pytest.raises(ConfigError, match=message):
        teacher_args.check("regression")


def test_teacher_finetune_epochs_applies_to_similarity_and_reranking_only():
    flags = ["--train_file", "t.csv", "--teacher", "bundled:all-MiniLM-L6-v2", "--teacher_finetune_epochs", "1"]
    for task in ("regression", "reranking"):
        _, _, teacher_args, _ = parse_job_arguments(flags)
        teacher_args.check(task)
        assert teacher_args.teacher_finetune_epochs == 1.0
    _, _, teacher_args, _ = parse_job_arguments(flags)
    with pytest.raises(ConfigError, match="needs --task regression or reranking"):
        teacher_args.check("classification")


def test_distill_rounds_need_a_bi_encoder_teacher():
    for bad in (TeacherArguments(distill_rounds=2), TeacherArguments(cross_encoder_teacher="m"),
                TeacherArguments(teacher="t", distill_rounds=0),
                TeacherArguments(teacher="t", distill_rounds=2, later_rounds_epochs=0),
                TeacherArguments(teacher="t", distill_rounds=2, later_rounds_dropout=1.0)):  # fmt: skip
        with pytest.raises(ConfigError):
            bad.check("regression")
    # A reranker teacher joins listwise groups' targets; pointwise reranking and classification have no use for it.
    reranking = dict(teacher="t", cross_encoder_teacher="m")
    TeacherArguments(**reranking).check("reranking", "listwise")
    for task, loss in (("reranking", "bce"), ("classification", "bce")):
        with pytest.raises(ConfigError, match="--cross_encoder_teacher"):
            TeacherArguments(**reranking).check(task, loss)
    with pytest.raises(ConfigError, match="--distill_rounds"):
        TeacherArguments(**reranking, distill_rounds=2).check("reranking", "listwise")
