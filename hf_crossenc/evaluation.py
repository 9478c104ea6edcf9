"""The metrics of a scored, labelled split, with percentile-bootstrap confidence intervals.

A score measured on a few hundred pairs — or on 65 queries — is an estimate; its interval says how far the
split alone lets it move. To tell two models apart, `bootstrap_difference` scores both on the same resampled
units: the pairs that are hard for one are mostly hard for the other, so the paired interval is much tighter
than the two separate ones. The interval resamples the units the metric averages over: pairs for correlations and classification
metrics, queries for ranking metrics (a query's candidates stay together). The model and the decision
threshold are held fixed, so the interval is the sampling uncertainty of the evaluation data alone, not
the spread between training runs (seeds move a score too: train again to see that).

>>> import numpy as np
>>> from hf_crossenc.evaluation import bootstrap_intervals
>>> scores, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.5, 0.25, 1.0])
>>> bootstrap_intervals("regression", scores, labels, resamples=200)["resampled"]
'pairs'
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .data import GROUP
from .errors import UserInputError
from .metrics import (
    binary_classification_metrics,
    correlation_metrics,
    multiclass_metrics,
    query_ranking_values,
    ranking_metrics,
)

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


def task_metrics(
    task: str, scores: np.ndarray, labels: np.ndarray, queries: list | None = None, threshold: float | None = None
) -> dict[str, Any]:
    """The metrics of `task` ('regression', 'classification' or 'reranking') for scores against gold labels:
    correlations; accuracy/F1/AUC/AP at `threshold` (0.5 by default) for one score per pair, accuracy and macro F1
    for class probabilities (N, K); MAP/MRR@10/NDCG@10 grouped by `queries` for reranking."""
    scores = np.asarray(scores, dtype=np.float64)
    if task == "reranking":
        if queries is None:
            raise ValueError("ranking metrics need the query of every pair")
        return ranking_metrics(queries, scores, labels)
    if task == "classification":
        if scores.ndim == 2:
            return multiclass_metrics(scores, labels)
        cut = 0.5 if threshold is None else threshold
        return {**binary_classification_metrics(scores, labels, cut), "threshold": cut}
    if task == "regression":
        return correlation_metrics(scores, labels)
    raise ValueError(f"unknown task {task!r}")


def _check(resamples: int, level: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")


def _draws(
    task: str,
    score_sets: list[np.ndarray],
    labels: np.ndarray,
    queries: list | None,
    thresholds: list[float | None],
    resamples: int,
    seed: int,
) -> tuple[list[dict[str, np.ndarray]], str]:
    """Each score set's metrics over the same `resamples` bootstrap draws of the units (pairs, or queries for
    reranking), so that sets can be compared draw by draw; and the name of the units."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    draws: list[dict[str, list[float]]] = [{} for _ in score_sets]
    if task == "reranking":
        if queries is None:
            raise ValueError("ranking intervals need the query of every pair")
        # Which queries count depends on the labels only: every score set has the same ones, in the same order.
        per_query = [query_ranking_values(queries, scores, labels)[0] for scores in score_sets]
        units = len(per_query[0]["map"])
        for _ in range(resamples):
            pick = rng.integers(0, units, units) if units else np.zeros(0, dtype=np.int64)
            for values, out in zip(per_query, draws):
                for name, v in values.items():
                    out.setdefault(name, []).append(float(v[pick].mean()) if units else math.nan)
        resampled = "queries"
    else:
        units = len(labels)
        for _ in range(resamples):
            pick = rng.integers(0, units, units)
            for scores, threshold, out in zip(score_sets, thresholds, draws):
                for name, value in task_metrics(task, scores[pick], labels[pick], threshold=threshold).items():
                    if name != "threshold":
                        out.setdefault(name, []).append(float(value))
        resampled = "pairs"
    return [{name: np.asarray(v, dtype=np.float64) for name, v in d.items()} for d in draws], resampled


def _bounds(draws: dict[str, np.ndarray], level: float) -> dict[str, list[float]]:
    tail = 100 * (1 - level) / 2
    bounds = {}
    for name, values in draws.items():
        finite = values[np.isfinite(values)]
        bounds[name] = (
            [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))] if len(finite) else [math.nan, math.nan]
        )
    return bounds


def bootstrap_intervals(
    task: str,
    scores: np.ndarray,
    labels: np.ndarray,
    queries: list | None = None,
    threshold: float | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Percentile-bootstrap intervals of the task's metrics: draw the split's units (pairs, or queries for
    reranking) with replacement `resamples` times, recompute each metric, keep the central `level` of the values.

    Returns ``{"level", "resamples", "resampled": "pairs" | "queries", "bounds": {metric: [low, high]}}``; a
    resample whose metric is undefined (e.g. all-equal labels for a correlation) is left out of that metric's
    bounds, and a metric undefined in every resample gets ``[nan, nan]``. Deterministic for a given `seed`.
    """
    _check(resamples, level)
    (draws,), resampled = _draws(task, [np.asarray(scores, dtype=np.float64)], labels, queries, [threshold], resamples, seed)
    return {"level": level, "resamples": resamples, "resampled": resampled, "bounds": _bounds(draws, level)}


def bootstrap_difference(
    task: str,
    scores: np.ndarray,
    other_scores: np.ndarray,
    labels: np.ndarray,
    queries: list | None = None,
    threshold: float | None = None,
    other_threshold: float | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """A paired comparison of two models scored on the same labelled pairs: the difference of each metric
    (`scores`' minus `other_scores`') and its percentile-bootstrap interval, both models evaluated on the same
    resampled units in every draw — much tighter than comparing two separate intervals, since the pairs that are
    hard for one model are mostly hard for the other. An interval that contains 0 means this data does not tell
    the two apart at that level; ``share_above_zero`` is the fraction of draws in which the first model scored
    higher. Returns ``{"level", "resamples", "resampled", "difference": {metric: d}, "bounds": {metric: [low,
    high]}, "share_above_zero": {metric: share}}``."""
    _check(resamples, level)
    scores, other_scores = np.asarray(scores, dtype=np.float64), np.asarray(other_scores, dtype=np.float64)
    if scores.shape != other_scores.shape:
        raise ValueError(f"the two models' scores differ in shape: {scores.shape} vs {other_scores.shape}")
    first = task_metrics(task, scores, labels, queries, threshold)
    second = task_metrics(task, other_scores, labels, queries, other_threshold)
    (mine, theirs), resampled = _draws(task, [scores, other_scores], labels, queries, [threshold, other_threshold], resamples, seed)
    diffs = {name: mine[name] - theirs[name] for name in mine}
    share = {}
    for name, values in diffs.items():
        finite = values[np.isfinite(values)]
        share[name] = float(np.mean(finite > 0)) if len(finite) else math.nan
    return {
        "level": level,
        "resamples": resamples,
        "resampled": resampled,
        "difference": {name: float(first[name]) - float(second[name]) for name in diffs},
        "bounds": _bounds(diffs, level),
        "share_above_zero": share,
    }


def split_labels(task: str, split: Any) -> tuple[np.ndarray, list | None]:
    """A labelled split's gold labels, and for reranking the query of every pair (None otherwise)."""
    return np.asarray(split.dataset["label"], dtype=np.float64), (split.dataset[GROUP] if task == "reranking" else None)


def split_metrics(
    task: str,
    scores: np.ndarray,
    split: Any,
    threshold: float | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """The task's metrics of one labelled split (a `TaskSplit`/`RankingSplit`: ``split.dataset`` holds ``label``,
    and the query ``group`` for reranking), its size ``n`` and, unless `resamples` is 0, their ``intervals``.
    These are the numbers of results.json, the model card and `hf-crossenc evaluate`."""
    labels, queries = split_labels(task, split)
    out = {**task_metrics(task, scores, labels, queries, threshold), "n": len(split)}
    if resamples:
        out["intervals"] = bootstrap_intervals(task, scores, labels, queries, out.get("threshold"), resamples, level)
    return out


def labelled_split(
    table: Any,
    predictor: Any,
    *,
    text_a_column: str | None = None,
    text_b_column: str | None = None,
    label_column: str | None = None,
    label_scale: str | None = None,
) -> tuple[Any, float | None]:
    """The labelled split of a read `table` (`hf_crossenc.data.read_table`) for a trained `predictor`'s task, and the
    decision threshold of a binary classifier (the saved one, else 0.5; None for every other model).

    Columns not named are auto-detected. Labels are read as the model was trained: a regression label on
    `label_scale` (a raw range such as ``"0,5"``; default: the model's own), a class by the model's label names in
    output order, a reranking label as graded relevance grouped by query."""
    task = predictor.semantics.task
    if task == "reranking":
        return _ranking_split(table, text_a_column, text_b_column, label_column), None
    if task == "classification":
        return _classification_split(table, predictor, text_a_column, text_b_column, label_column)
    return _regression_split(table, predictor, text_a_column, text_b_column, label_column, label_scale), None


def _regression_split(
    table: Any, predictor: Any, text_a_column: str | None, text_b_column: str | None, label_column: str | None, label_scale: str | None
) -> Any:
    from .data import build_split, parse_label_scale, resolve_columns

    columns = resolve_columns(table, text_a_column, text_b_column, label_column)
    scale = parse_label_scale(label_scale) or predictor.label_scale
    if scale == "auto":
        raise UserInputError("evaluate needs an explicit --label_scale (or none, to use the model's).")
    return build_split(table, columns, name="evaluation", scale=scale)


def _classification_split(
    table: Any, predictor: Any, text_a_column: str | None, text_b_column: str | None, label_column: str | None
) -> tuple[Any, float | None]:
    from .data import resolve_columns
    from .labels import LabelVocab, build_class_split

    columns = resolve_columns(table, text_a_column, text_b_column, label_column)
    config = predictor.model.config
    binary = predictor.semantics.activation == "sigmoid"
    names = predictor.semantics.label_names or (["0", "1"] if binary else [config.id2label[i] for i in range(config.num_labels)])
    split = build_class_split(table, columns, name="evaluation", vocab=LabelVocab(tuple(names), binary=binary))
    if not binary:
        return split, None
    return split, predictor.semantics.threshold if predictor.semantics.threshold is not None else 0.5


def _ranking_split(table: Any, text_a_column: str | None, text_b_column: str | None, label_column: str | None) -> Any:
    from .ranking import build_ranking_split

    return build_ranking_split(
        table, name="evaluation", query_column=text_a_column, passage_column=text_b_column, label_column=label_column
    )
