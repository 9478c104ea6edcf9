"""Reranking rows (``query, passage, label``) from an Arrow table: query groups as arrays, not Python objects.

`hf_crossenc.ranking.read_groups` groups a table's candidates by query text, in the order queries first appear, keeps a
candidate repeated within a query once (at its first place, relevant if any copy is) and checks every row in order
(query, passage, label). `arrow_groups` does the same over Arrow columns: `dictionary_encode` numbers queries and
passages in order of first appearance, numpy finds the repeats, and the first bad row goes to the row-by-row checks,
which raise the same error. The result, `ArrowGroups`, is a sequence of `QueryGroup` built on demand over the
flattened pairs (a memory-mapped dataset in the cache, as `hf_crossenc.arrow_data` keeps splits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_data import ArrowTable, _digest, _first, _write_batches, cache_dir, check_texts, mapped_dataset
from .data import GROUP, LABEL, NEGATIVES, TEXT_A, TEXT_B, check_text
from .errors import DataError
from .query_groups import QueryGroup, _relevance

PAIR_FEATURES = datasets.Features(
    {TEXT_A: datasets.Value("string"), TEXT_B: datasets.Value("string"), LABEL: datasets.Value("float32"), GROUP: datasets.Value("int64")}
)


class ArrowGroups(Sequence):
    """The query groups of a reranking split over its flattened pairs (sorted by group): `QueryGroup`s on demand."""

    def __init__(self, pairs: datasets.Dataset, offsets: np.ndarray, rows: np.ndarray, key: str = "") -> None:
        self.pairs = pairs
        self.key = key  # of the cached pairs file: the listwise examples are cached under it
        self.offsets = offsets  # group g's pairs: offsets[g]:offsets[g + 1]
        self.rows = rows  # the row (in the file) where each query first appears
        self.table = pairs.data.table  # memory-mapped, no indices mapping (a file of the cache)
        self.labels = np.asarray(self.table.column(LABEL).to_numpy(), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        block = self.table.slice(start, stop - start)
        query = block.column(TEXT_A)[0].as_py()
        return QueryGroup(query, block.column(TEXT_B).to_pylist(), self.labels[start:stop].tolist(), row=int(self.rows[index]))

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def positives_of(self, index: int) -> set[str]:
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        keep = np.flatnonzero(self.labels[start:stop] == 1) + start
        return set(self.table.column(TEXT_B).take(pa.array(keep, pa.int64())).to_pylist())

    def stats(self) -> dict[str, Any]:
        sizes = np.diff(self.offsets)
        positives = np.add.reduceat(self.labels, self.offsets[:-1]) if len(sizes) else np.zeros(0, dtype=np.int64)
        return {
            "queries": len(self),
            "candidates": int(sizes.sum()),
            "positives": int(self.labels.sum()),
            "negatives": int(sizes.sum() - self.labels.sum()),
            "queries_without_positive": int((positives == 0).sum()),
            "queries_without_negative": int((positives == sizes).sum()),
        }


def _relevance_values(table: ArrowTable, column: str, limit: int | None) -> np.ndarray:
    """`_relevance` of every label (-1 where it raises), computed once per distinct value of each chunk."""

    def relevance(value: Any) -> int:
        try:
            return _relevance(value, table, 0, column)  # type: ignore[arg-type]
        except DataError:
            return -1

    parts = []
    for chunk in table.column(column, limit).chunks:
        encoded = pc.dictionary_encode(chunk)
        values = np.array([relevance(v) for v in [*encoded.dictionary.to_pylist(), None]], dtype=np.int64)
        index = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
        parts.append(values[index])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _first_bad_text(table: ArrowTable, column: str, limit: int | None) -> int | None:
    try:
        check_texts(table, column, limit)
    except DataError as err:
        assert err.row is not None
        return _index_of_row(table, err.row)
    return None


def _index_of_row(table: ArrowTable, row: int) -> int:
    numbers = table.arrow.column("__row__").to_numpy() if "__row__" in table.arrow.column_names else None
    return int(np.searchsorted(numbers, row)) if numbers is not None else row - 1


def arrow_groups(table: ArrowTable, query_col: str, passage_col: str, label_col: str, limit: int | None) -> ArrowGroups:
    """The "rows" shape of `read_groups` over an `ArrowTable` (same groups, same order, same first error)."""
    limit = None if limit is None or limit >= len(table) else limit
    size = len(table) if limit is None else limit
    key = _digest("groups", table.key, query_col, passage_col, label_col, limit)
    target = cache_dir() / f"pairs-{key}.arrow"
    if not target.is_file():
        relevance = _relevance_values(table, label_col, limit)
        bad = [_first_bad_text(table, query_col, limit), _first_bad_text(table, passage_col, limit), _first(relevance < 0)]
        first = min((b for b in bad if b is not None), default=None)
        if first is not None:  # the row-by-row checks of that row, in their order, raise its error
            row = table.arrow.slice(first, 1).to_pylist()[0]
            check_text(row.get(query_col), table, first, query_col)  # type: ignore[arg-type]
            check_text(row.get(passage_col), table, first, passage_col)  # type: ignore[arg-type]
            _relevance(row.get(label_col), table, first, label_col)  # type: ignore[arg-type]
            raise AssertionError("the row-by-row checks accepted a row the chunk checks refused")
        _write_pairs(table, query_col, passage_col, relevance, size, target)
    pairs = mapped_dataset(target)
    return ArrowGroups(pairs, np.load(target.with_suffix(".offsets.npy")), np.load(target.with_suffix(".rows.npy")), key)


def _write_pairs(table: ArrowTable, query_col: str, passage_col: str, relevance: np.ndarray, size: int, target: Any) -> None:
    queries = pc.dictionary_encode(table.column(query_col).slice(0, size)).combine_chunks()
    passages = pc.dictionary_encode(table.column(passage_col).slice(0, size)).combine_chunks()
    gid = queries.indices.to_numpy().astype(np.int64)
    pid = passages.indices.to_numpy().astype(np.int64)
    pair_key = gid * max(1, len(passages.dictionary)) + pid
    unique, first, inverse = np.unique(pair_key, return_index=True, return_inverse=True)
    labels = np.zeros(len(unique), dtype=np.int64)
    np.maximum.at(labels, inverse, relevance)  # a repeated candidate is relevant if any copy is
    order = np.lexsort((first, gid[first]))  # by group, then by first appearance: QueryGroup.add's order
    rows = first[order]
    groups = gid[rows]
    offsets = np.searchsorted(groups, np.arange(len(queries.dictionary) + 1)).astype(np.int64)
    query_rows = np.unique(gid, return_index=True)[1]  # the index where each query first appears
    if "__row__" in table.arrow.column_names:
        file_rows = table.arrow.column("__row__").take(pa.array(query_rows, pa.int64())).to_numpy()
    else:
        file_rows = query_rows + 1
    schema = PAIR_FEATURES.arrow_schema
    np.save(target.with_suffix(".offsets.npy"), offsets)
    np.save(target.with_suffix(".rows.npy"), np.asarray(file_rows, dtype=np.int64))
    passages_column = table.column(passage_col).slice(0, size)
    pair_labels = labels[order].astype(np.float32)

    def batches() -> Any:  # written a slice at a time: the pairs' texts are never all in memory at once
        for start in range(0, len(rows), WRITE_ROWS):
            part = slice(start, start + WRITE_ROWS)
            data = pa.table(
                {
                    TEXT_A: queries.dictionary.take(pa.array(groups[part], pa.int64())).cast(pa.string()),
                    TEXT_B: passages_column.take(pa.array(rows[part], pa.int64())).cast(pa.string()),
                    LABEL: pa.array(pair_labels[part]),
                    GROUP: pa.array(groups[part], pa.int64()),
                }
            )
            yield from data.cast(schema).to_batches()

    if not _write_batches(target, batches(), schema):
        raise DataError("cannot be written to the Arrow cache.", source=table.source)


def listwise_arrow_dataset(groups: ArrowGroups) -> tuple[datasets.Dataset, int]:
    """`hf_crossenc.ranking.listwise_dataset` over `ArrowGroups`: one example per (query, positive), its negatives the
    query's labelled negatives, in a memory-mapped file of the cache; and the number of queries without a positive."""
    skipped = groups.stats()["queries_without_positive"]
    target = cache_dir() / f"listwise-{_digest('listwise', groups.key)}.arrow"
    if not groups.key or not target.is_file():
        if not groups.key:
            return datasets.Dataset(pa.Table.from_batches(list(_listwise_batches(groups)), LISTWISE_FEATURES.arrow_schema)), skipped
        if not _write_batches(target, _listwise_batches(groups), LISTWISE_FEATURES.arrow_schema):
            raise DataError("cannot be written to the Arrow cache.", source=str(target.parent))
    return mapped_dataset(target), skipped


LISTWISE_FEATURES = datasets.Features(
    {
        TEXT_A: datasets.Value("string"),
        TEXT_B: datasets.Value("string"),
        NEGATIVES: datasets.Sequence(datasets.Value("string")),
        GROUP: datasets.Value("int64"),
    }
)
WRITE_ROWS = 65536
"""Rows of a cached pairs or listwise file built and written at a time (bounded memory at any size)."""


def _listwise_batches(groups: ArrowGroups) -> Any:
    """The listwise examples as record batches of at most `WRITE_ROWS` examples, in order: each positive with its
    query's negatives (the texts taken per batch, never all at once)."""
    arrow = groups.table
    labels = groups.labels
    negatives = np.flatnonzero(labels == 0)
    positives = np.flatnonzero(labels == 1)
    group = arrow.column(GROUP).to_numpy()
    neg_offsets = np.searchsorted(group[negatives], np.arange(len(groups) + 1)).astype(np.int64)
    schema = LISTWISE_FEATURES.arrow_schema
    for start in range(0, len(positives), WRITE_ROWS):
        chosen = positives[start : start + WRITE_ROWS]
        example_groups = group[chosen]
        starts, sizes = neg_offsets[example_groups], neg_offsets[example_groups + 1] - neg_offsets[example_groups]
        list_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        within = np.arange(list_offsets[-1]) - np.repeat(list_offsets[:-1], sizes)  # position inside each list
        texts = arrow.column(TEXT_B).take(pa.array(negatives[np.repeat(starts, sizes) + within], pa.int64())).combine_chunks()
        take = pa.array(chosen, pa.int64())
        data = {
            TEXT_A: arrow.column(TEXT_A).take(take),
            TEXT_B: arrow.column(TEXT_B).take(take),
            NEGATIVES: pa.ListArray.from_arrays(pa.array(list_offsets), texts),
            GROUP: pa.array(example_groups, pa.int64()),
        }
        yield from pa.table(data).cast(schema).to_batches()
