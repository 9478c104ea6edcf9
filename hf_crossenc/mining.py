"""Hard-negative mining for reranking data that has only (query, positive) pairs.

A reranker learns most from negatives that look relevant but are not: passages a first-stage
retriever would rank high for the query. This module finds them with a bi-encoder
(`hf_crossenc.bi_encoder.BiEncoder`, by default the bundled all-MiniLM-L6-v2):

1. Rows are grouped by query text: a query that appears in several rows has several positives,
   and *all* of them are excluded from its candidates (as is any passage identical to the query).
2. The corpus is the optional extra passages plus every positive of the file (each distinct text
   once, first occurrence first). Every query is scored against every passage by cosine
   similarity, in blocks of queries so the score matrix never exceeds about 16M floats (64 MB),
   whatever the corpus size.
3. Candidates are ranked by score, descending (ties: corpus order), and numbered from 0 after the
   query's positives are removed. Only ranks in ``[range_min, range_max)`` are examined:
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
import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .data import TEXT_A_CANDIDATES, TEXT_B_CANDIDATES, Table, check_text, parse_label, read_table
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

SCORE_BLOCK_ELEMENTS = 1 << 24
"""Largest query-block x corpus score matrix computed at once (float32: 64 MB)."""


class TextEncoder(Protocol):
    """Anything with `BiEncoder.encode`'s signature: one embedding row per text."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class MiningResult:
    """Mined rows (``query``, ``positive``, ``negative_1`` ... ``negative_k``, k <= num_negatives) and statistics."""

    rows: list[dict[str, str]]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def max_negatives(self) -> int:
        """Largest number of negatives of any row (the number of negative columns of a CSV)."""
        return max((len(row) - 2 for row in self.rows), default=0)


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


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, by score descending then index ascending (exact, also for ties)."""
    n = len(scores)
    if k >= n:
        return np.lexsort((np.arange(n), -scores))
    threshold = np.partition(scores, n - k)[n - k]
    candidates = np.flatnonzero(scores >= threshold)  # every tie of the k-th score, so ties break by index
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


def mine_hard_negatives(
    queries: list[str],
    positives: list[str],
    encoder: TextEncoder,
    *,
    corpus: list[str] | None = None,
    num_negatives: int = 5,
    range_min: int = 0,
    range_max: int = 50,
    margin: float | None = 0.05,
    max_score: float | None = None,
    seed: int = 0,
) -> MiningResult:
    """Mine up to `num_negatives` hard negatives per distinct query (see the module docstring for the method).

    `queries[i]`, `positives[i]` is input row i; the result has one row per input row, in order.
    `seed` is accepted for a reproducible interface but unused: nothing is sampled (ties break by corpus order).

    Summary counts (all over distinct queries): ``filtered_by_range`` counts candidates skipped because
    they rank above `range_min` (ranks from `range_max` on are never examined); ``filtered_by_margin``
    and ``filtered_by_max_score`` count candidates of the examined window dropped by each filter (a
    candidate failing both is counted under the margin), whether or not `num_negatives` was reached.
    """
    del seed  # nothing is random
    if len(queries) != len(positives):
        raise ValueError(f"queries and positives differ in length: {len(queries)} vs {len(positives)}")
    check_mining_settings(num_negatives, range_min, range_max, margin, max_score)

    positives_of: dict[str, list[str]] = {}
    for query, positive in zip(queries, positives):
        own = positives_of.setdefault(query, [])
        if positive not in own:
            own.append(positive)
    distinct_queries = list(positives_of)
    passages = list(dict.fromkeys([*(corpus or []), *positives]))
    index = {text: i for i, text in enumerate(passages)}

    stats = {"filtered_by_range": 0, "filtered_by_margin": 0, "filtered_by_max_score": 0}
    negatives_of: dict[str, list[str]] = {}
    positive_scores: list[float] = []
    negative_scores: list[float] = []
    if distinct_queries:
        passage_vectors = _normalised(encoder.encode(passages))
        query_vectors = _normalised(encoder.encode(distinct_queries))
        block = max(1, SCORE_BLOCK_ELEMENTS // max(1, len(passages)))
        for start in range(0, len(distinct_queries), block):
            scores = query_vectors[start : start + block] @ passage_vectors.T
            for offset, query in enumerate(distinct_queries[start : start + block]):
                chosen, chosen_scores, own_scores = _mine_one(
                    scores[offset],
                    query,
                    positives_of[query],
                    index,
                    passages,
                    num_negatives,
                    range_min,
                    range_max,
                    margin,
                    max_score,
                    stats,
                )
                negatives_of[query] = chosen
                negative_scores.extend(chosen_scores)
                positive_scores.extend(own_scores)
            logger.info("mined %d/%d queries", min(start + block, len(distinct_queries)), len(distinct_queries))

    rows = []
    for query, positive in zip(queries, positives):
        row = {"query": query, "positive": positive}
        row.update({f"negative_{k}": text for k, text in enumerate(negatives_of[query], start=1)})
        rows.append(row)
    settings = {"num_negatives": num_negatives, "range_min": range_min, "range_max": range_max, "margin": margin, "max_score": max_score}
    counts = [len(negatives_of[q]) for q in distinct_queries]
    summary = _summary(len(rows), len(passages), settings, counts, stats, positive_scores, negative_scores)
    return MiningResult(rows=rows, summary=summary)


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
    scores: np.ndarray,
    query: str,
    own_positives: list[str],
    index: dict[str, int],
    passages: list[str],
    num_negatives: int,
    range_min: int,
    range_max: int,
    margin: float | None,
    max_score: float | None,
    stats: dict[str, int],
) -> tuple[list[str], list[float], list[float]]:
    """Negatives of one query from its row of scores (modified in place); updates the filter counts in `stats`."""
    positive_ids = [index[p] for p in own_positives]
    own_scores = [float(scores[i]) for i in positive_ids]
    excluded = set(positive_ids)
    if query in index:
        excluded.add(index[query])
    scores[list(excluded)] = -np.inf
    depth = min(range_max, len(passages) - len(excluded))
    if depth <= 0:
        return [], [], own_scores
    ranked = _top_k(scores, depth)
    stats["filtered_by_range"] += min(range_min, depth)
    window = ranked[range_min:]
    window_scores = scores[window]
    keep = np.ones(len(window), dtype=bool)
    if margin is not None:
        by_margin = window_scores > min(own_scores) - margin
        stats["filtered_by_margin"] += int(by_margin.sum())
        keep &= ~by_margin
    if max_score is not None:
        by_ceiling = keep & (window_scores > max_score)
        stats["filtered_by_max_score"] += int(by_ceiling.sum())
        keep &= ~by_ceiling
    picked = window[keep][:num_negatives]
    return [passages[i] for i in picked], [float(scores[i]) for i in picked], own_scores


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
    """Validated passages of a corpus file (its only column, `column`, or the first of `CORPUS_CANDIDATES`)."""
    table = read_table(path)
    name = _pick_column(table, column, CORPUS_CANDIDATES, "passage", "--corpus_column", single_ok=True)
    return _texts(table, name)
