"""Joint tokenization of sentence pairs into padded tensors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
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
    """Token length of each pair, computed once, for length-grouped batching. A dataset kept in files (the Arrow cache
    of `hf_crossenc.arrow_data`) gets them from the cache beside it when the same tokenizer, max_length and data have
    been measured before, else from its distinct texts (`pair_lengths`)."""
    fingerprint = lengths_fingerprint(dataset, tokenizer, max_length, column)
    if fingerprint is not None and getattr(dataset, "cache_files", None):
        from .arrow_data import cache_dir

        cached = cache_dir() / f"lengths-{fingerprint}.npy"
        if not cached.is_file():
            values = pair_lengths(dataset, tokenizer, max_length)
            if values is not None:
                partial = cached.with_name(f"{cached.name}.{os.getpid()}.part.npy")
                np.save(partial, values)
                os.replace(partial, cached)
        if cached.is_file():
            return dataset.add_column(column, np.load(cached), new_fingerprint=fingerprint)

    def lengths(batch: dict[str, list[str]]) -> dict[str, list[int]]:
        enc = tokenizer(batch[TEXT_A], batch[TEXT_B], truncation="longest_first", max_length=max_length)
        return {column: [len(ids) for ids in enc["input_ids"]]}

    return dataset.map(lengths, batched=True, batch_size=1000, desc="token lengths", new_fingerprint=fingerprint)


LENGTH_BLOCK = 1 << 18
"""Pairs whose distinct texts `pair_lengths` tokenizes at once (bounds its memory)."""


def pair_lengths(dataset: Any, tokenizer: Any, max_length: int | None) -> np.ndarray | None:
    """Each pair's token length, ``min(len(a) + len(b) + special tokens, max_length)``, from the token counts of the
    distinct texts (a text repeated over many pairs is tokenized once). That is the joint tokenization's length for
    tokenizers that tokenize each text of a pair on its own (BERT's and most others); None (tokenize the pairs) when
    the first pairs, tokenized jointly, show otherwise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    special = tokenizer.num_special_tokens_to_add(pair=True)
    out = np.empty(len(dataset), dtype=np.int64)
    start = 0
    for a, b in _text_blocks(dataset):
        encoded = pc.dictionary_encode(pa.chunked_array(a.chunks + b.chunks, type=a.type)).combine_chunks()
        texts = encoded.dictionary.to_pylist()
        counts = np.zeros(len(texts), dtype=np.int64)
        for k in range(0, len(texts), 1000):
            ids = tokenizer(
                texts[k : k + 1000], add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False
            )
            counts[k : k + 1000] = [len(x) for x in ids["input_ids"]]
        index = encoded.indices.to_numpy()
        lengths = counts[index[: len(a)]] + counts[index[len(a) :]] + special
        if start + len(lengths) > len(out):
            return None
        out[start : start + len(lengths)] = np.minimum(lengths, max_length) if max_length else lengths
        start += len(lengths)
    if start != len(out):
        return None  # the file holds other rows than the dataset (a slice of it)
    probe = dataset.select_columns([TEXT_A, TEXT_B])[: min(1000, len(dataset))]
    joint = tokenizer(probe[TEXT_A], probe[TEXT_B], truncation="longest_first", max_length=max_length)["input_ids"]
    return out if [len(x) for x in joint] == out[: len(joint)].tolist() else None


def _text_blocks(dataset: Any) -> Any:
    """(text_a, text_b) chunked arrays of up to LENGTH_BLOCK pairs in order: streamed from the dataset's one Arrow file
    when it is read as a whole (its mapped pages would otherwise all stay resident), else sliced from its table."""
    import pyarrow as pa

    files = dataset.cache_files
    if dataset._indices is None and len(files) == 1:
        with pa.OSFile(files[0]["filename"]) as stream:
            reader = pa.ipc.open_stream(stream)
            if {TEXT_A, TEXT_B} <= set(reader.schema.names):
                pending: list[Any] = []
                for batch in reader:
                    pending.append(batch)
                    if sum(b.num_rows for b in pending) >= LENGTH_BLOCK:
                        block = pa.Table.from_batches(pending)
                        yield block.column(TEXT_A), block.column(TEXT_B)
                        pending = []
                if pending:
                    block = pa.Table.from_batches(pending)
                    yield block.column(TEXT_A), block.column(TEXT_B)
                return
    table = dataset.with_format("arrow")
    for start in range(0, len(dataset), LENGTH_BLOCK):
        block = table[start : start + LENGTH_BLOCK]
        yield block.column(TEXT_A), block.column(TEXT_B)


def lengths_fingerprint(dataset: Any, tokenizer: Any, max_length: int, column: str) -> str | None:
    """A fingerprint of the lengths' dataset that is the same in every run (the data's fingerprint, the tokenizer's
    full definition, max_length): `datasets` cannot hash a tokenizer the same way twice. None (let `datasets` choose)
    for a tokenizer without a serialisable definition."""
    from datasets.fingerprint import Hasher

    backend = getattr(tokenizer, "backend_tokenizer", None)
    source = getattr(dataset, "_fingerprint", None)
    if backend is None or source is None:
        return None
    import json

    # Without the truncation and padding state, which every call of the tokenizer sets anew.
    state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    definition = [type(tokenizer).__name__, state, getattr(tokenizer, "truncation_side", None)]
    return Hasher.hash(["token-lengths-1", source, definition, max_length, column])
