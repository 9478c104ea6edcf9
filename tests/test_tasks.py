"""hf_crossenc.tasks: the task vocabulary (tasks, losses, default metrics, model files) is consistent."""

from __future__ import annotations

from hf_crossenc.tasks import DEFAULT_LOSS, DEFAULT_METRIC, KIND, LOSSES, MODEL_FILES, TASK_LOSSES, TASKS, WEIGHT_FILES


def test_every_task_has_a_default_metric_losses_and_a_kind():
    assert set(DEFAULT_METRIC) == set(TASK_LOSSES) == set(KIND) == set(TASKS)
    assert DEFAULT_METRIC == {"regression": "spearman", "classification": "accuracy", "reranking": "map"}


def test_default_losses_are_allowed_losses():
    assert set(DEFAULT_LOSS) <= set(TASKS)
    assert "classification" not in DEFAULT_LOSS  # bce or ce, decided from the labels
    for task, loss in DEFAULT_LOSS.items():
        assert loss in TASK_LOSSES[task], task
    assert {loss for losses in TASK_LOSSES.values() for loss in losses} == set(LOSSES)


def test_model_files_hold_the_config_and_the_weights():
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(MODEL_FILES)
    assert len(set(MODEL_FILES)) == len(MODEL_FILES)
    assert "model.safetensors" in WEIGHT_FILES
