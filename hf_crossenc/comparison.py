"""Paired comparisons of two scorers on the same labelled split: another trained model of the same task, or a
bi-encoder's cosines. Both are scored on the same resampled pairs (or queries), so the interval of each metric's
difference says whether the data tells them apart (`hf_crossenc.evaluation.bootstrap_difference`)."""

from __future__ import annotations

from typing import Any

from .errors import UserInputError

THRESHOLD_FREE = {"regression": ("pearson", "spearman"), "classification": ("auc", "average_precision")}
"""A cosine has no decision threshold: a classifier is compared with a bi-encoder on the metrics that use the scores alone."""


def class_names(predictor: Any) -> list[str] | None:
    """The labels a classifier's outputs stand for, in output order (recorded names, else config.id2label)."""
    semantics, config = predictor.semantics, predictor.model.config
    if semantics.task != "classification":
        return None
    if semantics.label_names:
        return list(semantics.label_names)
    return ["0", "1"] if semantics.activation == "sigmoid" else [str(config.id2label[i]) for i in range(config.num_labels)]


def check_comparable(predictor: Any, other: Any, model: str, other_model: str) -> None:
    """`UserInputError` unless `other` (loaded from `other_model`) scores the same thing as `predictor` (from `model`):
    the same task and activation and, for classifiers, the same labels in the same output order."""
    mine, theirs = predictor.semantics, other.semantics
    if (mine.task, mine.activation, class_names(predictor)) != (theirs.task, theirs.activation, class_names(other)):
        raise UserInputError(
            f"--compare {other_model}: a {theirs.task} model ({theirs.activation}, labels {class_names(other)}) cannot be "
            f"compared with {model}, a {mine.task} model ({mine.activation}, labels {class_names(predictor)})."
        )


def compare_models(
    predictor: Any,
    other: Any,
    split: Any,
    scores: Any,
    threshold: float | None,
    *,
    other_model: str,
    symmetric: bool | None,
    batch_size: int,
    resamples: int,
    level: float,
) -> dict[str, Any]:
    """The other model's metrics on the same split (scored like the first: `symmetric`, `batch_size`), and the paired
    difference of every metric (`predictor`'s `scores` minus the other's) with its bootstrap interval."""
    from .evaluation import bootstrap_difference, split_labels, task_metrics

    task = predictor.semantics.task
    other_threshold = None
    if task == "classification" and predictor.semantics.activation == "sigmoid":
        other_threshold = other.semantics.threshold if other.semantics.threshold is not None else 0.5
    pairs = list(zip(split.dataset["text_a"], split.dataset["text_b"]))
    other_scores = other.predict(pairs, batch_size=batch_size, symmetric=symmetric)
    labels, queries = split_labels(task, split)
    difference = bootstrap_difference(
        task, scores, other_scores, labels, queries, threshold, other_threshold, resamples=resamples, level=level
    )
    return {"model": other_model, "metrics": task_metrics(task, other_scores, labels, queries, other_threshold), **difference}


def compare_bi_encoder(
    predictor: Any,
    split: Any,
    scores: Any,
    threshold: float | None,
    *,
    bi_encoder: str,
    precision: str,
    resamples: int,
    level: float,
) -> dict[str, Any]:
    """The `bi_encoder`'s cosines of the same pairs (at most `predictor.max_length` tokens), their metrics and the
    paired difference, on the metrics that need no threshold (`THRESHOLD_FREE`; every metric for a reranker)."""
    from .bi_encoder import BiEncoder
    from .evaluation import bootstrap_difference, split_labels, task_metrics
    from .modeling import resolve_model_path

    task = predictor.semantics.task
    encoder = BiEncoder(
        resolve_model_path(bi_encoder, "--compare_bi_encoder"),
        max_length=predictor.max_length,
        precision=precision,
        flag="--compare_bi_encoder",
    )
    cosine = encoder.cosine(split.dataset["text_a"], split.dataset["text_b"])
    labels, queries = split_labels(task, split)
    difference = bootstrap_difference(task, scores, cosine, labels, queries, threshold, resamples=resamples, level=level)
    keep = THRESHOLD_FREE.get(task) or tuple(difference["difference"])
    metrics = {k: v for k, v in task_metrics(task, cosine, labels, queries).items() if k in keep or k in ("queries", "skipped_queries")}
    return {
        "model": bi_encoder,
        "metrics": metrics,
        **{k: v for k, v in difference.items() if not isinstance(v, dict)},
        **{k: {m: x for m, x in v.items() if m in keep} for k, v in difference.items() if isinstance(v, dict)},
    }
