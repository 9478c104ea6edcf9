"""A bi-encoder teacher: mean-pooled sentence embeddings with plain transformers (no network).

A cross-encoder fine-tuned on a few thousand pairs forgets much of what its pretrained base knew
about sentence similarity; the same base used as a bi-encoder (cosine of mean-pooled embeddings)
generalises well. `teacher_targets` turns the bi-encoder's cosine into calibrated 0–1 targets,
mixed into the gold labels (``--teacher_weight``), so the cross-encoder learns from both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

logger = logging.getLogger(__name__)


class BiEncoder:
    """Sentence embeddings by attention-masked mean pooling, L2-normalised (sentence-transformers' recipe)."""

    def __init__(self, name_or_path: str, max_length: int = 128, batch_size: int = 128) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModel.from_pretrained(name_or_path, use_safetensors=True).eval()
        self.max_length, self.batch_size = max_length, batch_size

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        unique = list(dict.fromkeys(texts))
        order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
        vectors = np.zeros((len(unique), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer([unique[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
            vectors[idx] = pooled.float().numpy()
        position = {text: i for i, text in enumerate(unique)}
        return vectors[[position[t] for t in texts]]

    def cosine(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
        a, b = self.encode(texts_a), self.encode(texts_b)
        return (a * b).sum(-1)


def calibrate(cosine: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Least-squares line mapping cosine onto the 0–1 targets (fitted on the training pairs)."""
    slope, intercept = np.polyfit(np.asarray(cosine, dtype=np.float64), np.asarray(targets, dtype=np.float64), 1)
    return float(slope), float(intercept)


def teacher_targets(cosine: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return np.clip(slope * np.asarray(cosine) + intercept, 0.0, 1.0)


def mix_labels(gold: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * gold + weight * teacher."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"teacher weight must lie in [0, 1], got {weight}")
    return (1.0 - weight) * np.asarray(gold) + weight * np.asarray(teacher)
