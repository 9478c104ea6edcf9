"""Reading for hard-negative mining (`hf_crossenc.mining`): the (query, positive) pairs and the passage corpus.

Neither is turned into Python rows. Both files are opened through `hf_crossenc.arrow_data.open_table`: CSV, TSV,
Parquet, JSON Lines and JSON become a memory-mapped Arrow file in the `datasets` cache, validated chunk by chunk
(`check_texts`, `parse_labels`: the same errors, file, row and column, as the row-by-row reader). The corpus and the
pairs' two text columns are `CrossEncoderTextColumn`s: texts are fetched by index or slice when needed (a batch to
embed, the negatives of the rows being written) and the mapped pages read are released at once, so the files do not
accumulate in the process's resident set. A file `open_table` leaves to `hf_crossenc.data.read_table` is read as before
(the corpus then copied into Arrow memory).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .arrow_data import ArrowTable, check_texts, open_table, parse_labels, release_mapped_pages
from .data import TEXT_A_CANDIDATES, TEXT_B_CANDIDATES, Table, check_text, parse_label
from .errors import DataError

logger = logging.getLogger(__name__)

QUERY_CANDIDATES = tuple(dict.fromkeys(("query", "question", "anchor", *TEXT_A_CANDIDATES)))
"""Query column names tried (case-insensitively) when ``--query_column`` is not given."""
POSITIVE_CANDIDATES = tuple(dict.fromkeys(("positive", "pos", "passage", "answer", "document", *TEXT_B_CANDIDATES)))
"""Positive column names tried (case-insensitively) when ``--positive_column`` is not given."""
RELEVANCE_COLUMNS = ("label", "labels", "relevance", "is_relevant")
"""A column of these names marks relevance: rows with a label > 0 are the (query, positive) pairs."""
CORPUS_CANDIDATES = ("passage", "text", "document", "content", "positive", "answer", "body", "sentence")
"""Passage column names tried in a ``--corpus`` file with several columns (a one-column file needs none)."""
READ_ROWS = 4096
"""Texts converted to Python strings at a time by `CrossEncoderTextColumn.blocks`."""


class CrossEncoderTextColumn(Sequence[str]):
    """Validated texts in an Arrow array (memory-mapped or in Arrow memory): the length, and texts by index or slice
    converted to Python strings on demand. When `mapped`, the pages each access touched are released afterwards
    (`hf_crossenc.arrow_data.release_mapped_pages`)."""

    def __init__(self, array: pa.Array | pa.ChunkedArray, mapped: bool = False) -> None:
        self.array = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
        self.mapped = mapped
        self._starts = np.cumsum([0, *(len(chunk) for chunk in self.array.chunks)])[:-1]

    @classmethod
    def of(cls, texts: Iterable[str] | CrossEncoderTextColumn) -> CrossEncoderTextColumn:
        """`texts` as a column (a `CrossEncoderTextColumn` as is; anything else is copied into Arrow memory)."""
        if isinstance(texts, CrossEncoderTextColumn):
            return texts
        return cls(pa.array(list(texts), pa.large_string()))

    def __len__(self) -> int:
        return len(self.array)

    def _done(self, texts: list[str]) -> list[str]:
        if self.mapped:
            release_mapped_pages()
        return texts

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step))
            return self._done(self.array.slice(start, max(0, stop - start)).to_pylist())
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._done([self.array[index].as_py()])[0]

    def take(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The texts at `ids`, in that order. Each chunk is taken from on its own: `pa.ChunkedArray.take` would first
        concatenate every chunk, i.e. copy the whole column."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return []
        if ids.min() < -len(self) or ids.max() >= len(self):
            raise IndexError(f"ids must lie in [0, {len(self)}), got {ids.min()}..{ids.max()}")
        ids = ids % max(len(self), 1)
        chunk_of = np.searchsorted(self._starts, ids, "right") - 1
        texts: list[str] = [""] * len(ids)
        for chunk in np.unique(chunk_of).tolist():
            where = np.flatnonzero(chunk_of == chunk)
            local = pa.array(ids[where] - self._starts[chunk])
            for i, text in zip(where.tolist(), self._done(self.array.chunk(chunk).take(local).to_pylist())):
                texts[i] = text  # released chunk by chunk: scattered reads map the pages around them (read-around)
        return texts

    def blocks(self, rows: int | None = None) -> Iterator[list[str]]:
        """All texts, `rows` (default `READ_ROWS`) at a time."""
        rows = rows or READ_ROWS
        for start in range(0, len(self), rows):
            yield self[start : start + rows]

    def __iter__(self) -> Iterator[str]:
        for block in self.blocks():
            yield from block


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


def _pick_column(
    table: Table | ArrowTable, explicit: str | None, candidates: Sequence[str], role: str, flag: str, single_ok: bool = False
) -> str:
    header_row = 1 if table.row_word == "row" else None
    if explicit:
        if explicit not in table.columns:
            raise DataError(
                f"the {role} column {explicit!r} does not exist; the file has columns {table.columns}.",
                source=table.source,
                row=header_row,
                column=explicit,
                hint=f"Fix {flag}.",
            )
        return explicit
    if single_ok and len(table.columns) == 1:
        return table.columns[0]
    lowered = {c.lower(): c for c in table.columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise DataError(
        f"no {role} column found among {table.columns} (looked for {', '.join(candidates)}).",
        source=table.source,
        row=header_row,
        hint=f"Name it with {flag}.",
    )


def _texts(table: Table, column: str) -> list[str]:
    return [check_text(row.get(column), table, i, column) for i, row in enumerate(table.rows)]


# --------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------


def read_pairs(
    path: str | Path, query_column: str | None = None, positive_column: str | None = None
) -> tuple[Sequence[str], Sequence[str]]:
    """Validated (queries, positives) of a pairs file; `DataError` names the file, row and column of a bad cell.
    With a relevance column (`RELEVANCE_COLUMNS`), only the rows labelled > 0 are pairs. CSV, TSV and Parquet files
    are read through the memory-mapped Arrow cache (`open_table`) and returned as two `CrossEncoderTextColumn`s (the
    relevant rows of a labelled file copied into Arrow memory); other files as two lists."""
    table = open_table(path)
    query = _pick_column(table, query_column, QUERY_CANDIDATES, "query", "--query_column")
    positive = _pick_column(table, positive_column, POSITIVE_CANDIDATES, "positive", "--positive_column")
    if query == positive:
        raise DataError(
            f"the query and positive columns are both {query!r}.", source=table.source, column=query, hint="Set --positive_column."
        )
    if not len(table.rows if isinstance(table, Table) else table):
        raise DataError("has no data rows.", source=table.source, hint="Provide at least one (query, positive) row.")
    label = next((name for name in RELEVANCE_COLUMNS if name in table.columns), None)
    if isinstance(table, ArrowTable):
        check_texts(table, query)
        check_texts(table, positive)
        if label is None:
            return CrossEncoderTextColumn(table.column(query), mapped=True), CrossEncoderTextColumn(table.column(positive), mapped=True)
        relevant = parse_labels(table, label) > 0
        total = len(table)
    else:
        queries, positives = _texts(table, query), _texts(table, positive)
        if label is None:
            return queries, positives
        relevant = np.array([parse_label(row.get(label), table, i, label) > 0 for i, row in enumerate(table.rows)], dtype=bool)
        total = len(table.rows)
    # A labelled file (question, answer, label as in TREC QA): only the relevant rows are (query, positive) pairs.
    if not relevant.any():
        raise DataError(f"no row has a positive {label!r}: nothing to mine negatives for.", source=table.source, column=label)
    logger.info("%s: %d of %d rows have a positive %r and are used as (query, positive) pairs", table.source, relevant.sum(), total, label)
    if isinstance(table, ArrowTable):
        mask = pa.array(relevant)
        kept = CrossEncoderTextColumn(table.column(query).filter(mask)), CrossEncoderTextColumn(table.column(positive).filter(mask))
        release_mapped_pages()
        return kept
    keep = np.flatnonzero(relevant).tolist()
    return [queries[i] for i in keep], [positives[i] for i in keep]


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


def read_corpus(path: str | Path, column: str | None = None) -> CrossEncoderTextColumn:
    """Validated passages of a corpus file (its only column, `column`, or the first of `CORPUS_CANDIDATES`), as a
    `CrossEncoderTextColumn`: memory-mapped Arrow for the files `open_table` converts (CSV, TSV, Parquet, JSON Lines,
    JSON), validated chunk by chunk; a file it leaves to `read_table` is copied into Arrow memory. Errors as for any
    file: file, row and column."""
    table = open_table(path)
    name = _pick_column(table, column, CORPUS_CANDIDATES, "passage", "--corpus_column", single_ok=True)
    if isinstance(table, ArrowTable):
        check_texts(table, name)
        return CrossEncoderTextColumn(table.column(name), mapped=True)
    return CrossEncoderTextColumn.of(_texts(table, name))
