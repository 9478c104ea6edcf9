"""Distillation targets: a teacher's scores turned into training targets.

A bi-encoder's cosine becomes a calibrated 0–1 target (`calibrate` + `teacher_targets` for similarity scores,
`calibrate_logistic` + `teacher_probabilities` for 0/1 labels) or a listwise distribution over a query's passages
(`group_targets`); `mix_labels` mixes it into the gold labels (``--teacher_weight``); `silver_pairs` makes extra pairs
for the teacher to label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .bi_encoder import BiEncoder


def calibrate(cosine: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Least-squares line mapping cosine onto the 0–1 targets (fitted on the training pairs)."""
    slope, intercept = np.polyfit(np.asarray(cosine, dtype=np.float64), np.asarray(targets, dtype=np.float64), 1)
    return float(slope), float(intercept)


def calibrate_logistic(cosine: np.ndarray, labels: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Platt scaling: (a, b) of P(label=1) = sigmoid(a*cos + b), fitted by Newton's method on 0/1 labels."""
    x = np.asarray(cosine, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError("logistic calibration needs both 0 and 1 labels")
    a, b = 0.0, float(np.log(y.mean() / (1 - y.mean())))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        w = np.maximum(p * (1 - p), 1e-12)
        gradient = np.array([np.sum((p - y) * x), np.sum(p - y)])
        hessian = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def teacher_probabilities(cosine: np.ndarray, a: float, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(a * np.asarray(cosine, dtype=np.float64) + b)))


def _softmax(z: np.ndarray) -> np.ndarray:
    soft = np.exp(z - z.max())
    return soft / soft.sum()


def group_targets(
    cosine: np.ndarray | None,
    weight: float,
    temperature: float,
    logits: np.ndarray | None = None,
    logits_share: float = 0.0,
) -> np.ndarray:
    """Listwise targets of one group (positive first): (1-w)·one-hot + w·teacher.

    The teacher is softmax(cos / temperature) of a bi-encoder; with a reranker's ``logits`` it is
    (1-s)·softmax(cos / temperature) + s·softmax(logits) (s = ``logits_share``), or softmax(logits)
    alone when there is no cosine.
    """
    parts = []
    if cosine is not None:
        parts.append((1.0 - logits_share if logits is not None else 1.0, _softmax(np.asarray(cosine, dtype=np.float64) / temperature)))
    if logits is not None:
        parts.append((logits_share if cosine is not None else 1.0, _softmax(np.asarray(logits, dtype=np.float64))))
    if not parts:
        raise ValueError("group_targets needs a cosine or logits")
    soft = sum(share * probs for share, probs in parts)
    hard = np.zeros_like(soft)
    hard[0] = 1.0
    return (1.0 - weight) * hard + weight * soft


def teacher_targets(cosine: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return np.clip(slope * np.asarray(cosine) + intercept, 0.0, 1.0)


def mix_labels(gold: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * gold + weight * teacher."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"teacher weight must lie in [0, 1], got {weight}")
    return (1.0 - weight) * np.asarray(gold) + weight * np.asarray(teacher)


def silver_pairs(
    texts_a: Sequence[str], texts_b: Sequence[str], encoder: BiEncoder, per_pair: int, seed: int = 0
) -> tuple[list[str], list[str], np.ndarray]:
    """New pairs for distillation: each first text with second texts of *other* pairs.

    For pair i, half of the new partners are the nearest neighbours of b_i among the other second
    texts (similar but not identical meaning: the hard middle of the scale), the rest random ones
    (the easy low end). Returns (texts_a, texts_b, teacher cosine).
    """
    if per_pair <= 0:
        return [], [], np.zeros(0, dtype=np.float32)
    texts_a, texts_b = list(texts_a), list(texts_b)  # a datasets Column reads from Arrow on every index
    rng = np.random.default_rng(seed)
    unique_b = list(dict.fromkeys(texts_b))
    emb_b = encoder.encode(unique_b)
    emb_a = encoder.encode(texts_a)
    index_b = {t: i for i, t in enumerate(unique_b)}
    near = max(1, per_pair - per_pair // 2)
    new_a, new_b, cosines = [], [], []
    for start in range(0, len(texts_a), 512):
        rows = range(start, min(start + 512, len(texts_a)))
        sims = emb_b[[index_b[texts_b[i]] for i in rows]] @ emb_b.T
        for k, i in enumerate(rows):
            sims[k, index_b[texts_b[i]]] = -np.inf  # not the pair's own partner
            partners = list(np.argpartition(-sims[k], near)[:near]) if len(unique_b) > near else []
            partners += list(rng.integers(0, len(unique_b), size=per_pair - len(partners)))
            for j in partners:
                if unique_b[j] in (texts_b[i], texts_a[i]):
                    continue
                new_a.append(texts_a[i])
                new_b.append(unique_b[j])
                cosines.append(float(emb_a[i] @ emb_b[j]))
    return new_a, new_b, np.asarray(cosines, dtype=np.float32)
