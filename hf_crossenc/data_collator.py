"""Joint tokenization of sentence pairs into padded tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from .data import GROUP, LABEL, NEGATIVES, TARGETS, TEXT_A, TEXT_B

LENGTH_GROUPED = ("group_by_length", "batch_rebalance")
"""Sampling strategies whose samplers read each example's token length (`add_lengths`)."""


@dataclass
class CrossEncoderDataCollator:
    """Tokenize both texts of each pair *together* (``[CLS] a [SEP] b [SEP]``) and pad the batch.

    Padding is dynamic (to the longest pair in the batch, optionally rounded up to a multiple of
    ``pad_to_multiple_of``); pairs longer than ``max_length`` are truncated, longest text first.
    Only tensors are returned, so the batch can go straight into the model.

    Two more input forms serve reranking:

    * features with a ``negatives`` list (listwise training groups): each becomes
      ``1 + len(negatives)`` rows ``(text_a, text_b), (text_a, negative_1), ...`` in order, and
      ``labels`` is a ``(groups, group_size)`` target distribution: the features' ``targets`` if
      given (a teacher's soft targets), else all mass on the positive;
    * features with a ``group_id`` (evaluation pairs): ``labels`` is ``(pairs, 2)``, holding the
      relevance label and the query's group id, so metrics can be grouped by query whatever order
      (or process) the pairs were evaluated in.

    Example::

        >>> collator = CrossEncoderDataCollator(tokenizer, max_length=128)
        >>> batch = collator([{"text_a": "A man eats.", "text_b": "Someone is eating.", "label": 0.8}])
        >>> sorted(batch)
        ['attention_mask', 'input_ids', 'labels', 'token_type_ids']
        >>> batch["labels"]
        tensor([0.8000])
    """

    tokenizer: PreTrainedTokenizerBase
    max_length: int | None = 256
    pad_to_multiple_of: int | None = 8
    text_a_column: str = TEXT_A
    text_b_column: str = TEXT_B
    label_column: str = LABEL
    label_dtype: torch.dtype | None = None  # None: float32 for scores, int64 for class ids

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("CrossEncoderDataCollator received an empty batch")
        if NEGATIVES in features[0]:
            return self._groups(features)
        out = self._tokenize([f[self.text_a_column] for f in features], [f[self.text_b_column] for f in features])
        if self.label_column in features[0]:
            labels = torch.tensor([f[self.label_column] for f in features], dtype=self.label_dtype)
            if GROUP in features[0]:
                labels = torch.stack([labels.float(), torch.tensor([float(f[GROUP]) for f in features])], dim=-1)
            out["labels"] = labels
        return out

    def _groups(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        sizes = {1 + len(f[NEGATIVES]) for f in features}
        if len(sizes) != 1:
            raise ValueError(f"listwise groups in one batch must have one size, got {sorted(sizes)}")
        size = sizes.pop()
        texts_a = [f[self.text_a_column] for f in features for _ in range(size)]
        texts_b = [p for f in features for p in [f[self.text_b_column], *f[NEGATIVES]]]
        out = self._tokenize(texts_a, texts_b)
        if TARGETS in features[0]:
            out["labels"] = torch.tensor([f[TARGETS] for f in features], dtype=torch.float32)
        else:
            target = torch.zeros(len(features), size)
            target[:, 0] = 1.0
            out["labels"] = target
        return out

    def _tokenize(self, texts_a: list[str], texts_b: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            texts_a,
            texts_b,
            truncation="longest_first" if self.max_length else False,
            max_length=self.max_length,
            padding=True,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        return {key: value for key, value in batch.items() if isinstance(value, torch.Tensor)}


def add_lengths(dataset: Any, tokenizer: Any, max_length: int, column: str) -> Any:
    """Token length of each pair, computed once, for length-grouped batching."""

    def lengths(batch: dict[str, list[str]]) -> dict[str, list[int]]:
        enc = tokenizer(batch[TEXT_A], batch[TEXT_B], truncation="longest_first", max_length=max_length)
        return {column: [len(ids) for ids in enc["input_ids"]]}

    return dataset.map(lengths, batched=True, batch_size=1000, desc="token lengths")
