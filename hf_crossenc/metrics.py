"""Evaluation metrics: pure functions of scores and gold labels."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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


def _logits(eval_pred: EvalPrediction) -> np.ndarray:
    return np.asarray(eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions)


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def compute_binary_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """`compute_metrics` for one-logit pair classifiers: accuracy/F1 at 0.5, ROC AUC and average precision."""
    return binary_classification_metrics(sigmoid(_logits(eval_pred).reshape(-1)), eval_pred.label_ids)


def compute_multiclass_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """`compute_metrics` for softmax pair classifiers: accuracy and macro F1."""
    return multiclass_metrics(softmax(_logits(eval_pred)), eval_pred.label_ids)


def compute_ranking_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """`compute_metrics` for rerankers: label_ids hold (relevance, group id) per pair; MAP, MRR@10, NDCG@10 by query.

    Ranked on the logits: the sigmoid is monotone but rounds large logits to the same 1.0 (more ties)."""
    labels = np.asarray(eval_pred.label_ids).reshape(-1, 2)
    return ranking_metrics(labels[:, 1].astype(np.int64).tolist(), _logits(eval_pred).reshape(-1), labels[:, 0])


def metrics_for_task(task: str, num_labels: int = 1) -> Callable[[EvalPrediction], dict[str, float]]:
    """The `compute_metrics` function of a task (classification: binary with one logit, else multi-class)."""
    if task == "regression":
        return compute_regression_metrics
    if task == "classification":
        return compute_binary_metrics if num_labels == 1 else compute_multiclass_metrics
    if task == "reranking":
        return compute_ranking_metrics
    raise ValueError(f"unknown task {task!r}")


def scores_from_logits(logits: np.ndarray, activation: str) -> np.ndarray:
    """Model outputs → scores: sigmoid of one logit (N,), softmax over several (N, K), or the raw logit."""
    logits = np.asarray(logits, dtype=np.float64)
    if activation == "softmax":
        return softmax(logits)
    flat = logits.reshape(len(logits), -1)[:, 0] if logits.ndim > 1 else logits
    return sigmoid(flat) if activation == "sigmoid" else flat


def is_collapsed(scores: np.ndarray, tolerance: float = 1e-4) -> bool:
    """True when (near-)constant: all scores within `tolerance` of each other (a fine-tune that lost its signal)."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores.reshape(len(scores), -1)  # (N, 1) or (N, K) class probabilities: every column must vary
    return len(scores) > 1 and float(np.ptp(scores, axis=0).max()) < tolerance


# --------------------------------------------------------------------------------------------
# Pair classification
# --------------------------------------------------------------------------------------------


def binary_classification_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy and F1 of the positive class at `threshold`, plus threshold-free ROC AUC and average precision."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(int)
    predicted = scores >= threshold
    tp = int(np.sum(predicted & (labels == 1)))
    fp = int(np.sum(predicted & (labels == 0)))
    fn = int(np.sum(~predicted & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": float(np.mean(predicted == (labels == 1))),
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "auc": roc_auc(scores, labels),
        "average_precision": average_precision(scores, labels),
    }


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half); NaN without both classes."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def rank_order(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices from the highest score to the lowest; equal scores put the less relevant first.

    Breaking ties against the model keeps the input order out of the metrics: data files often list
    the relevant candidate first, and a stable sort would then hand a constant (collapsed) scorer a
    perfect ranking.
    """
    return np.lexsort((np.asarray(labels), -np.asarray(scores, dtype=np.float64)))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the precision at the rank of each positive, scores sorted high to low, ties broken against the
    positives (NaN without positives)."""
    order = rank_order(scores, labels)
    hits = np.asarray(labels)[order] == 1
    if not hits.any():
        return math.nan
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_k[hits].mean())


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The decision threshold with the highest accuracy (midpoint between neighbouring scores)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(int)
    candidates = np.unique(scores)
    cuts = np.concatenate([[candidates[0] - 1e-6], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-6]])
    accuracy = [np.mean((scores >= c) == (labels == 1)) for c in cuts]
    return float(cuts[int(np.argmax(accuracy))])


def multiclass_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-averaged F1 over the classes present in labels or predictions."""
    predicted = np.asarray(probabilities).argmax(-1)
    labels = np.asarray(labels).reshape(-1).astype(int)
    f1s = []
    for cls in np.union1d(labels, predicted):
        tp = np.sum((predicted == cls) & (labels == cls))
        fp = np.sum((predicted == cls) & (labels != cls))
        fn = np.sum((predicted != cls) & (labels == cls))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"accuracy": float(np.mean(predicted == labels)), "f1": float(np.mean(f1s))}


# --------------------------------------------------------------------------------------------
# Reranking
# --------------------------------------------------------------------------------------------


def query_ranking_values(queries: list, scores: np.ndarray, labels: np.ndarray, k: int = 10) -> tuple[dict[str, np.ndarray], int]:
    """Per-query average precision, reciprocal rank at k and NDCG at k (binary relevance), in the order the queries
    first appear, plus the number of queries skipped (no relevant or no irrelevant candidate: nothing to rank)."""
    groups: dict[Any, list[int]] = {}
    for i, query in enumerate(queries):
        groups.setdefault(query, []).append(i)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(int)
    aps, rrs, ndcgs, skipped = [], [], [], 0
    for idx in groups.values():
        rel = labels[idx]
        if rel.sum() == 0 or rel.sum() == len(rel):
            skipped += 1
            continue
        ranked = rel[rank_order(scores[idx], rel)]
        aps.append(average_precision(scores[idx], rel))
        first = int(np.argmax(ranked == 1))
        rrs.append(1.0 / (first + 1) if first < k else 0.0)
        gains = ranked[:k] / np.log2(np.arange(2, min(k, len(ranked)) + 2))
        ideal = np.sort(rel)[::-1][:k] / np.log2(np.arange(2, min(k, len(rel)) + 2))
        ndcgs.append(float(gains.sum() / ideal.sum()))
    values = {
        "map": np.asarray(aps, dtype=np.float64),
        f"mrr@{k}": np.asarray(rrs, dtype=np.float64),
        f"ndcg@{k}": np.asarray(ndcgs, dtype=np.float64),
    }
    return values, skipped


def ranking_metrics(queries: list, scores: np.ndarray, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    """MAP, MRR@k and NDCG@k (binary relevance) grouped by query; tied scores rank irrelevant candidates first.

    Queries with no relevant or no irrelevant candidate cannot rank anything and are skipped; how
    many is reported (`skipped_queries`), along with the number evaluated (`queries`).
    """
    values, skipped = query_ranking_values(queries, scores, labels, k)
    evaluated = len(values["map"])
    means = {name: float(v.mean()) if evaluated else math.nan for name, v in values.items()}
    return {**means, "queries": evaluated, "skipped_queries": skipped}
