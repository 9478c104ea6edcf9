"""Scoring pairs with a trained cross-encoder: `CrossEncoderPredictor`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .data import LabelScale
from .first_token import first_token_only
from .model_files import check_model_source, model_load_errors
from .modeling import ScoreSemantics, safetensors_only

logger = logging.getLogger(__name__)


PRECISIONS = ("fp32", "bf16", "auto")


def resolve_precision(precision: str, use_cpu: bool = False) -> str:
    """'fp32' or 'bf16' ('auto': bf16 where the hardware computes it natively; the CPU's with ``use_cpu``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        from .training_args import bf16_is_fast

        return "bf16" if bf16_is_fast(use_cpu=use_cpu) else "fp32"
    return precision


class Ranked(NamedTuple):
    """One reranked passage: its position in the input, its score and its text."""

    index: int
    score: float
    passage: str


class CrossEncoderPredictor:
    """Scores (text_a, text_b) pairs with a sequence-classification model and its score semantics.

    Example::

        predictor = CrossEncoderPredictor.from_pretrained("outputs/stsb-minilm-cross-encoder")
        predictor.predict([("A man is eating.", "Someone eats food.")])            # 0–1 scores
        predictor.predict([("A man is eating.", "Someone eats food.")], rescale=True)  # on the 0–5 label scale
        reranker.rank("who wrote hamlet?", passages, top_k=3)  # [Ranked(index, score, passage), ...] best first
        classifier.classify([("He left.", "He went away.")])   # ['1'] (class names; binary uses the stored threshold)
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int | None = None,
        precision: str = "fp32",
    ) -> None:
        self.precision = resolve_precision(precision)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.semantics = ScoreSemantics.from_config(model.config)
        self.max_length = max_length or self.semantics.max_length or getattr(tokenizer, "model_max_length", 512)
        self.max_length = min(self.max_length, getattr(model.config, "max_position_embeddings", self.max_length))

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_pickle_weights: bool = False,
        precision: str = "fp32",
        flag: str = "model",
    ) -> CrossEncoderPredictor:
        """Load a saved folder or Hub repo; safetensors weights only unless ``trust_pickle_weights=True``.

        ``precision="bf16"`` loads the weights in bf16 and runs the whole forward in bf16 (several
        times faster on CPUs with AVX512-BF16/AMX and on GPUs; scores differ from fp32 in the third
        decimal); ``"auto"`` picks bf16 where the hardware computes it natively. The default fp32
        gives exactly the scores of plain transformers.

        A model that cannot be loaded (no such folder, no config.json, truncated or pickle-only weights, a Hub id not
        in the cache while offline) is a `ConfigError` naming ``flag`` (e.g. '--compare'), checked before loading.
        """
        name_or_path = check_model_source(name_or_path, flag, trust_pickle_weights, revision)
        use_safetensors = safetensors_only(name_or_path, trust_pickle_weights)
        precision = resolve_precision(precision)
        extra: dict[str, Any] = {}
        if precision == "bf16":
            # bf16 weights rather than autocast over fp32 ones: autocast re-casts every weight and
            # activation on each forward (a quarter of the CPU time at STS lengths); pure bf16 scores
            # the STS-B test pairs ~1.3x faster with the same Spearman to 1e-4.
            extra["dtype"] = torch.bfloat16
            if device is None or torch.device(device).type == "cpu":
                # On CPU, SDPA's flash kernel costs ~15% of a bf16 forward at STS lengths; the plain
                # softmax(QKᵀ)V path is faster there (and gives the same scores to bf16 precision).
                extra["attn_implementation"] = "eager"
        with model_load_errors(name_or_path, flag):
            model = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, revision=revision, use_safetensors=use_safetensors, **extra
            )
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, max_length=max_length, precision=precision)

    @property
    def label_scale(self) -> LabelScale:
        return LabelScale(*self.semantics.label_scale)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.semantics.activation == "sigmoid":
            return torch.sigmoid(logits.float()).squeeze(-1)
        if self.semantics.activation == "softmax":
            return torch.softmax(logits.float(), dim=-1)
        return logits.float().squeeze(-1)

    @torch.inference_mode()
    def predict(
        self,
        pairs: Sequence[tuple[str, str]] | Sequence[Sequence[str]],
        batch_size: int = 64,
        rescale: bool = False,
        symmetric: bool | None = None,
    ) -> np.ndarray:
        """Score pairs; returns scores in input order.

        Scores are on the 0–1 training scale (sigmoid of the logit) unless ``rescale=True``, which maps
        them back onto the original label scale recorded at training time (e.g. 0–5 for STS-B).
        ``symmetric=True`` averages the scores of (a, b) and (b, a): the result no longer depends on
        the order, at twice the compute (plain transformers gives the one-order score). The default
        (None) is what the model recorded at training time (``hf_crossenc.symmetric`` in config.json).
        Pairs are tokenized once and batched by token length, so little compute goes to padding. A batch that
        runs out of memory (``torch.OutOfMemoryError``, e.g. on a GPU) is retried at half the size, and the rest
        of the call keeps that size; the scores do not depend on the batch size beyond float rounding.
        """
        if len(pairs) == 0:
            return np.zeros((0,), dtype=np.float32)
        for i, pair in enumerate(pairs):
            if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
                raise ValueError(f"pair {i} must be two strings, got {pair!r}")
        out, batch_size = self._scores(pairs, batch_size)
        if symmetric is None:
            symmetric = bool(self.semantics.symmetric)
        if symmetric:  # at the batch size the first pass ended with (smaller if it ran out of memory)
            out = (out + self._scores([(b, a) for a, b in pairs], batch_size)[0]) / 2
        if rescale and self.semantics.activation == "sigmoid":
            out = self.label_scale.denormalise(out)
        return out

    @torch.inference_mode()
    def logits(self, pairs: Sequence[tuple[str, str]] | Sequence[Sequence[str]], batch_size: int = 64) -> np.ndarray:
        """Raw logits of a one-score model, in input order (one order per pair): what a teacher's softmax needs."""
        if len(pairs) == 0:
            return np.zeros((0,), dtype=np.float32)
        return self._scores(pairs, batch_size, activate=False)[0]

    def _scores(self, pairs: Sequence[Sequence[str]], batch_size: int, activate: bool = True) -> tuple[np.ndarray, int]:
        """Scores in input order, and the batch size the call ended with (halved on each out-of-memory error)."""
        encoded = self.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation="longest_first", max_length=self.max_length)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        device = self.model.device
        # A model already in bf16 (from_pretrained(precision="bf16")) needs no autocast; an fp32
        # model handed to the constructor with precision="bf16" is left as it is and autocast.
        autocast = self.precision == "bf16" and self.model.dtype != torch.bfloat16
        out = np.empty(0, dtype=np.float32)
        start, size = 0, max(1, batch_size)
        while start < len(order):
            idx = order[start : start + size]
            try:
                batch = {k: v.to(device) for k, v in pad_rows(encoded, idx, self.tokenizer).items()}
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast), first_token_only(self.model):
                    logits = self.model(**batch).logits
            except torch.OutOfMemoryError:
                # A GPU out of memory, typically on the longest batches, which come last (a CPU allocation failure
                # is a plain RuntimeError and is raised). One pair that does not fit fails too.
                if size == 1:
                    raise
                logits = None
            if logits is None:  # outside the except block, so that the failed batch's tensors are freed first
                batch = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                logger.warning("out of memory scoring %d pairs of up to %d tokens at once: retrying with batches of %d",
                               len(idx), max(len(encoded["input_ids"][i]) for i in idx), size // 2)  # fmt: skip
                size //= 2  # this batch again, and the later, longer ones, at half the size
                continue
            scores = (self.activate(logits) if activate else logits.float().squeeze(-1)).cpu().numpy()
            if start == 0:
                out = np.empty((len(pairs), *scores.shape[1:]), dtype=scores.dtype)
            out[idx] = scores
            start += len(idx)
        return out, size

    def rank(self, query: str, passages: Sequence[str], top_k: int | None = None, batch_size: int = 64) -> list[Ranked]:
        """Score every (query, passage) pair and return the passages sorted best first (ties keep input order)."""
        if not isinstance(query, str):
            raise ValueError(f"query must be a string, got {type(query).__name__}")
        if self.semantics.activation == "softmax":
            raise ValueError("rank() needs a one-score model (a reranker or similarity model), not a multi-class classifier")
        scores = self.predict([(query, p) for p in passages], batch_size=batch_size)
        order = np.argsort(-scores, kind="stable")
        if top_k is not None:
            order = order[: max(0, top_k)]
        return [Ranked(int(i), float(scores[i]), passages[i]) for i in order]

    def classify(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64, threshold: float | None = None) -> list[str]:
        """Class names of the pairs: argmax of the softmax, or for one-logit classifiers score >= threshold
        (default: the threshold recorded at training time, else 0.5)."""
        scores = self.predict(pairs, batch_size=batch_size)
        config = self.model.config
        if scores.ndim == 2:
            return [config.id2label[int(i)] for i in scores.argmax(-1)]
        names = self.semantics.label_names or ["0", "1"]
        cut = threshold if threshold is not None else (self.semantics.threshold if self.semantics.threshold is not None else 0.5)
        return [names[1] if s >= cut else names[0] for s in scores]


def prediction_record(predictor: CrossEncoderPredictor, score: Any) -> dict[str, Any]:
    """One scored pair as `hf-crossenc predict` prints it: the score (rounded to 6 decimals) and, for classifiers,
    the predicted class (binary: score >= the stored threshold, else 0.5), or for multi-class models (`score` a row of
    softmax probabilities) the argmax class and every class probability."""
    semantics = predictor.semantics
    if getattr(score, "ndim", 0) == 1:  # softmax probabilities
        names = [predictor.model.config.id2label[i] for i in range(len(score))]
        return {"label": names[int(score.argmax())], "probabilities": {n: round(float(p), 6) for n, p in zip(names, score)}}
    out = {"score": round(float(score), 6)}
    if semantics.task == "classification":
        negative, positive = semantics.label_names or ["0", "1"]
        threshold = semantics.threshold if semantics.threshold is not None else 0.5
        out["label"] = positive if score >= threshold else negative
    return out


def pad_rows(encoded: Any, rows: Sequence[int], tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
    """Pad the tokenized ``rows`` of ``encoded`` (unpadded lists) into one batch of tensors.

    Same result as ``tokenizer.pad([...features...], padding=True, return_tensors="pt")`` on the
    tokenizer's padding side, without building a dict per row (43 -> 5 ms per pass over the 1379
    STS-B test pairs). Fields without a known pad value fall back to ``tokenizer.pad``.
    """
    pad_values = {"input_ids": tokenizer.pad_token_id, "attention_mask": 0, "token_type_ids": tokenizer.pad_token_type_id}
    if pad_values["input_ids"] is None or any(k not in pad_values for k in encoded):
        return tokenizer.pad([{k: encoded[k][i] for k in encoded} for i in rows], padding=True, return_tensors="pt")
    width = max(len(encoded["input_ids"][i]) for i in rows)
    left = tokenizer.padding_side == "left"
    batch = {}
    for key, sequences in encoded.items():
        array = np.full((len(rows), width), pad_values[key], dtype=np.int64)
        for r, i in enumerate(rows):
            sequence = sequences[i]
            if left:
                array[r, width - len(sequence) :] = sequence
            else:
                array[r, : len(sequence)] = sequence
        batch[key] = torch.from_numpy(array)
    return batch
