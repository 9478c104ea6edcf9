"""The "positive_negatives" and "lists" reranking shapes from an Arrow table: flattened over chunks, then grouped by
`hf_crossenc.arrow_ranking.arrow_groups`.

`hf_crossenc.ranking.read_groups` reads these two shapes row by row: each row's query, then (positive/negatives) its
positive, its non-empty negative cells and the items of a ``negatives`` list, or (lists) its passages and 0/1 labels
item by item. Here each record batch is checked with `pyarrow.compute` in the same terms; the first row with any
problem is handed to the row-by-row checks below, which raise the row path's error (file, row, column such as
``negatives[3]``). A clean batch becomes long (query, passage, label) rows, each carrying its source row number in
``__row__``, written batch by batch to an Arrow file in the cache (`hf_crossenc.arrow_data.cache_dir`); that file,
opened as an `ArrowTable`, goes to `arrow_groups`, which gives the row path's groups (query order, candidate order,
a repeated candidate kept once at its first place and relevant if any copy is, `QueryGroup.row`).

A "lists" row whose lists are empty makes a query without candidates, which `ArrowGroups` cannot hold: such a table
is left to the row path (`None`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_data import BLANK, ROW, ArrowTable, _digest, _write_batches, cache_dir, memory_mapped
from .arrow_ranking import ArrowGroups, arrow_groups
from .data import check_text, text_problem
from .errors import DataError
from .query_groups import _relevance

QUERY, PASSAGE, LABEL = "query", "passage", "label"
FLAT_SCHEMA = pa.schema([(QUERY, pa.string()), (PASSAGE, pa.string()), (LABEL, pa.int64()), (ROW, pa.int64())])
"""The long form of both shapes: one candidate per row, with the source row it came from."""
_LISTS = (list, tuple, np.ndarray)


def positive_negative_groups(
    table: ArrowTable, query_col: str, positive_col: str, negative_cols: list[str], list_col: str | None, limit: int | None
) -> ArrowGroups | None:
    """`read_groups` of the "positive_negatives" shape over an `ArrowTable` (same groups, same first error)."""
    columns = (query_col, positive_col, negative_cols, list_col)

    def flatten(batch: pa.RecordBatch, offset: int) -> pa.RecordBatch | None:
        return _positive_negative_batch(table, batch, offset, *columns)

    return _flat_groups(table, ["positive_negatives", *columns], flatten, limit)


def list_groups(table: ArrowTable, query_col: str, passages_col: str, labels_col: str, limit: int | None) -> ArrowGroups | None:
    """`read_groups` of the "lists" shape over an `ArrowTable` (same groups, same first error); None when a row has
    empty lists (a query without candidates: the row path keeps it)."""

    def flatten(batch: pa.RecordBatch, offset: int) -> pa.RecordBatch | None:
        return _list_batch(table, batch, offset, query_col, passages_col, labels_col)

    return _flat_groups(table, ["lists", query_col, passages_col, labels_col], flatten, limit)


class _NoCandidate(DataError):
    """A row without candidates: stops the writing (nothing is written) and hands the table to the row path."""


def _flat_groups(
    table: ArrowTable, key_parts: list[Any], flatten: Callable[[pa.RecordBatch, int], pa.RecordBatch | None], limit: int | None
) -> ArrowGroups | None:
    limit = None if limit is None or limit >= len(table) else limit
    if limit is not None and limit <= 0:
        return None  # no rows: the row path's empty result
    key = _digest("shape", table.key, *key_parts, limit)
    target = cache_dir() / f"shape-{key}.arrow"
    if not target.is_file():
        stopped: list[DataError] = []

        def batches() -> Iterator[pa.RecordBatch]:
            offset = 0
            for batch in table.batches(limit):
                try:
                    flat = flatten(batch, offset)
                    if flat is None:
                        raise _NoCandidate("a row without candidates", source=table.source)
                except DataError as err:
                    stopped.append(err)
                    raise
                offset += batch.num_rows
                yield flat

        if not _write_batches(target, batches(), FLAT_SCHEMA):
            if stopped and isinstance(stopped[0], _NoCandidate):
                return None
            if stopped:
                raise stopped[0]
            raise DataError("cannot be written to the Arrow cache.", source=table.source, hint=f"Check that {target.parent} is writable.")
    flat_table = ArrowTable(table.source, [QUERY, PASSAGE, LABEL], memory_mapped(target), key, row_word=table.row_word, path=target)
    return arrow_groups(flat_table, QUERY, PASSAGE, LABEL, None)


# --------------------------------------------------------------------------------------------
# Checks of a batch, in the row path's terms
# --------------------------------------------------------------------------------------------


def _plain(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _is_list(type_: pa.DataType) -> bool:
    return pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_)


def _refused(array: pa.Array) -> np.ndarray:
    """Where `check_text` refuses the value (missing, not a string, blank)."""
    array = _plain(array)
    if _is_text(array.type):
        return np.asarray(pc.fill_null(pc.match_substring_regex(array, BLANK), True).to_numpy(zero_copy_only=False), dtype=bool)
    return np.array([text_problem(value) is not None for value in array.to_pylist()], dtype=bool)


def _no_negative(value: Any) -> bool:
    """The row path's empty negative cell (no candidate, no error)."""
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and np.isnan(value))


def _absent(array: pa.Array) -> np.ndarray:
    array = _plain(array)
    if _is_text(array.type):
        return np.asarray(pc.fill_null(pc.match_substring_regex(array, BLANK), True).to_numpy(zero_copy_only=False), dtype=bool)
    return np.array([_no_negative(value) for value in array.to_pylist()], dtype=bool)


def _lengths(array: pa.Array) -> np.ndarray:
    """Each list's length, -1 where the value is no list (null, or a column of another type)."""
    if not _is_list(array.type):
        return np.full(len(array), -1, dtype=np.int64)
    return np.asarray(pc.list_value_length(array).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _items(array: pa.Array, lengths: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The items of a list column (null lists have none) and the batch row of each."""
    if not _is_list(array.type):
        return pa.array([], pa.string()), np.zeros(0, dtype=np.int64)
    return _plain(pc.list_flatten(array)), np.repeat(np.arange(len(array)), np.maximum(lengths, 0))


def _relevances(items: pa.Array, table: ArrowTable) -> np.ndarray:
    """`_relevance` of every item (-1 where it raises), computed once per distinct value."""

    def relevance(value: Any) -> int:
        try:
            return _relevance(value, table, 0, LABEL)  # type: ignore[arg-type]
        except DataError:
            return -1

    try:
        encoded = pc.dictionary_encode(items)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return np.array([relevance(value) for value in items.to_pylist()], dtype=np.int64)
    values = np.array([relevance(v) for v in [*encoded.dictionary.to_pylist(), None]], dtype=np.int64)
    return values[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)]


def _source_rows(batch: pa.RecordBatch, offset: int) -> np.ndarray:
    if ROW in batch.schema.names:
        return np.asarray(batch.column(ROW).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.arange(offset + 1, offset + batch.num_rows + 1, dtype=np.int64)


def _first_bad(bad: np.ndarray) -> int | None:
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


def _row(table: ArrowTable, index: int) -> dict[str, Any]:
    return table.arrow.slice(index, 1).to_pylist()[0]


def _long_batch(query: pa.Array, parts: list[tuple[np.ndarray, int, pa.Array, np.ndarray]], rows: np.ndarray) -> pa.RecordBatch:
    """Parts of (batch row, slot, texts, labels) in the row path's order: by row, then slot, then item."""
    owner = np.concatenate([p[0] for p in parts]).astype(np.int64)
    slot = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in parts])
    order = np.lexsort((slot, owner))  # stable: a slot's items keep their order
    texts = pa.concat_arrays([_plain(p[2]).cast(pa.string()) for p in parts]).take(pa.array(order, pa.int64()))
    labels = np.concatenate([p[3] for p in parts]).astype(np.int64)[order]
    owners = pa.array(owner[order], pa.int64())
    arrays = [_plain(query).cast(pa.string()).take(owners), texts, pa.array(labels, pa.int64()), pa.array(rows[owner[order]], pa.int64())]
    return pa.record_batch(arrays, schema=FLAT_SCHEMA)


# --------------------------------------------------------------------------------------------
# positive / negatives
# --------------------------------------------------------------------------------------------


def _positive_negative_batch(
    table: ArrowTable, batch: pa.RecordBatch, offset: int, query_col: str, positive_col: str, negative_cols: list[str], list_col: str | None
) -> pa.RecordBatch:
    n = batch.num_rows
    rows = np.arange(n)
    bad = _refused(batch.column(query_col)) | _refused(batch.column(positive_col))
    parts = [(rows, 0, batch.column(positive_col), np.ones(n, dtype=np.int64))]
    for slot, col in enumerate(negative_cols, start=1):
        values = batch.column(col)
        absent = _absent(values)
        bad |= ~absent & _refused(values)
        keep = np.flatnonzero(~absent)
        parts.append((keep, slot, _plain(values).take(pa.array(keep, pa.int64())), np.zeros(len(keep), dtype=np.int64)))
    if list_col:
        values = batch.column(list_col)
        items, owner = _items(values, _lengths(values))
        bad[owner[_refused(items)]] = True
        parts.append((owner, len(negative_cols) + 1, items, np.zeros(len(owner), dtype=np.int64)))
    first = _first_bad(bad)
    if first is not None:
        _raise_positive_negative_row(table, offset + first, query_col, positive_col, negative_cols, list_col)
    return _long_batch(batch.column(query_col), parts, _source_rows(batch, offset))


def _raise_positive_negative_row(
    table: ArrowTable, index: int, query_col: str, positive_col: str, negative_cols: list[str], list_col: str | None
) -> None:
    """The row path's checks of one row, in its order: they raise its error."""
    row = _row(table, index)
    check_text(row.get(query_col), table, index, query_col)  # type: ignore[arg-type]
    check_text(row.get(positive_col), table, index, positive_col)  # type: ignore[arg-type]
    for col in negative_cols:
        if not _no_negative(row.get(col)):
            check_text(row.get(col), table, index, col)  # type: ignore[arg-type]
    if list_col and isinstance(row.get(list_col), _LISTS):
        for k, value in enumerate(row[list_col]):
            check_text(value, table, index, f"{list_col}[{k}]")  # type: ignore[arg-type]
    raise AssertionError("the row-by-row checks accepted a row the batch checks refused")


# --------------------------------------------------------------------------------------------
# lists
# --------------------------------------------------------------------------------------------


def _list_batch(
    table: ArrowTable, batch: pa.RecordBatch, offset: int, query_col: str, passages_col: str, labels_col: str
) -> pa.RecordBatch | None:
    passages, labels = batch.column(passages_col), batch.column(labels_col)
    sizes, label_sizes = _lengths(passages), _lengths(labels)
    bad = (sizes < 0) | (label_sizes < 0) | (sizes != label_sizes) | _refused(batch.column(query_col))
    texts, owner = _items(passages, sizes)
    bad[owner[_refused(texts)]] = True
    values, label_owner = _items(labels, label_sizes)
    relevance = _relevances(values, table)
    bad[label_owner[relevance < 0]] = True
    first = _first_bad(bad)
    if first is not None:
        _raise_list_row(table, offset + first, query_col, passages_col, labels_col)
    if (sizes == 0).any():
        return None
    return _long_batch(batch.column(query_col), [(owner, 0, texts, relevance)], _source_rows(batch, offset))


def _raise_list_row(table: ArrowTable, index: int, query_col: str, passages_col: str, labels_col: str) -> None:
    """The row path's checks of one row (`hf_crossenc.ranking._add_list_rows`), in its order: they raise its error."""
    row = _row(table, index)
    passages, labels = row.get(passages_col), row.get(labels_col)
    where = {"source": table.source, "row": table.locate(index), "column": labels_col}
    if not isinstance(passages, _LISTS) or not isinstance(labels, _LISTS):
        raise DataError(f"{passages_col!r} and {labels_col!r} must both be lists.", **where)
    if len(passages) != len(labels):
        raise DataError(f"{len(passages)} passages but {len(labels)} labels.", **where)
    check_text(row.get(query_col), table, index, query_col)  # type: ignore[arg-type]
    for k, (passage, label) in enumerate(zip(passages, labels)):
        check_text(passage, table, index, f"{passages_col}[{k}]")  # type: ignore[arg-type]
        _relevance(label, table, index, labels_col, k)  # type: ignore[arg-type]
    raise AssertionError("the row-by-row checks accepted a row the batch checks refused")
