"""Distillation targets: a teacher's scores turned into training targets.

A bi-encoder's cosine becomes a calibrated 0–1 target (`calibrate` + `teacher_targets` for similarity scores,
`calibrate_logistic` + `teacher_probabilities` for 0/1 labels) or a listwise distribution over a query's passages
(`group_targets`); `mix_labels` mixes it into the gold labels (``--teacher_weight``); `silver_pairs` makes extra pairs
for the teacher to label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .bi_encoder import BiEncoder
from .data import TEXT_A, TEXT_B


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
    (the easy low end). Returns (texts_a, texts_b, teacher cosine); `silver_pair_table` gives the same pairs as an
    Arrow table, never as Python lists.
    """
    table, cosine = silver_pair_table(texts_a, texts_b, encoder, per_pair, seed)
    return table.column(TEXT_A).to_pylist(), table.column(TEXT_B).to_pylist(), cosine


def silver_pair_table(texts_a: Any, texts_b: Any, encoder: BiEncoder, per_pair: int, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    """`silver_pairs` over Arrow: the texts (lists, Arrow arrays, or a `datasets` column, read as its Arrow column) are
    numbered with `dictionary_encode`; the partners are drawn as numbers with the same generator calls in the same
    order, so the same seed gives the same pairs; the texts of the new pairs are taken from Arrow a batch at a time.
    Returns the pairs (text_a, text_b) and the teacher's cosine of each."""
    column_a, column_b = _arrow_texts(texts_a), _arrow_texts(texts_b)
    schema = pa.schema([(TEXT_A, pa.string()), (TEXT_B, pa.string())])
    if per_pair <= 0 or not len(column_a):
        return schema.empty_table(), np.zeros(0, dtype=np.float32)
    # Second texts first: the dictionary starts with the distinct second texts in order of first appearance (as
    # `dict.fromkeys` numbers them); a first text equal to one of them gets its number.
    encoded = pc.dictionary_encode(
        pa.chunked_array([c.cast(pa.string()) for c in (*column_b.chunks, *column_a.chunks)], pa.string())
    ).combine_chunks()
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ids_b, ids_a = ids[: len(column_b)], ids[len(column_b) :]
    distinct_b = int(ids_b.max()) + 1
    emb_b = _encode(encoder, encoded.dictionary, 0, distinct_b)
    emb_rest = _encode(encoder, encoded.dictionary, distinct_b, len(encoded.dictionary))  # first texts not among the second
    rng = np.random.default_rng(seed)
    near = max(1, per_pair - per_pair // 2)
    rows_a, partners_b, cosines = [], [], []
    for start in range(0, len(ids_a), 512):
        own = ids_b[start : start + 512]
        sims = emb_b[own] @ emb_b.T
        found_a, found_b, found_cos = [], [], []
        for k, i in enumerate(range(start, start + len(own))):
            sims[k, own[k]] = -np.inf  # not the pair's own partner
            partners = list(np.argpartition(-sims[k], near)[:near]) if distinct_b > near else []
            partners += list(rng.integers(0, distinct_b, size=per_pair - len(partners)))
            first = emb_b[ids_a[i]] if ids_a[i] < distinct_b else emb_rest[ids_a[i] - distinct_b]
            for j in partners:
                if j in (own[k], ids_a[i]):  # the pair's own second text, or its first text
                    continue
                found_a.append(i)
                found_b.append(j)
                found_cos.append(float(first @ emb_b[j]))
        rows_a.append(np.asarray(found_a, dtype=np.int64))
        partners_b.append(np.asarray(found_b, dtype=np.int64))
        cosines.append(np.asarray(found_cos, dtype=np.float32))
    rows, partners = np.concatenate(rows_a), np.concatenate(partners_b)
    batches = [
        pa.record_batch(
            [
                column_a.take(pa.array(rows[s : s + TAKE_ROWS])).combine_chunks().cast(pa.string()),
                encoded.dictionary.take(pa.array(partners[s : s + TAKE_ROWS])),
            ],
            schema=schema,
        )
        for s in range(0, len(rows), TAKE_ROWS)
    ]
    return pa.Table.from_batches(batches, schema), np.concatenate(cosines)


TAKE_ROWS = 65536
"""Texts taken into the new pairs at a time."""
ENCODE_TEXTS = 65536
"""Distinct texts handed to the encoder at a time (each call sorts its texts by length into batches)."""


def _arrow_texts(texts: Any) -> pa.ChunkedArray:
    """Texts as an Arrow column: an Arrow array as it is, a `datasets` column as its dataset's Arrow column (no Python
    strings), any other sequence converted."""
    if isinstance(texts, pa.ChunkedArray):
        return texts
    if isinstance(texts, pa.Array):
        return pa.chunked_array([texts])
    source, name = getattr(texts, "source", None), getattr(texts, "column_name", None)
    if isinstance(source, datasets.Dataset) and isinstance(name, str):
        if source._indices is None:
            return source.data.table.column(name)
        return source.select_columns([name]).with_format("arrow")[:].column(name)
    return pa.chunked_array([pa.array(list(texts), pa.string())])


def _encode(encoder: BiEncoder, texts: pa.Array, start: int, stop: int) -> np.ndarray:
    """The embeddings of texts[start:stop], encoded `ENCODE_TEXTS` texts at a time."""
    parts = [encoder.encode(texts.slice(s, min(ENCODE_TEXTS, stop - s)).to_pylist()) for s in range(start, stop, ENCODE_TEXTS)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
