"""Hard-negative mining for reranking data that has only (query, positive) pairs.

A reranker learns most from negatives that look relevant but are not: passages a first-stage
retriever would rank high for the query. This module finds them with a bi-encoder
(`hf_crossenc.bi_encoder.BiEncoder`, by default the bundled all-MiniLM-L6-v2):

1. Rows are grouped by query text: a query that appears in several rows has several positives,
   and *all* of them are excluded from its candidates (as is any passage identical to the query).
2. The corpus is the optional extra passages plus every positive of the file (each distinct text
   once, first occurrence first). Passages and queries are embedded in batches into files on disk
   (`hf_crossenc.embedding_index`), and every query's nearest passages by cosine similarity are
   found by an exact search (faiss's IndexFlatIP when faiss-cpu is installed, else numpy) that
   reads the passages in chunks: memory stays bounded whatever the corpus size, and no
   queries x corpus score matrix is ever held.
3. Candidates are ranked by score, descending (ties: corpus order), and numbered from 0 after the
   query's positives (and the query's own text, if it is a passage) are removed. Only ranks in ``[range_min, range_max)`` are examined:
   ``range_min > 0`` skips the very top, where unlabelled positives gather.
4. Two false-negative filters: labelled data rarely marks every relevant passage, so a "negative"
   that scores almost as high as the true positives is likely an unlabelled positive, and
   training the reranker to push it down teaches it the wrong thing.

   - ``margin`` drops candidates scoring above ``(lowest positive score of the query) - margin``
     (``None`` disables it; a negative margin lets candidates score a little above the positive).
   - ``max_score`` drops candidates scoring above an absolute cosine ceiling.

5. The first ``num_negatives`` surviving candidates (the highest scoring) become the query's
   negatives, shared by all its rows. A query left with fewer keeps the ones found; a query with
   none is still written, and counted in the summary.

The result is deterministic: no sampling is involved.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import FIELD_LIMIT, TEXT_A_CANDIDATES, TEXT_B_CANDIDATES, Table, check_text, parse_label, read_table, text_problem
from .embedding_index import (
    CHUNK_ROWS,
    EmbeddingFile,
    TextEncoder,
    check_embedding_dtype,
    embed_to_file,
    resolve_backend,
    search_top_k,
)
from .errors import ConfigError, DataError

logger = logging.getLogger(__name__)

QUERY_CANDIDATES = tuple(dict.fromkeys(("query", "question", "anchor", *TEXT_A_CANDIDATES)))
"""Query column names tried (case-insensitively) when ``--query_column`` is not given."""
POSITIVE_CANDIDATES = tuple(dict.fromkeys(("positive", "pos", "passage", "answer", "document", *TEXT_B_CANDIDATES)))
"""Positive column names tried (case-insensitively) when ``--positive_column`` is not given."""
RELEVANCE_COLUMNS = ("label", "labels", "relevance", "is_relevant")
"""A column of these names marks relevance: rows with a label > 0 are the (query, positive) pairs."""
CORPUS_CANDIDATES = ("passage", "text", "document", "content", "positive", "answer", "body", "sentence")
"""Passage column names tried in a ``--corpus`` file with several columns (a one-column file needs none)."""
OUTPUT_SUFFIXES = (".csv", ".jsonl")

QUERY_BLOCK = 8192
"""Distinct queries searched together, in one pass over the passages' embedding file."""


@dataclass
class MiningResult:
    """Mined rows (``query``, ``positive``, ``negative_1`` ... ``negative_k``, k <= num_negatives) and statistics."""

    rows: list[dict[str, str]]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def max_negatives(self) -> int:
        """Largest number of negatives of any row (the number of negative columns of a CSV)."""
        return max((len(row) - 2 for row in self.rows), default=0)


@dataclass(frozen=True)
class _Window:
    """The settings that pick a query's negatives from its ranked candidates."""

    num_negatives: int
    range_min: int
    range_max: int
    margin: float | None
    max_score: float | None


def check_mining_settings(
    num_negatives: int, range_min: int, range_max: int, margin: float | None = None, max_score: float | None = None
) -> None:
    """Raise `ConfigError` for settings that cannot work (named as the CLI flags)."""
    if num_negatives < 1:
        raise ConfigError(f"--num_negatives must be at least 1, got {num_negatives}.")
    if range_min < 0:
        raise ConfigError(f"--range_min must be 0 or more, got {range_min}.")
    if range_max <= range_min:
        raise ConfigError(f"--range_max ({range_max}) must be greater than --range_min ({range_min}): no rank would be examined.")
    if margin is not None and not math.isfinite(margin):
        raise ConfigError(f"--margin must be a finite number (or 'none'), got {margin}.")
    if max_score is not None and not math.isfinite(max_score):
        raise ConfigError(f"--max_score must be a finite number, got {max_score}.")


def mine_hard_negatives(
    queries: list[str],
    positives: list[str],
    encoder: TextEncoder,
    *,
    corpus: Iterable[str] | None = None,
    num_negatives: int = 5,
    range_min: int = 0,
    range_max: int = 50,
    margin: float | None = 0.05,
    max_score: float | None = None,
    seed: int = 0,
    search: str = "auto",
    embedding_dtype: str = "float32",
    embeddings_dir: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    query_block: int = QUERY_BLOCK,
) -> MiningResult:
    """Mine up to `num_negatives` hard negatives per distinct query (see the module docstring for the method).

    `queries[i]`, `positives[i]` is input row i; the result has one row per input row, in order.
    `seed` is accepted for a reproducible interface but unused: nothing is sampled (ties break by corpus order).
    Scale settings (`hf_crossenc.embedding_index`): `search` ('auto', 'faiss', 'exact': the same neighbours),
    `embedding_dtype` ('float32', 'float16'), `embeddings_dir` (where the temporary embedding files go, removed at the
    end; default: the system's temporary directory), `chunk_rows` (passages searched at once) and `query_block`
    (queries searched together, in one pass over the passages).

    Summary counts (all over distinct queries): ``filtered_by_range`` counts candidates skipped because
    they rank above `range_min` (ranks from `range_max` on are never examined); ``filtered_by_margin``
    and ``filtered_by_max_score`` count candidates of the examined window dropped by each filter (a
    candidate failing both is counted under the margin), whether or not `num_negatives` was reached.
    """
    del seed  # nothing is random
    if len(queries) != len(positives):
        raise ValueError(f"queries and positives differ in length: {len(queries)} vs {len(positives)}")
    check_mining_settings(num_negatives, range_min, range_max, margin, max_score)
    backend = resolve_backend(search)
    check_embedding_dtype(embedding_dtype)
    window = _Window(num_negatives, range_min, range_max, margin, max_score)

    positives_of = _positives_by_query(queries, positives)
    distinct_queries = list(positives_of)
    index: dict[str, int] = {}  # passage text -> id: the corpus, then the positives; each distinct text once
    for text in itertools.chain(corpus or (), positives):
        index.setdefault(text, len(index))
    passages = list(index)

    stats = {"filtered_by_range": 0, "filtered_by_margin": 0, "filtered_by_max_score": 0}
    negatives_of: dict[str, list[str]] = {}
    scores: dict[str, list[float]] = {"positive": [], "negative": []}
    if distinct_queries:
        with tempfile.TemporaryDirectory(prefix="hf-crossenc-mine-", dir=embeddings_dir) as work:
            passage_file = embed_to_file(encoder, passages, Path(work) / "passages.bin", dtype=embedding_dtype, what="passages")
            query_file = embed_to_file(encoder, distinct_queries, Path(work) / "queries.bin", dtype=embedding_dtype, what="queries")
            for start in range(0, len(distinct_queries), query_block):
                group = distinct_queries[start : start + query_block]
                vectors = query_file.read(start, start + len(group))
                mined = _mine_group(group, vectors, positives_of, index, passage_file, window, stats, backend, chunk_rows)
                for query, (chosen, chosen_scores, own_scores) in zip(group, mined):
                    negatives_of[query] = [passages[i] for i in chosen]
                    scores["negative"].extend(chosen_scores)
                    scores["positive"].extend(own_scores)
                logger.info("mined %d/%d queries", start + len(group), len(distinct_queries))

    rows = []
    for query, positive in zip(queries, positives):
        row = {"query": query, "positive": positive}
        row.update({f"negative_{k}": text for k, text in enumerate(negatives_of[query], start=1)})
        rows.append(row)
    settings = {"num_negatives": num_negatives, "range_min": range_min, "range_max": range_max, "margin": margin, "max_score": max_score}
    counts = [len(negatives_of[q]) for q in distinct_queries]
    summary = _summary(len(rows), len(passages), settings, counts, stats, scores["positive"], scores["negative"])
    summary["search"] = backend
    return MiningResult(rows=rows, summary=summary)


def _positives_by_query(queries: list[str], positives: list[str]) -> dict[str, list[str]]:
    """Each distinct query (first occurrence first) -> its distinct positives."""
    positives_of: dict[str, list[str]] = {}
    for query, positive in zip(queries, positives):
        own = positives_of.setdefault(query, [])
        if positive not in own:
            own.append(positive)
    return positives_of


def _mine_group(
    group: list[str],
    vectors: np.ndarray,
    positives_of: dict[str, list[str]],
    index: dict[str, int],
    passage_file: EmbeddingFile,
    window: _Window,
    stats: dict[str, int],
    backend: str,
    chunk_rows: int,
) -> Iterator[tuple[list[int], list[float], list[float]]]:
    """(negative ids, their scores, the positives' scores) of each query of `group` (query vectors `vectors`)."""
    positive_ids = [[index[p] for p in positives_of[query]] for query in group]
    excluded = [set(ids) | ({index[query]} if query in index else set()) for query, ids in zip(group, positive_ids)]
    # Deep enough that, once a query's own exclusions are dropped, `range_max` candidates (or all there are) remain.
    depth = window.range_max + max(len(e) for e in excluded)
    top_scores, top_ids = search_top_k(vectors, passage_file, depth, backend=backend, chunk_rows=chunk_rows)
    positive_vectors = passage_file.gather([i for ids in positive_ids for i in ids]).astype(np.float64)
    owners = np.repeat(np.arange(len(group)), [len(ids) for ids in positive_ids])
    all_own_scores = np.einsum("ij,ij->i", positive_vectors, vectors[owners].astype(np.float64)).tolist()  # as search_top_k's
    offset = 0
    for row, ids in enumerate(positive_ids):
        own_scores = all_own_scores[offset : offset + len(ids)]
        offset += len(ids)
        chosen, chosen_scores = _mine_one(top_ids[row], top_scores[row], own_scores, excluded[row], passage_file.rows, window, stats)
        yield chosen, chosen_scores, own_scores


def _summary(
    rows: int,
    corpus_size: int,
    settings: dict[str, Any],
    counts: list[int],
    stats: dict[str, int],
    positive_scores: list[float],
    negative_scores: list[float],
) -> dict[str, Any]:
    """The mining summary: sizes, settings, negatives per distinct query, filter counts and mean scores."""
    return {
        "queries": len(counts),
        "rows": rows,
        "corpus_size": corpus_size,
        **settings,
        "negatives_per_query": {
            "mean": round(sum(counts) / len(counts), 6) if counts else 0.0,
            "min": min(counts, default=0),
            "max": max(counts, default=0),
        },
        "queries_without_negatives": sum(1 for c in counts if c == 0),
        **stats,
        "mean_positive_score": round(float(np.mean(positive_scores)), 6) if positive_scores else None,
        "mean_negative_score": round(float(np.mean(negative_scores)), 6) if negative_scores else None,
    }


def _mine_one(
    candidate_ids: np.ndarray,
    candidate_scores: np.ndarray,
    own_scores: list[float],
    excluded: set[int],
    corpus_size: int,
    window: _Window,
    stats: dict[str, int],
) -> tuple[list[int], list[float]]:
    """Negatives (ids, scores) of one query from its ranked candidates, which may hold its own positives and the query
    text (`excluded`); updates the filter counts in `stats`."""
    depth = min(window.range_max, corpus_size - len(excluded))
    if depth <= 0:
        return [], []
    keep = ~np.isin(candidate_ids, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))
    ranked, ranked_scores = candidate_ids[keep][:depth], candidate_scores[keep][:depth]
    stats["filtered_by_range"] += min(window.range_min, depth)
    ids, scores = ranked[window.range_min :], ranked_scores[window.range_min :]
    keep = np.ones(len(ids), dtype=bool)
    if window.margin is not None:
        by_margin = scores > min(own_scores) - window.margin
        stats["filtered_by_margin"] += int(by_margin.sum())
        keep &= ~by_margin
    if window.max_score is not None:
        by_ceiling = keep & (scores > window.max_score)
        stats["filtered_by_max_score"] += int(by_ceiling.sum())
        keep &= ~by_ceiling
    return ids[keep][: window.num_negatives].tolist(), scores[keep][: window.num_negatives].tolist()


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _output_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise DataError(
            f"cannot write mined rows as {suffix or '(no extension)'!r}.",
            source=str(path),
            hint=f"Use one of {', '.join(OUTPUT_SUFFIXES)}.",
        )
    return suffix[1:]


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise DataError("already exists; refusing to overwrite it.", source=str(path), hint="Pass --overwrite or choose another path.")


def check_output_paths(output: str | Path, summary: str | Path | None = None, *, overwrite: bool = False) -> None:
    """Before any work: `DataError` for an output that is not .csv/.jsonl, a summary that is not .json, or (unless
    `overwrite`) an output or summary file that already exists."""
    output = Path(output)
    _output_kind(output)
    summary = Path(summary) if summary is not None else None
    if summary is not None and summary.suffix.lower() != ".json":
        raise DataError("the summary is written as JSON.", source=str(summary), hint="Give --summary a .json path.")
    if not overwrite:
        _refuse_existing(output)
        if summary is not None:
            _refuse_existing(summary)


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_mined(result: MiningResult, path: str | Path, *, overwrite: bool = False) -> None:
    """Write the mined rows to `path` (.csv or .jsonl), atomically; an existing file is refused unless ``overwrite=True``.

    CSV: header ``query,positive,negative_1..negative_N`` with N the largest number of negatives of any
    row; a row with fewer has empty cells at the end. An empty ``negative_k`` cell means "no negative":
    hf_crossenc's reranking reader (`hf_crossenc.ranking.read_groups`) skips it, and any other reader
    must also treat it as absent, not as an empty passage.
    JSONL: one object per row holding only the negatives found.
    """
    path = Path(path)
    kind = _output_kind(path)
    if not overwrite:
        _refuse_existing(path)
    buffer = io.StringIO(newline="")
    if kind == "csv":
        negative_columns = [f"negative_{k}" for k in range(1, result.max_negatives + 1)]
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["query", "positive", *negative_columns])
        for row in result.rows:
            writer.writerow([row["query"], row["positive"], *(row.get(c, "") for c in negative_columns)])
    else:
        for row in result.rows:
            buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_atomically(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _pick_column(table: Table, explicit: str | None, candidates: Sequence[str], role: str, flag: str, single_ok: bool = False) -> str:
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


def read_pairs(path: str | Path, query_column: str | None = None, positive_column: str | None = None) -> tuple[list[str], list[str]]:
    """Validated (queries, positives) of a pairs file; `DataError` names the file, row and column of a bad cell.
    With a relevance column (`RELEVANCE_COLUMNS`), only the rows labelled > 0 are pairs."""
    table = read_table(path)
    query = _pick_column(table, query_column, QUERY_CANDIDATES, "query", "--query_column")
    positive = _pick_column(table, positive_column, POSITIVE_CANDIDATES, "positive", "--positive_column")
    if query == positive:
        raise DataError(
            f"the query and positive columns are both {query!r}.", source=table.source, column=query, hint="Set --positive_column."
        )
    if not table.rows:
        raise DataError("has no data rows.", source=table.source, hint="Provide at least one (query, positive) row.")
    queries, positives = _texts(table, query), _texts(table, positive)
    label = next((name for name in RELEVANCE_COLUMNS if name in table.columns), None)
    if label is None:
        return queries, positives
    # A labelled file (question, answer, label as in TREC QA): only the relevant rows are (query, positive) pairs.
    keep = [i for i, row in enumerate(table.rows) if parse_label(row.get(label), table, i, label) > 0]
    if not keep:
        raise DataError(f"no row has a positive {label!r}: nothing to mine negatives for.", source=table.source, column=label)
    logger.info(
        "%s: %d of %d rows have a positive %r and are used as (query, positive) pairs", table.source, len(keep), len(table.rows), label
    )
    return [queries[i] for i in keep], [positives[i] for i in keep]


def read_corpus(path: str | Path, column: str | None = None) -> list[str]:
    """Validated passages of a corpus file (its only column, `column`, or the first of `CORPUS_CANDIDATES`).

    CSV, JSONL and Parquet files are streamed: only the passage column's texts are kept (a corpus of a million
    passages costs its texts, not a dictionary per row). Should anything be wrong on the way (a bad cell, a malformed
    line), the file is read again the ordinary way (`hf_crossenc.data.read_table`), which reports it precisely:
    file, row and column, the same errors as for any other file."""
    path = Path(path)
    stream = _STREAMED_READERS.get(path.suffix.lower())
    if stream is not None and path.is_file():
        try:
            texts = stream(path, column)
        except (_Unstreamable, csv.Error, UnicodeDecodeError, json.JSONDecodeError, ValueError, OSError):
            texts = None
        if texts is not None and all(text_problem(t) is None for t in texts):
            return texts
    table = read_table(path)
    name = _pick_column(table, column, CORPUS_CANDIDATES, "passage", "--corpus_column", single_ok=True)
    return _texts(table, name)


class _Unstreamable(Exception):
    """The file needs the ordinary reader (which raises the precise error, or reads what the stream could not)."""


def _stream_csv(path: Path, column: str | None) -> list[str]:
    """The passage column of a CSV file, read record by record as `hf_crossenc.data` reads CSV."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=",", strict=True)
        header = [name.strip() for name in next(reader, [])]
        if not header or len(set(header)) != len(header) or (len(header) == 1 and any(c in header[0] for c in ";\t|")):
            raise _Unstreamable  # empty, duplicate columns, or another separator: read_table says which
        table = Table(source=str(path), columns=header, rows=[], row_numbers=[])
        position = header.index(_pick_column(table, column, CORPUS_CANDIDATES, "passage", "--corpus_column", single_ok=True))
        texts = []
        for fields in reader:
            if not fields:
                continue  # blank line
            if len(fields) != len(header):
                raise _Unstreamable
            texts.append(fields[position])
    return texts


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise _Unstreamable  # a duplicate key
    return record


def _stream_jsonl(path: Path, column: str | None) -> list[str] | None:
    """The passage column of a JSON Lines file, read line by line; only the values of keys that may turn out to be
    the passage column (it depends on every line's keys) are kept until the end."""
    columns: dict[str, None] = {}
    kept: dict[str, list[Any]] = {}
    records = 0
    with open(path, encoding="utf-8-sig", newline="\n") as f:
        for line in f:
            line = line.removesuffix("\n").removesuffix("\r")
            if not line.strip():
                continue
            record = json.loads(line, object_pairs_hook=_strict_object)
            if not isinstance(record, dict):
                raise _Unstreamable
            for key in record:
                if key not in columns:
                    columns[key] = None
                    if key == column or (column is None and (key.lower() in CORPUS_CANDIDATES or len(columns) == 1)):
                        kept[key] = [None] * records
            for key, values in kept.items():
                values.append(record.get(key))
            records += 1
    table = Table(source=str(path), columns=list(columns), rows=[], row_numbers=[], row_word="line")
    name = _pick_column(table, column, CORPUS_CANDIDATES, "passage", "--corpus_column", single_ok=True)
    return kept.get(name)


def _stream_parquet(path: Path, column: str | None) -> list[str] | None:
    """The passage column of a Parquet file, the only column read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception:  # pyarrow raises several unrelated types for corrupt files
        raise _Unstreamable from None
    if len(set(names)) != len(names):
        raise _Unstreamable
    table = Table(source=str(path), columns=names, rows=[], row_numbers=[], row_word="record")
    name = _pick_column(table, column, CORPUS_CANDIDATES, "passage", "--corpus_column", single_ok=True)
    values = pq.read_table(path, columns=[name]).column(name)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)) or values.null_count:
        raise _Unstreamable
    return values.to_pylist()


_STREAMED_READERS = {".csv": _stream_csv, ".jsonl": _stream_jsonl, ".parquet": _stream_parquet}
