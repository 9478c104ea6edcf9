"""Evaluation metrics: pure functions of scores and gold labels."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import stats
from transformers import EvalPrediction


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (the activation of one-logit cross-encoders)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def correlation_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation between predicted scores and gold labels.

    Constant predictions have no defined correlation: the result is NaN (reported as such, never
    replaced by a made-up number).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape} vs {labels.shape}")
    if len(scores) < 2 or np.ptp(scores) == 0 or np.ptp(labels) == 0:
        return {"pearson": math.nan, "spearman": math.nan}
    return {
        "pearson": float(stats.pearsonr(scores, labels)[0]),
        "spearman": float(stats.spearmanr(scores, labels)[0]),
    }


def compute_regression_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """`compute_metrics` for one-logit similarity models: correlations of sigmoid(logit) with the 0–1 labels."""
    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    return correlation_metrics(sigmoid(np.asarray(logits).reshape(-1)), eval_pred.label_ids)


def metrics_for_task(task: str) -> Callable[[EvalPrediction], dict[str, float]]:
    if task == "regression":
        return compute_regression_metrics
    raise ValueError(f"unknown task {task!r}")
