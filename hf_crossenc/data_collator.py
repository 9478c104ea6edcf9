"""Joint tokenization of sentence pairs into padded tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from .data import LABEL, TEXT_A, TEXT_B


@dataclass
class CrossEncoderDataCollator:
    """Tokenize both texts of each pair *together* (``[CLS] a [SEP] b [SEP]``) and pad the batch.

    Padding is dynamic (to the longest pair in the batch, optionally rounded up to a multiple of
    ``pad_to_multiple_of``); pairs longer than ``max_length`` are truncated, longest text first.
    Only tensors are returned, so the batch can go straight into the model.

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
    label_dtype: torch.dtype = torch.float32

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("CrossEncoderDataCollator received an empty batch")
        batch = self.tokenizer(
            [f[self.text_a_column] for f in features],
            [f[self.text_b_column] for f in features],
            truncation="longest_first" if self.max_length else False,
            max_length=self.max_length,
            padding=True,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        out = {key: value for key, value in batch.items() if isinstance(value, torch.Tensor)}
        if self.label_column in features[0]:
            out["labels"] = torch.tensor([f[self.label_column] for f in features], dtype=self.label_dtype)
        return out
