"""Pair-classification splits over an `ArrowTable`: `hf_crossenc.labels.class_names` and `build_class_split` over
Arrow chunks, with the same errors, datasets and class counts, the split memory-mapped from the `datasets` cache.

Each chunk of the label column is dictionary-encoded (`pyarrow.compute.dictionary_encode`): every distinct value is
read once by the row path's own parser (`hf_crossenc.labels.class_names_of`), and the labels become numpy arrays of
class ids. The first bad row (an unreadable label, one of the other kind, a class outside the vocabulary) is handed to
the row-by-row functions, which raise the row path's error; texts are checked with `hf_crossenc.arrow_data.check_texts`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_data import STATS_KEY, ArrowTable, _digest, _first, _write_batches, cache_dir, check_texts, mapped_dataset
from .data import DataError, PairColumns, PairSplit
from .labels import LabelVocab, class_features, class_names_of, encode_labels, is_integer_text, kind_and_name

_BAD = -1
"""Class id of a label that does not parse (empty, fractional, ...)."""


@dataclass
class ArrowClasses:
    """The class names of a column's first `limit` rows: `names` in order of first appearance, and the id (index into
    `names`) of every row."""

    names: list[str]
    ids: np.ndarray


def _label_chunks(table: ArrowTable, column: str, limit: int | None) -> Iterator[tuple[list[Any], np.ndarray]]:
    """(distinct values, index of every row's value) of each chunk; a null's index is `len(values)` (its value None)."""
    for chunk in table.chunks(column, limit):
        if pa.types.is_dictionary(chunk.type):  # e.g. a Parquet categorical: its dictionary may hold unused values
            chunk = chunk.dictionary_decode()
        if pa.types.is_null(chunk.type):
            yield [None], np.zeros(len(chunk), dtype=np.int64)
            continue
        try:
            encoded = pc.dictionary_encode(chunk)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # nested values: one "distinct" value per row
            yield chunk.to_pylist(), np.arange(len(chunk), dtype=np.int64)
            continue
        values = [*encoded.dictionary.to_pylist(), None]
        yield values, encoded.indices.fill_null(len(values) - 1).to_numpy(zero_copy_only=False).astype(np.int64)


def _row_value(table: ArrowTable, column: str, index: int) -> Any:
    return table.arrow.column(column)[index].as_py()


def arrow_classes(table: ArrowTable, columns: PairColumns, max_samples: int | None = None) -> ArrowClasses:
    """`hf_crossenc.labels.class_names` over Arrow chunks: the same first error, the names as ids."""
    column = columns.label
    assert column is not None
    limit = None if max_samples is None or max_samples >= len(table) else max_samples
    if not len(table) or limit == 0:
        raise DataError("the split has no data rows.", source=table.source, hint="Provide at least one row.")
    names: dict[str, int] = {}
    kinds: list[str] = []  # of each name
    first_kind: str | None = None
    parts, offset = [], 0
    for values, index in _label_chunks(table, column, limit):
        ids = np.empty(len(values), dtype=np.int64)
        for k, value in enumerate(values):
            try:
                parsed = kind_and_name(value)
            except ValueError:
                parsed = None
            if parsed is None:
                ids[k] = _BAD
                continue
            kind, name = parsed
            if name not in names:
                names[name] = len(names)
                kinds.append(kind)
            ids[k] = names[name]
        row_ids = ids[index]
        if first_kind is None:
            first_kind = kinds[row_ids[0]] if row_ids[0] != _BAD else ""
        good = np.array([kind == first_kind for kind in kinds] + [False], dtype=bool)  # the last: _BAD
        bad = _first(~good[row_ids])
        if bad is not None:
            _raise_label_error(table, column, offset + bad)
        parts.append(row_ids)
        offset += len(row_ids)
    return ArrowClasses(list(names), np.concatenate(parts))


def _raise_label_error(table: ArrowTable, column: str, index: int) -> None:
    """The row path's error for row `index` (its first label compared with row 0's)."""
    positions = [index] if index == 0 else [0, index]
    rows = [{column: _row_value(table, column, i)} for i in positions]
    class_names_of(rows, column, table.source, lambda k: table.locate(positions[k]))
    raise AssertionError("class_names_of accepted a label the chunk check refused")


def arrow_class_names(table: ArrowTable, columns: PairColumns, max_samples: int | None = None) -> tuple[list[str], bool]:
    """The distinct class names in order of first appearance (all `hf_crossenc.labels.build_vocab` reads of
    `class_names`'s list) and whether they are numbers."""
    names = arrow_classes(table, columns, max_samples).names
    return names, all(is_integer_text(n) for n in names)


def build_arrow_class_split(
    table: ArrowTable, columns: PairColumns, *, name: str, vocab: LabelVocab, max_samples: int | None = None
) -> PairSplit:
    """`hf_crossenc.labels.build_class_split` over an `ArrowTable`: the same checks in the same order (labels, first
    texts, second texts, classes outside the vocabulary), the same dataset and counts, memory-mapped from the cache."""
    assert columns.label is not None
    limit = None if max_samples is None or max_samples >= len(table) else max_samples
    key = _digest("classes", table.key, columns.text_a, columns.text_b, columns.label, vocab.names, vocab.binary, limit)
    target = cache_dir() / f"classes-{key}.arrow"
    if not target.is_file():
        _write_class_split(table, columns, vocab, limit, target)
    metadata = pa.ipc.open_stream(pa.memory_map(str(target))).schema.metadata or {}
    stats = json.loads(metadata.get(STATS_KEY, b"{}"))
    return PairSplit(name=name, source=table.source, dataset=mapped_dataset(target), columns=columns, raw_label_stats=stats)


def _write_class_split(table: ArrowTable, columns: PairColumns, vocab: LabelVocab, limit: int | None, target: Any) -> None:
    assert columns.label is not None
    classes = arrow_classes(table, columns, limit)
    check_texts(table, columns.text_a, limit)
    check_texts(table, columns.text_b, limit)
    to_vocab = np.array([_vocab_index(vocab, n) for n in classes.names], dtype=np.int64)
    labels = to_vocab[classes.ids]
    bad = _first(labels < 0)
    if bad is not None:
        encode_labels([classes.names[classes.ids[bad]]], vocab, table.source, columns.label, lambda _: table.locate(bad))
        raise AssertionError("encode_labels accepted a class the vocabulary lacks")
    counts = np.bincount(labels, minlength=len(vocab.names))
    stats = {"counts": {n: int(c) for n, c in zip(vocab.names, counts)}}
    schema = class_features(vocab).arrow_schema
    schema = schema.with_metadata({**(schema.metadata or {}), STATS_KEY: json.dumps(stats).encode()})
    values = labels.astype(np.float32) if vocab.binary else labels

    def batches() -> Iterator[pa.RecordBatch]:
        start = 0
        for batch in table.batches(limit):
            arrays = [batch.column(columns.text_a).cast(pa.string()), batch.column(columns.text_b).cast(pa.string())]
            arrays.append(pa.array(values[start : start + batch.num_rows]))
            start += batch.num_rows
            yield pa.record_batch(arrays, schema=schema)

    if not _write_batches(target, batches(), schema):
        raise DataError("cannot be written to the Arrow cache.", source=table.source, hint=f"Check that {target.parent} is writable.")


def _vocab_index(vocab: LabelVocab, name: str) -> int:
    index = vocab.index(name)
    return -1 if index is None else index
