"""Embeddings written to disk in batches, and exact top-k inner-product search over them in bounded memory.

`hf_crossenc.mining` uses it to mine corpora of millions of passages:

- `embed_to_file` encodes texts `batch_texts` at a time, L2-normalises each batch and appends it to a raw C-order
  file of float32 or float16 (``np.memmap(path, dtype, mode="r", shape=(rows, dim))`` opens it). The file is written
  and scanned with ordinary writes and reads rather than through a mapping, so its pages sit in the kernel's page
  cache and are not counted in the process's resident memory (`EmbeddingFile.gather` explains why not through a mapping).
- `search_top_k` returns, for every query vector, the k passages of highest inner product (the cosine, as the vectors
  are normalised), by score descending then passage index ascending: exact, ties included. The passages are read
  `chunk_rows` at a time; each chunk is searched by faiss's ``IndexFlatIP`` (exact brute force; backend "faiss",
  when faiss-cpu is installed) or by numpy (backend "exact", blocks of at most `SCORE_BLOCK_ELEMENTS` scores), and
  merged into the running top k. Memory is O(chunk_rows x dim + queries x k): never a queries x corpus matrix.
  The final candidates are scored again in float64, so both backends give the same neighbours, order and scores
  (their float32 kernels differ in the last bits, enough to swap two passages whose cosines differ by 1e-7).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ConfigError

logger = logging.getLogger(__name__)

SEARCH_BACKENDS = ("auto", "faiss", "exact")
"""``auto``: faiss when faiss-cpu is installed, else exact (numpy); both are exact searches."""
EMBEDDING_DTYPES = ("float32", "float16")
"""How the embeddings are stored on disk (float16 halves the file; either is searched in float32, rescored in float64)."""
SCORE_BLOCK_ELEMENTS = 1 << 22
"""Largest query-block x chunk score matrix numpy computes at once (float32: 16 MB; with its argpartition, ~100 MB)."""
CHUNK_ROWS = 1 << 16
"""Passages read from the embedding file and searched at once (MiniLM, 384 dimensions, float32: 96 MB)."""
RESCORE_EXTRA = 8
"""Candidates kept beyond k before the float64 rescoring (see `search_top_k`)."""
RESCORE_QUERIES = 128
"""Queries whose candidates are rescored together (MiniLM, 60 candidates: 24 MB of float64 vectors)."""
EMBED_BATCH_TEXTS = 4096
"""Texts handed to the encoder per call (it sorts them by length, so fewer padding tokens than smaller calls)."""


class TextEncoder(Protocol):
    """Anything with `BiEncoder.encode`'s signature: one embedding row per text."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@functools.cache
def faiss_available() -> bool:
    """Whether faiss (the faiss-cpu package, ``pip install 'hf_crossenc[mining]'``) imports (a broken install: no)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(name: str) -> str:
    """'faiss' or 'exact' for a `SEARCH_BACKENDS` value; `ConfigError` (naming --search) if it cannot be used."""
    if name not in SEARCH_BACKENDS:
        raise ConfigError(f"--search must be one of {', '.join(SEARCH_BACKENDS)}, got {name!r}.")
    if name == "auto":
        return "faiss" if faiss_available() else "exact"
    if name == "faiss" and not faiss_available():
        raise ConfigError("--search faiss needs faiss-cpu: `pip install 'hf_crossenc[mining]'`, or use --search exact (same results).")
    return name


def check_embedding_dtype(dtype: str) -> str:
    if dtype not in EMBEDDING_DTYPES:
        raise ConfigError(f"--embedding_dtype must be one of {', '.join(EMBEDDING_DTYPES)}, got {dtype!r}.")
    return dtype


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class EmbeddingFile:
    """`rows` x `dim` vectors of `dtype`, C order, at `path` (the layout of ``np.memmap``)."""

    path: Path
    rows: int
    dim: int
    dtype: str = "float32"

    def _offset(self, row: int) -> int:
        return row * self.dim * np.dtype(self.dtype).itemsize

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as float32, read (not mapped) from the file."""
        stop = min(stop, self.rows)
        with open(self.path, "rb") as f:
            block = np.fromfile(f, dtype=self.dtype, count=max(0, stop - start) * self.dim, offset=self._offset(start))
        return block.reshape(-1, self.dim).astype(np.float32, copy=False)

    def chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 rows) of consecutive chunks of at most `chunk_rows` rows, read sequentially."""
        with open(self.path, "rb") as f:
            for start in range(0, self.rows, chunk_rows):
                count = min(chunk_rows, self.rows - start)
                block = np.fromfile(f, dtype=self.dtype, count=count * self.dim)
                yield start, block.reshape(count, self.dim).astype(np.float32, copy=False)

    def gather(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The rows `ids` as float32, each read on its own. Not through ``np.memmap``: a page fault in a mapped file
        also maps the pages around it (read-around), so a few thousand scattered rows would map most of the file and
        count it in the resident set; reads leave it in the page cache."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        unique, inverse = np.unique(ids, return_inverse=True)
        if unique[0] < 0 or unique[-1] >= self.rows:
            raise IndexError(f"row ids must lie in [0, {self.rows}), got {unique[0]}..{unique[-1]}")
        row_bytes = self._offset(1)
        rows = bytearray(row_bytes * len(unique))
        with open(self.path, "rb", buffering=0) as f:
            for j, row in enumerate(unique.tolist()):
                rows[j * row_bytes : (j + 1) * row_bytes] = os.pread(f.fileno(), row_bytes, row * row_bytes)
        return np.frombuffer(rows, dtype=self.dtype).reshape(len(unique), self.dim)[inverse].astype(np.float32)


def embed_to_file(
    encoder: TextEncoder,
    texts: Sequence[str],
    path: str | Path,
    *,
    dtype: str = "float32",
    batch_texts: int | None = None,
    what: str = "texts",
) -> EmbeddingFile:
    """Encode `texts` `batch_texts` (default `EMBED_BATCH_TEXTS`) at a time, normalise, and write them to `path` as `dtype`; memory holds one batch.
    The C heap is trimmed after each batch: batches of varied token lengths fragment it, and the resident set would
    creep up batch after batch (MiniLM in bf16: +200 MB over 20,000 passages without trimming)."""
    from .memory import trim_heap

    check_embedding_dtype(dtype)
    batch_texts = batch_texts or EMBED_BATCH_TEXTS
    path = Path(path)
    dim: int | None = None
    began = time.perf_counter()
    with open(path, "wb") as f:
        for start in range(0, len(texts), batch_texts):
            batch = texts[start : start + batch_texts]
            vectors = normalised(encoder.encode(batch))
            if vectors.ndim != 2 or len(vectors) != len(batch) or (dim is not None and vectors.shape[1] != dim):
                raise ValueError(f"the encoder returned an array of shape {vectors.shape} for {len(batch)} texts")
            dim = vectors.shape[1]
            vectors.astype(dtype, copy=False).tofile(f)
            del vectors
            trim_heap()
            done = start + len(batch)
            elapsed = time.perf_counter() - began
            logger.info("embedded %d/%d %s (%.0f per second)", done, len(texts), what, done / max(elapsed, 1e-9))
    return EmbeddingFile(path, len(texts), dim or 0, dtype)


def search_top_k(
    queries: np.ndarray, passages: EmbeddingFile, k: int, *, backend: str = "exact", chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each ``len(queries)`` x ``min(k, passages.rows)``: every query's k passages of highest inner
    product, by score descending then id ascending. `backend` is 'exact' or 'faiss' (see `resolve_backend`).

    The chunks are searched in float32, whose rounding depends on the matrix-multiply kernel (numpy's and faiss's
    differ in the last bits): `RESCORE_EXTRA` more candidates are kept, then all are scored again in float64
    (`rescore`) and the best k of that order returned. So both backends give the same neighbours in the same order and
    the same float64 scores, unless more than `RESCORE_EXTRA` candidates lie within float32 rounding of the k-th."""
    if backend not in ("exact", "faiss"):
        raise ValueError(f"backend must be 'exact' or 'faiss', got {backend!r}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, passages.rows)
    if k <= 0 or not len(queries):
        return np.empty((len(queries), max(k, 0)), dtype=np.float64), np.empty((len(queries), max(k, 0)), dtype=np.int64)
    fetch = min(k + RESCORE_EXTRA, passages.rows)
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    best_ids = np.empty((len(queries), 0), dtype=np.int64)
    search_chunk = _chunk_top_k_faiss if backend == "faiss" else _chunk_top_k_exact
    for start, chunk in passages.chunks(chunk_rows):
        scores, ids = search_chunk(queries, chunk, fetch)
        best_scores, best_ids = _merge(best_scores, best_ids, scores, ids + start, fetch)
    return rescore(queries, passages, best_ids, k)


def rescore(queries: np.ndarray, passages: EmbeddingFile, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The float64 inner products of each query with its candidate passages `ids` (a row per query), the best k by
    score descending then id ascending. Float32 products are exact in float64, so the scores hardly depend on how the
    sums are ordered. Candidates are read RESCORE_QUERIES queries at a time."""
    scores_out = np.empty((len(queries), k), dtype=np.float64)
    ids_out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), RESCORE_QUERIES):
        block = ids[start : start + RESCORE_QUERIES]
        vectors = passages.gather(block.ravel()).reshape(*block.shape, passages.dim).astype(np.float64)
        scores = np.einsum("qcd,qd->qc", vectors, queries[start : start + RESCORE_QUERIES].astype(np.float64))
        scores, ranked = _sorted_rows(scores, block)
        scores_out[start : start + len(block)], ids_out[start : start + len(block)] = scores[:, :k], ranked[:, :k]
    return scores_out, ids_out


def _sorted_rows(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row ordered by score descending, then id ascending."""
    order = np.lexsort((ids, -scores), axis=-1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _merge(scores_a: np.ndarray, ids_a: np.ndarray, scores_b: np.ndarray, ids_b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = _sorted_rows(np.concatenate([scores_a, scores_b], axis=1), np.concatenate([ids_a, ids_b], axis=1))
    return scores[:, :k], ids[:, :k]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest of a 1-D `scores`, by score descending then index ascending (exact, also for ties)."""
    n = len(scores)
    if k >= n:
        return np.lexsort((np.arange(n), -scores))
    threshold = np.partition(scores, n - k)[n - k]
    candidates = np.flatnonzero(scores >= threshold)  # every tie of the k-th score, so ties break by index
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


def _rows_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """`top_k` of every row of a 2-D `scores` (unsorted within the row): argpartition, and `top_k` for the rare rows
    where ties straddle the k-th place (argpartition would pick among them arbitrarily)."""
    n = scores.shape[1]
    if k >= n:
        return np.broadcast_to(np.arange(n), scores.shape).copy()
    ids = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    kth = np.take_along_axis(scores, ids, axis=1).min(axis=1)
    tied = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k)
    for row in tied:
        ids[row] = top_k(scores[row], k)
    return ids


def _chunk_top_k_exact(queries: np.ndarray, chunk: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top min(k, len(chunk)) of `chunk` for every query (chunk-local ids), numpy matrix products in blocks of queries."""
    k = min(k, len(chunk))
    block = max(1, SCORE_BLOCK_ELEMENTS // max(1, len(chunk)))
    scores_out = np.empty((len(queries), k), dtype=np.float32)
    ids_out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ chunk.T
        ids = _rows_top_k(scores, k)
        scores_out[start : start + block] = np.take_along_axis(scores, ids, axis=1)
        ids_out[start : start + block] = ids
    return scores_out, ids_out


def _chunk_top_k_faiss(queries: np.ndarray, chunk: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """As `_chunk_top_k_exact`, by a faiss ``IndexFlatIP`` over the chunk. One more neighbour than needed is asked
    for: rows where it ties the k-th (faiss would choose among the ties) are searched again exactly."""
    import faiss

    k = min(k, len(chunk))
    index = faiss.IndexFlatIP(chunk.shape[1])
    index.add(np.ascontiguousarray(chunk))
    want = min(k + 1, len(chunk))
    scores, ids = index.search(queries, want)
    tied = np.flatnonzero(scores[:, k - 1] == scores[:, k]) if want > k else np.empty(0, dtype=np.int64)
    scores, ids = np.ascontiguousarray(scores[:, :k]), np.ascontiguousarray(ids[:, :k], dtype=np.int64)
    if len(tied):
        scores[tied], ids[tied] = _chunk_top_k_exact(queries[tied], chunk, k)
    return scores, ids
