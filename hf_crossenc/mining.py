"""Hard-negative mining for reranking data that has only (query, positive) pairs.

A reranker learns most from negatives that look relevant but are not: passages a first-stage
retriever would rank high for the query. This module finds them with a bi-encoder
(`hf_crossenc.bi_encoder.BiEncoder`, by default the bundled all-MiniLM-L6-v2):

1. Rows are grouped by query text: a query that appears in several rows has several positives,
   and *all* of them are excluded from its candidates (as is any passage identical to the query).
2. The corpus is the optional extra passages plus every positive of the file (each distinct text
   once, first occurrence first; duplicates are found by 64-bit digests, the texts behind equal digests compared, so
   no dictionary of every text is held). The corpus stays an Arrow column (`hf_crossenc.mining_io.read_corpus`:
   memory-mapped), its passages fetched by index when needed (a batch to embed, the negatives
   of the rows being written). Passages and queries are embedded in batches into files on disk
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

The result is deterministic: no sampling is involved. The summary is accumulated query by query, and the rows are
produced on demand (`MiningResult.iter_rows`): `write_mined` writes them to a partial file renamed into place at the
end, so no list of all mined rows is ever held.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

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
from .mining_io import CrossEncoderTextColumn

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".jsonl")

QUERY_BLOCK = 8192
"""Distinct queries searched together, in one pass over the passages' embedding file."""
WRITE_ROWS = 8192
"""Rows whose negatives are fetched from the corpus together while the output is written."""
FETCH_TEXTS = 65536
"""Most texts fetched at once from the corpus while duplicates are checked."""


class _Passages(Sequence[str]):
    """The candidate passages, each distinct text once (the corpus, then the positives; first occurrence first), as
    positions in that chain: the texts stay in the corpus's `CrossEncoderTextColumn` and the positives' list, fetched by id."""

    def __init__(self, corpus: CrossEncoderTextColumn, positives: CrossEncoderTextColumn, kept: np.ndarray) -> None:
        self.corpus, self.positives, self.kept = corpus, positives, kept

    def __len__(self) -> int:
        return len(self.kept)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        return self.take([index])[0]

    def take(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The passages `ids`, in that order."""
        return _chain_texts(self.corpus, self.positives, self.kept[np.asarray(ids, dtype=np.int64)])


def _chain_texts(corpus: CrossEncoderTextColumn, positives: CrossEncoderTextColumn, positions: np.ndarray) -> list[str]:
    """The texts at `positions` of the chain corpus + positives."""
    texts: list[str] = [""] * len(positions)
    in_corpus = positions < len(corpus)
    for where, column, offset in ((in_corpus, corpus, 0), (~in_corpus, positives, len(corpus))):
        rows = np.flatnonzero(where)
        for i, text in zip(rows.tolist(), column.take(positions[rows] - offset)):
            texts[i] = text
    return texts


def _hashes(texts: Iterable[str], count: int) -> np.ndarray:
    """A 64-bit digest of each text (equal texts, equal digests; `_passage_index` checks the texts behind equal ones)."""
    digests = (int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little") for text in texts)
    return np.fromiter(digests, dtype=np.uint64, count=count)


@dataclass
class _PassageIndex:
    """Each distinct text of corpus + positives once (`passages`), the passage id of every pairs row's positive, and
    the sorted digests of the chain for looking texts up (`lookup`)."""

    passages: _Passages
    positive_ids: np.ndarray
    sorted_hashes: np.ndarray
    order: np.ndarray
    id_of_position: np.ndarray

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """The passage id of each text, -1 where it is not a passage."""
        ids = np.full(len(texts), -1, dtype=np.int64)
        hashes = _hashes(texts, len(texts))
        low, high = np.searchsorted(self.sorted_hashes, hashes, "left"), np.searchsorted(self.sorted_hashes, hashes, "right")
        for i in np.flatnonzero(high > low).tolist():  # a digest of the chain: compare the texts (digests may collide)
            positions = self.order[low[i] : high[i]]
            texts_there = _chain_texts(self.passages.corpus, self.passages.positives, positions)
            match = next((int(p) for p, t in zip(positions.tolist(), texts_there) if t == texts[i]), None)
            if match is not None:
                ids[i] = self.id_of_position[match]
        return ids


def _passage_index(corpus: CrossEncoderTextColumn, positives: CrossEncoderTextColumn) -> _PassageIndex:
    """Deduplicate corpus + positives by 64-bit digests, the texts of equal digests compared (so exact): nothing but
    the digests and a few positions per text is held, never a dictionary of every text."""
    size = len(corpus) + len(positives)
    hashes = np.concatenate(
        [np.zeros(0, dtype=np.uint64), *(_hashes(block, len(block)) for column in (corpus, positives) for block in column.blocks())]
    )
    order = np.argsort(hashes, kind="stable")  # within equal digests, chain order
    sorted_hashes = hashes[order]
    del hashes
    starts = np.flatnonzero(np.r_[True, sorted_hashes[1:] != sorted_hashes[:-1]][:size])
    sizes = np.diff(np.r_[starts, size])
    first = np.empty(size, dtype=np.int64)
    first[order] = np.repeat(order[starts], sizes)  # each position -> the first position of its digest
    _check_equal_digests(corpus, positives, order, starts[sizes > 1], sizes[sizes > 1], first)
    kept = np.flatnonzero(first == np.arange(size))
    id_of_position = np.searchsorted(kept, first)
    del first
    passages = _Passages(corpus, positives, kept)
    return _PassageIndex(passages, id_of_position[len(corpus) :], sorted_hashes, order, id_of_position)


def _check_equal_digests(
    corpus: CrossEncoderTextColumn,
    positives: CrossEncoderTextColumn,
    order: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    first: np.ndarray,
) -> None:
    """Positions sharing a digest: the first position of the same *text* (distinct texts of equal digests are kept
    apart), the texts fetched at most `FETCH_TEXTS` at a time."""
    group = 0
    while group < len(starts):
        end = group + max(1, int(np.searchsorted(np.cumsum(sizes[group:]), FETCH_TEXTS, "right")))
        spans = [order[s : s + n] for s, n in zip(starts[group:end].tolist(), sizes[group:end].tolist())]
        texts = iter(_chain_texts(corpus, positives, np.concatenate(spans)))
        for positions in spans:
            seen: dict[str, int] = {}
            for position in positions.tolist():
                first[position] = seen.setdefault(next(texts), position)
        group = end


class _ExactSum:
    """A float sum without rounding error (Shewchuk's partials, as `math.fsum`), accumulated value by value."""

    def __init__(self) -> None:
        self.partials: list[float] = []
        self.count = 0

    def add(self, values: Iterable[float]) -> None:
        partials = self.partials
        for x in values:
            self.count += 1
            i = 0
            for y in partials:
                if abs(x) < abs(y):
                    x, y = y, x
                high = x + y
                low = y - (high - x)
                if low:
                    partials[i] = low
                    i += 1
                x = high
            partials[i:] = [x]

    def mean(self) -> float | None:
        return round(math.fsum(self.partials) / self.count, 6) if self.count else None


@dataclass
class _Tally:
    """The summary statistics, accumulated query by query."""

    filters: dict[str, int] = field(default_factory=lambda: {"filtered_by_range": 0, "filtered_by_margin": 0, "filtered_by_max_score": 0})
    queries: int = 0
    negatives: int = 0
    fewest: int | None = None
    most: int = 0
    without: int = 0
    positive_scores: _ExactSum = field(default_factory=_ExactSum)
    negative_scores: _ExactSum = field(default_factory=_ExactSum)

    def add(self, chosen_scores: list[float], own_scores: list[float]) -> None:
        count = len(chosen_scores)
        self.queries += 1
        self.negatives += count
        self.fewest = count if self.fewest is None else min(self.fewest, count)
        self.most = max(self.most, count)
        self.without += count == 0
        self.negative_scores.add(chosen_scores)
        self.positive_scores.add(own_scores)

    def summary(self, rows: int, corpus_size: int, settings: dict[str, Any]) -> dict[str, Any]:
        """The mining summary: sizes, settings, negatives per distinct query, filter counts and mean scores."""
        return {
            "queries": self.queries,
            "rows": rows,
            "corpus_size": corpus_size,
            **settings,
            "negatives_per_query": {
                "mean": round(self.negatives / self.queries, 6) if self.queries else 0.0,
                "min": self.fewest or 0,
                "max": self.most,
            },
            "queries_without_negatives": self.without,
            **self.filters,
            "mean_positive_score": self.positive_scores.mean(),
            "mean_negative_score": self.negative_scores.mean(),
        }


@dataclass
class MiningResult:
    """The mined rows (``query``, ``positive``, ``negative_1`` ... ``negative_k``, k <= num_negatives), produced on
    demand (`iter_rows`; `rows` lists them all), and the statistics. Held: the pairs, each distinct query's negative
    ids and the passages (texts fetched from the corpus when a row is produced)."""

    queries: Sequence[str]
    positives: Sequence[str]
    row_query: np.ndarray
    """Each row's distinct query (index into `negatives`)."""
    negatives: np.ndarray
    """Distinct queries x num_negatives passage ids, -1 after the last negative found."""
    passages: _Passages
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def max_negatives(self) -> int:
        """Largest number of negatives of any row (the number of negative columns of a CSV)."""
        return int((self.negatives >= 0).sum(axis=1).max()) if len(self.negatives) else 0

    def iter_rows(self, block: int | None = None) -> Iterator[dict[str, str]]:
        """The rows in input order, `block` (default `WRITE_ROWS`) at a time fetching their negatives' texts."""
        block = block or WRITE_ROWS
        for start in range(0, len(self.queries), block):
            ids = self.negatives[self.row_query[start : start + block]]
            wanted = np.unique(ids[ids >= 0])
            text_of = dict(zip(wanted.tolist(), self.passages.take(wanted)))
            queries, positives = self.queries[start : start + block], self.positives[start : start + block]
            for query, positive, row_ids in zip(queries, positives, ids.tolist()):
                row = {"query": query, "positive": positive}
                row.update({f"negative_{k}": text_of[i] for k, i in enumerate(row_ids, start=1) if i >= 0})
                yield row

    @property
    def rows(self) -> list[dict[str, str]]:
        return list(self.iter_rows())


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
    queries: Sequence[str],
    positives: Sequence[str],
    encoder: TextEncoder,
    *,
    corpus: Iterable[str] | CrossEncoderTextColumn | None = None,
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

    `queries[i]`, `positives[i]` is input row i; the result has one row per input row, in order. `corpus`: texts, or a
    `hf_crossenc.mining_io.CrossEncoderTextColumn` (`read_corpus`), whose texts are fetched by index, never all held as Python strings.
    `seed` is accepted for a reproducible interface but unused: nothing is sampled (ties break by corpus order).
    Scale settings (`hf_crossenc.embedding_index`): `search` ('auto', 'faiss', 'exact': the same neighbours),
    `embedding_dtype` ('float32', 'float16'), `embeddings_dir` (where the temporary embedding files go, removed at the
    end; default: the system's temporary directory), `chunk_rows` (passages searched at once) and `query_block`
    (queries searched together, in one pass over the passages).

    Summary counts (all over distinct queries): ``filtered_by_range`` counts candidates skipped because
    they rank above `range_min` (ranks from `range_max` on are never examined); ``filtered_by_margin``
    and ``filtered_by_max_score`` count candidates of the examined window dropped by each filter (a
    candidate failing both is counted under the margin), whether or not `num_negatives` was reached.
    The mean scores are exact sums (`_ExactSum`) over the count, rounded to 6 digits.
    """
    del seed  # nothing is random
    if len(queries) != len(positives):
        raise ValueError(f"queries and positives differ in length: {len(queries)} vs {len(positives)}")
    check_mining_settings(num_negatives, range_min, range_max, margin, max_score)
    backend = resolve_backend(search)
    check_embedding_dtype(embedding_dtype)
    window = _Window(num_negatives, range_min, range_max, margin, max_score)

    query_ids: dict[str, int] = {}
    row_query = np.fromiter((query_ids.setdefault(q, len(query_ids)) for q in queries), dtype=np.int64, count=len(queries))
    distinct_queries = list(query_ids)
    del query_ids
    index = _passage_index(CrossEncoderTextColumn.of(corpus if corpus is not None else ()), CrossEncoderTextColumn.of(positives))
    passages = index.passages
    own_ids = index.lookup(distinct_queries)  # a query that is itself a passage is never its own negative
    positive_ids, offsets = _positives_by_query(row_query, index.positive_ids, len(distinct_queries), len(passages))
    del index

    tally = _Tally()
    negatives = np.full((len(distinct_queries), num_negatives), -1, dtype=np.int64)
    if distinct_queries:
        with tempfile.TemporaryDirectory(prefix="hf-crossenc-mine-", dir=embeddings_dir) as work:
            passage_file = embed_to_file(encoder, passages, Path(work) / "passages.bin", dtype=embedding_dtype, what="passages")
            query_file = embed_to_file(encoder, distinct_queries, Path(work) / "queries.bin", dtype=embedding_dtype, what="queries")
            for start in range(0, len(distinct_queries), query_block):
                stop = min(start + query_block, len(distinct_queries))
                owned = [positive_ids[offsets[q] : offsets[q + 1]].tolist() for q in range(start, stop)]
                vectors = query_file.read(start, stop)
                mined = _mine_group(owned, own_ids[start:stop], vectors, passage_file, window, tally.filters, backend, chunk_rows)
                for q, (chosen, chosen_scores, own_scores) in enumerate(mined, start=start):
                    negatives[q, : len(chosen)] = chosen
                    tally.add(chosen_scores, own_scores)
                logger.info("mined %d/%d queries", stop, len(distinct_queries))

    settings = {"num_negatives": num_negatives, "range_min": range_min, "range_max": range_max, "margin": margin, "max_score": max_score}
    summary = tally.summary(len(queries), len(passages), settings)
    summary["search"] = backend
    return MiningResult(queries, positives, row_query, negatives, passages, summary)


def _positives_by_query(row_query: np.ndarray, row_positive: np.ndarray, queries: int, passages: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, offsets): the distinct positive ids of query q, in the order of their first rows, are
    ``ids[offsets[q]:offsets[q + 1]]``."""
    _, first = np.unique(row_query * max(passages, 1) + row_positive, return_index=True)
    first.sort()  # the rows where each (query, positive) first appears, in row order
    owner = row_query[first]
    order = np.argsort(owner, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=queries))])
    return row_positive[first][order], offsets


def _mine_group(
    positive_ids: list[list[int]],
    own_ids: np.ndarray,
    vectors: np.ndarray,
    passage_file: EmbeddingFile,
    window: _Window,
    stats: dict[str, int],
    backend: str,
    chunk_rows: int,
) -> Iterator[tuple[list[int], list[float], list[float]]]:
    """(negative ids, their scores, the positives' scores) of each query of a group: its positives' passage ids
    `positive_ids`, its own passage id `own_ids` (-1: the query is no passage), its vectors `vectors`."""
    excluded = [set(ids) | ({int(own)} if own >= 0 else set()) for ids, own in zip(positive_ids, own_ids.tolist())]
    # Deep enough that, once a query's own exclusions are dropped, `range_max` candidates (or all there are) remain.
    depth = window.range_max + max(len(e) for e in excluded)
    top_scores, top_ids = search_top_k(vectors, passage_file, depth, backend=backend, chunk_rows=chunk_rows)
    positive_vectors = passage_file.gather([i for ids in positive_ids for i in ids]).astype(np.float64)
    owners = np.repeat(np.arange(len(positive_ids)), [len(ids) for ids in positive_ids])
    all_own_scores = np.einsum("ij,ij->i", positive_vectors, vectors[owners].astype(np.float64)).tolist()  # as search_top_k's
    offset = 0
    for row, ids in enumerate(positive_ids):
        own_scores = all_own_scores[offset : offset + len(ids)]
        offset += len(ids)
        chosen, chosen_scores = _mine_one(top_ids[row], top_scores[row], own_scores, excluded[row], passage_file.rows, window, stats)
        yield chosen, chosen_scores, own_scores


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


def _replace_atomically(path: Path, fill: Callable[[IO[str]], None]) -> None:
    """`fill` a partial file beside `path`, then rename it over `path` (readers never see half a file; on any error
    the partial file is removed and an existing `path` is left as it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (readers never see half a file)."""
    _replace_atomically(Path(path), lambda f: f.write(text))


def write_mined(result: MiningResult, path: str | Path, *, overwrite: bool = False) -> None:
    """Write the mined rows to `path` (.csv or .jsonl), atomically; an existing file is refused unless ``overwrite=True``.

    The rows are written to a partial file beside `path` as they are produced (`MiningResult.iter_rows`), which is
    renamed to `path` at the end; on an error it is removed (and an existing `path` left intact).
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

    def fill(f: IO[str]) -> None:
        if kind == "csv":
            negative_columns = [f"negative_{k}" for k in range(1, result.max_negatives + 1)]
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["query", "positive", *negative_columns])
            for row in result.iter_rows():
                writer.writerow([row["query"], row["positive"], *(row.get(c, "") for c in negative_columns)])
        else:
            for row in result.iter_rows():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    _replace_atomically(path, fill)
