"""Reranking rows (``query, passage, label``) from an Arrow table: query groups as arrays, not Python objects.

`hf_crossenc.ranking.read_groups` groups a table's candidates by query text, in the order queries first appear, keeps a
candidate repeated within a query once (at its first place, relevant if any copy is) and checks every row in order
(query, passage, label). `arrow_groups` does the same over Arrow columns: `dictionary_encode` numbers queries and
passages in order of first appearance, numpy finds the repeats, and the first bad row goes to the row-by-row checks,
which raise the same error. The result, `ArrowGroups`, is a sequence of `QueryGroup` built on demand over the
flattened pairs (a memory-mapped dataset in the cache, as `hf_crossenc.arrow_data` keeps splits).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_data import ROW, ArrowTable, _digest, _first, _write_batches, cache_dir, check_texts, mapped_dataset, release_mapped_pages
from .arrow_take import take
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
        return set(take(self.table.column(TEXT_B), keep).to_pylist())

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


class PassagePool:
    """The distinct passages of `ArrowGroups` in order of first appearance (the listwise sampler tops groups up from
    it), read one text at a time. Built from the cached pairs chunk by chunk only when first needed: a query with
    enough labelled negatives never needs it."""

    def __init__(self, groups: ArrowGroups) -> None:
        self.groups = groups
        self._texts: pa.Array | None = None

    @property
    def texts(self) -> pa.Array:
        if self._texts is None:
            encoded = []
            for chunk in self.groups.table.column(TEXT_B).chunks:
                encoded.append(pc.dictionary_encode(chunk))
                release_mapped_pages()
            if encoded:
                self._texts = pa.chunked_array(encoded).unify_dictionaries().chunk(0).dictionary
            else:
                self._texts = pa.array([], pa.string())
        return self._texts

    def has_at_least(self, count: int) -> bool:
        """Whether there are `count` distinct passages, reading no more chunks than needed to tell."""
        if self._texts is not None:
            return len(self._texts) >= count
        seen: set[str] = set()
        for chunk in self.groups.table.column(TEXT_B).chunks:
            seen.update(pc.unique(chunk).to_pylist()[:count])
            if len(seen) >= count:
                return True
        return len(seen) >= count

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> str:
        return self.texts[int(index)].as_py()

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts.to_pylist())


def _relevance_values(table: ArrowTable, column: str, limit: int | None) -> np.ndarray:
    """`_relevance` of every label (-1 where it raises), computed once per distinct value of each chunk."""

    def relevance(value: Any) -> int:
        try:
            return _relevance(value, table, 0, column)  # type: ignore[arg-type]
        except DataError:
            return -1

    parts = []
    for chunk in table.chunks(column, limit):  # streamed from the cached file: no mapped pages kept
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
    if not target.with_suffix(".offsets.npy").is_file():  # written last: the three files are complete
        relevance = _relevance_values(table, label_col, limit)
        bad = [_first_bad_text(table, query_col, limit), _first_bad_text(table, passage_col, limit), _first(relevance < 0)]
        first = min((b for b in bad if b is not None), default=None)
        if first is not None:  # the row-by-row checks of that row, in their order, raise its error
            row = table.arrow.slice(first, 1).to_pylist()[0]
            check_text(row.get(query_col), table, first, query_col)  # type: ignore[arg-type]
            check_text(row.get(passage_col), table, first, passage_col)  # type: ignore[arg-type]
            _relevance(row.get(label_col), table, first, label_col)  # type: ignore[arg-type]
            raise AssertionError("the row-by-row checks accepted a row the chunk checks refused")
        _write_pairs(table, query_col, passage_col, relevance.astype(np.int8), size, target)  # 0 or 1 now
    pairs = mapped_dataset(target)
    return ArrowGroups(pairs, np.load(target.with_suffix(".offsets.npy")), np.load(target.with_suffix(".rows.npy")), key)


def _query_ids(table: ArrowTable, column: str, size: int) -> tuple[np.ndarray, pa.Array]:
    """Each row's query number (in order of first appearance) and the distinct queries: chunk by chunk from the
    streamed file, the chunks' dictionaries unified (which keeps first-appearance order)."""
    encoded = [pc.dictionary_encode(chunk.cast(pa.string())) for chunk in table.chunks(column, size)]
    if not encoded:
        return np.zeros(0, dtype=np.int64), pa.array([], pa.string())
    unified = pa.chunked_array(encoded).unify_dictionaries()
    del encoded
    ids = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in unified.chunks])
    queries = unified.chunk(0).dictionary
    del unified
    pa.default_memory_pool().release_unused()
    return ids.astype(np.int32 if len(queries) < 2**31 else np.int64, copy=False), queries


def _first_rows(ids: np.ndarray) -> np.ndarray:
    """Where each number first appears, for numbers given in order of first appearance (0, 0, 1, 0, 2, ...)."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    highest = np.maximum.accumulate(ids)
    return np.concatenate([[0], np.flatnonzero(highest[1:] > highest[:-1]) + 1]).astype(np.int64)


def _save(path: Any, values: np.ndarray) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.part.npy")
    np.save(partial, values)
    os.replace(partial, path)


def _spans(offsets: np.ndarray, rows: int) -> Any:
    """Runs of whole groups [g, h) of at most `rows` rows each (a larger group alone)."""
    g, groups = 0, len(offsets) - 1
    while g < groups:
        h = max(g + 1, int(np.searchsorted(offsets, offsets[g] + rows, side="right")) - 1)
        yield g, min(h, groups)
        g = min(h, groups)


def _write_pairs(table: ArrowTable, query_col: str, passage_col: str, relevance: np.ndarray, size: int, target: Any) -> None:
    """Group the first `size` rows by query and write the pairs, sorted by group, a repeated candidate once. The rows
    of a query may lie anywhere in the file: they are brought together by a bucket sort on disk (`_bucketed`), never
    by reading the file at random (each scattered read of a memory map keeps a large folio of it resident)."""
    gid, queries = _query_ids(table, query_col, size)
    raw_offsets = np.concatenate([[0], np.cumsum(np.bincount(gid, minlength=len(queries)))]).astype(np.int64)
    query_rows = _first_rows(gid)  # where each query first appears
    numbered = ROW in table.arrow.column_names
    file_rows = take(table.column(ROW), query_rows).to_numpy(zero_copy_only=False) if numbered else query_rows + 1
    release_mapped_pages()
    _save(target.with_suffix(".rows.npy"), np.asarray(file_rows, dtype=np.int64))
    spans = list(_spans(raw_offsets, WRITE_ROWS))
    sizes: list[np.ndarray] = []
    schema = PAIR_FEATURES.arrow_schema

    def batches(buckets: Any) -> Any:
        for (g, h), (rows, passages) in zip(spans, buckets):
            order = np.argsort(gid[rows], kind="stable")  # by group, then as they come in the file: QueryGroup.add's
            rows, passages = rows[order], take(passages, order)
            local = gid[rows].astype(np.int64) - g
            pid = pc.dictionary_encode(passages).indices.to_numpy(zero_copy_only=False).astype(np.int64)
            unique, first, inverse = np.unique(local * len(rows) + pid, return_index=True, return_inverse=True)
            labels = np.zeros(len(unique), dtype=np.int64)
            np.maximum.at(labels, inverse, relevance[rows])  # a repeated candidate is relevant if any copy is
            keep = np.argsort(first, kind="stable")  # by group, then by first appearance
            kept = first[keep]
            sizes.append(np.bincount(local[kept], minlength=h - g))
            data = {
                TEXT_A: take(queries, gid[rows[kept]]),
                TEXT_B: take(passages, kept),
                LABEL: pa.array(labels[keep].astype(np.float32)),
                GROUP: pa.array(gid[rows[kept]], pa.int64()),
            }
            yield from pa.table(data).cast(schema).to_batches()

    bucket_of_group = np.repeat(np.arange(len(spans), dtype=np.int32), [h - g for g, h in spans])
    with _bucketed(table, passage_col, size, bucket_of_group[gid], len(spans), target) as buckets:
        if not _write_batches(target, batches(buckets), schema):
            raise DataError("cannot be written to the Arrow cache.", source=table.source)
    counts = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
    _save(target.with_suffix(".offsets.npy"), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    pa.default_memory_pool().release_unused()  # the buckets' buffers: back to the system, not kept by the pool


@contextmanager
def _bucketed(table: ArrowTable, column: str, size: int, bucket: np.ndarray, buckets: int, target: Any) -> Any:
    """One pass over the file in order writes each row's `column` value (and its index) to a temporary Arrow file,
    grouped by `bucket` within each chunk; yields an iterator of the buckets in order, each (row indices ascending,
    values), read back by position (pread, no memory map). The temporary file is removed afterwards."""
    scratch = target.with_name(f"{target.name}.{os.getpid()}.buckets")
    schema = pa.schema([("index", pa.int64()), ("value", pa.string())])
    parts: list[list[int]] = [[] for _ in range(buckets)]
    try:
        with pa.OSFile(str(scratch), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            start, written = 0, 0
            for chunk in table.chunks(column, size):
                ids = bucket[start : start + len(chunk)]
                order = np.argsort(ids, kind="stable")
                cuts = np.flatnonzero(np.diff(ids[order])) + 1
                for part in np.split(order, cuts) if len(order) else []:
                    values = chunk.take(pa.array(part, pa.int64())).cast(pa.string())
                    writer.write_batch(pa.record_batch([pa.array(part + start, pa.int64()), values], schema=schema))
                    parts[int(ids[part[0]])].append(written)
                    written += 1
                start += len(chunk)
        with pa.OSFile(str(scratch)) as source:
            reader = pa.ipc.open_file(source)

            def read() -> Any:
                for numbers in parts:
                    batches = [reader.get_batch(i) for i in numbers]
                    if not batches:
                        yield np.zeros(0, dtype=np.int64), pa.array([], pa.string())
                        continue
                    data = pa.Table.from_batches(batches, schema).combine_chunks()
                    yield data.column("index").to_numpy(), data.column("value").chunk(0)

            yield read()
    finally:
        scratch.unlink(missing_ok=True)


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
        pa.default_memory_pool().release_unused()  # the batches' buffers: back to the system, not kept by the pool
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
        texts = take(arrow.column(TEXT_B), negatives[np.repeat(starts, sizes) + within])
        data = {
            TEXT_A: take(arrow.column(TEXT_A), chosen),
            TEXT_B: take(arrow.column(TEXT_B), chosen),
            NEGATIVES: pa.ListArray.from_arrays(pa.array(list_offsets), texts),
            GROUP: pa.array(example_groups, pa.int64()),
        }
        release_mapped_pages()  # the pairs' pages read for this batch
        yield from pa.table(data).cast(schema).to_batches()
