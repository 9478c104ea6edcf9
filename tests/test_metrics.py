"""hf_crossenc.metrics: regression, classification and ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_crossenc.metrics import (
    average_precision,
    best_threshold,
    binary_classification_metrics,
    compute_regression_metrics,
    correlation_metrics,
    multiclass_metrics,
    ranking_metrics,
    roc_auc,
    sigmoid,
)


def test_correlations_by_hand():
    # Ranks agree perfectly -> Spearman 1; Pearson computed by hand = 1.55 / sqrt(0.6275 * 5).
    got = correlation_metrics(np.array([0.0, 0.1, 0.2, 1.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    assert got["spearman"] == pytest.approx(1.0)
    assert got["pearson"] == pytest.approx(1.55 / math.sqrt(0.6275 * 5))
    # One swapped pair among 4: Spearman 1 - 6*2/(4*15) = 0.8; Pearson 4/5 = 0.8.
    got = correlation_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert got == pytest.approx({"pearson": 0.8, "spearman": 0.8})


def test_constant_predictions_are_nan_not_invented():
    got = correlation_metrics(np.array([0.5, 0.5, 0.5]), np.array([0.0, 0.5, 1.0]))
    assert math.isnan(got["pearson"]) and math.isnan(got["spearman"])


def test_compute_metrics_applies_sigmoid_to_logits():
    logits = np.array([[-2.0], [0.0], [3.0]])
    labels = np.array([0.1, 0.5, 0.9])
    got = compute_regression_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert got["spearman"] == pytest.approx(1.0)
    assert got["pearson"] == pytest.approx(correlation_metrics(sigmoid(logits.ravel()), labels)["pearson"])
    assert sigmoid(np.array([0.0, 1000.0, -1000.0])).tolist() == [0.5, 1.0, 0.0]


def test_binary_metrics_by_hand():
    scores = np.array([0.9, 0.8, 0.4, 0.3, 0.6])
    labels = np.array([1, 0, 1, 0, 0])
    got = binary_classification_metrics(scores, labels)
    # predicted positive: 0.9 (tp), 0.8 (fp), 0.6 (fp); 0.4 is a missed positive: P = 1/3, R = 1/2.
    assert got["accuracy"] == pytest.approx(2 / 5)
    assert got["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    # pairs (pos, neg) ordered correctly: 0.9 beats 0.8, 0.3, 0.6 (3); 0.4 beats 0.3 (1) -> 4 of 6.
    assert got["auc"] == pytest.approx(4 / 6)
    # ranking 0.9(+) 0.8 0.6 0.4(+) 0.3: AP = (1/1 + 2/4) / 2.
    assert got["average_precision"] == pytest.approx(0.75)
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    assert math.isnan(average_precision(np.array([0.1]), np.array([0])))


def test_best_threshold_maximises_accuracy():
    scores = np.array([0.1, 0.35, 0.4, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1, 1])
    threshold = best_threshold(scores, labels)
    assert 0.35 < threshold <= 0.4
    assert binary_classification_metrics(scores, labels, threshold)["accuracy"] == 1.0


def test_multiclass_metrics_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 1, 0])
    got = multiclass_metrics(probs, labels)
    # predicted 0, 1, 2, 0: class 0 F1 = 1, class 1 F1 = 2*1/(2+0+1) = 2/3, class 2 F1 = 0.
    assert got["accuracy"] == pytest.approx(3 / 4)
    assert got["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_ranking_metrics_by_hand():
    queries = ["q1"] * 4 + ["q2"] * 3 + ["q3"] * 2 + ["q4"] * 2
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.9, 0.5, 0.3, 0.4, 0.6, 0.7])
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0])
    got = ranking_metrics(queries, scores, labels, k=10)
    # q1 ranking: -, +, -, +  -> AP = (1/2 + 2/4)/2 = 0.5, RR = 1/2,
    #   NDCG = (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3)).
    # q2 ranking: -, -, +     -> AP = 1/3, RR = 1/3, NDCG = (1/log2(4)) / 1.
    # q3: all relevant, q4: none relevant -> skipped.
    assert got["queries"] == 2 and got["skipped_queries"] == 2
    assert got["map"] == pytest.approx((0.5 + 1 / 3) / 2)
    assert got["mrr@10"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx((ndcg_q1 + 0.5) / 2)
    assert ranking_metrics(queries, scores, labels, k=1)["mrr@1"] == 0.0


def test_ties_rank_irrelevant_candidates_first():
    """A constant (collapsed) scorer gets no credit from files that list the relevant candidate first."""
    queries = ["q1"] * 3 + ["q2"] * 4
    labels = np.array([1, 0, 0, 1, 0, 1, 0])
    got = ranking_metrics(queries, np.zeros(7), labels, k=10)
    # q1 ranked -, -, +: AP 1/3, RR 1/3, NDCG 1/log2(4) = 0.5.
    # q2 ranked -, -, +, +: AP (1/3 + 2/4)/2, RR 1/3, NDCG (1/log2(4) + 1/log2(5)) / (1 + 1/log2(3)).
    assert got["map"] == pytest.approx((1 / 3 + (1 / 3 + 2 / 4) / 2) / 2)
    assert got["mrr@10"] == pytest.approx(1 / 3)
    ndcg_q2 = (1 / math.log2(4) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx((0.5 + ndcg_q2) / 2)
    # Ties among candidates of the same relevance change nothing: q1's positive alone on top is a perfect ranking.
    assert ranking_metrics(["q1"] * 3, np.array([1.0, 0.0, 0.0]), labels[:3])["map"] == 1.0
    assert average_precision(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)


def test_compute_metrics_per_task_from_logits():
    from transformers import EvalPrediction

    from hf_crossenc.metrics import metrics_for_task

    logits = np.log(np.array([0.9, 0.8, 0.4, 0.3, 0.6]) / (1 - np.array([0.9, 0.8, 0.4, 0.3, 0.6]))).reshape(-1, 1)
    binary = metrics_for_task("classification", 1)(EvalPrediction(predictions=logits, label_ids=np.array([1, 0, 1, 0, 0])))
    assert binary["accuracy"] == pytest.approx(2 / 5) and binary["auc"] == pytest.approx(4 / 6)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    multi = metrics_for_task("classification", 3)(EvalPrediction(predictions=np.log(probs), label_ids=np.array([0, 1, 1, 0])))
    assert multi["accuracy"] == pytest.approx(3 / 4) and multi["f1"] == pytest.approx((1 + 2 / 3) / 3)
    # Reranking: label_ids carry (relevance, group id); pairs may arrive in any order.
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.9, 0.5])
    labels = np.array([[0, 0], [1, 0], [0, 0], [1, 0], [1, 1], [0, 1], [0, 1]], dtype=np.float32)
    perm = np.array([6, 0, 3, 5, 1, 4, 2])
    ranked = metrics_for_task("reranking")(EvalPrediction(predictions=np.log(scores / (1 - scores))[perm, None], label_ids=labels[perm]))
    assert ranked["map"] == pytest.approx((0.5 + 1 / 3) / 2) and ranked["queries"] == 2


def test_collapse_detection():
    from hf_crossenc.metrics import is_collapsed

    assert is_collapsed(np.full(10, 0.73))
    assert is_collapsed(np.array([0.5, 0.50001, 0.49999]))
    assert not is_collapsed(np.array([0.1, 0.9]))
    assert is_collapsed(np.tile([[0.2, 0.5, 0.3]], (4, 1)))
    assert not is_collapsed(np.array([[0.2, 0.8], [0.7, 0.3]]))
