"""Embeddings on disk and chunked exact top-k search: against a full score matrix, faiss against numpy, ties."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from hf_crossenc import embedding_index
from hf_crossenc.embedding_index import EmbeddingFile, embed_to_file, faiss_available, resolve_backend, search_top_k, top_k
from hf_crossenc.errors import ConfigError

BACKENDS = ["exact", pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed"))]


class ArrayEncoder:
    """Texts are row numbers of a fixed matrix ("17" -> row 17); records the size of every call."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.vectors[[int(t) for t in texts]]


def random_unit(rows: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write(tmp_path, vectors: np.ndarray, dtype: str = "float32") -> EmbeddingFile:
    return embed_to_file(ArrayEncoder(vectors), [str(i) for i in range(len(vectors))], tmp_path / "e.bin", dtype=dtype, batch_texts=7)


def reference_top_k(queries: np.ndarray, passages: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole score matrix, each row sorted by score descending then index ascending."""
    scores = queries @ passages.T
    ids = np.stack([np.lexsort((np.arange(len(passages)), -row))[:k] for row in scores])
    return np.take_along_axis(scores, ids, axis=1), ids


def test_embeddings_are_written_in_batches_normalised_and_read_back(tmp_path):
    raw = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32) * 3
    encoder = ArrayEncoder(raw)
    stored = embed_to_file(encoder, [str(i) for i in range(20)], tmp_path / "e.bin", batch_texts=8)
    assert encoder.calls == [8, 8, 4]
    assert (stored.rows, stored.dim, stored.dtype) == (20, 5, "float32")
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    mapped = np.memmap(tmp_path / "e.bin", dtype="float32", mode="r", shape=(20, 5))
    np.testing.assert_allclose(mapped, expected, rtol=1e-6)
    np.testing.assert_array_equal(stored.read(3, 11), mapped[3:11])
    np.testing.assert_array_equal(np.concatenate([c for _, c in stored.chunks(6)]), mapped)
    assert [start for start, _ in stored.chunks(6)] == [0, 6, 12, 18]
    np.testing.assert_array_equal(stored.gather([19, 0, 19]), mapped[[19, 0, 19]])
    assert stored.gather([]).shape == (0, 5)
    with pytest.raises(IndexError, match=r"\[0, 20\)"):
        stored.gather([3, 20])


def test_float16_storage_halves_the_file_and_reads_as_float32(tmp_path):
    vectors = random_unit(10, 8, 1)
    stored = write(tmp_path, vectors, "float16")
    assert (tmp_path / "e.bin").stat().st_size == 10 * 8 * 2
    block = stored.read(0, 10)
    assert block.dtype == np.float32
    np.testing.assert_allclose(block, vectors, atol=1e-3)
    with pytest.raises(ConfigError, match="--embedding_dtype"):
        write(tmp_path, vectors, "int8")


def test_an_encoder_returning_the_wrong_shape_is_an_error(tmp_path):
    class Short:
        def encode(self, texts):
            return np.ones((len(texts) - 1, 3))

    with pytest.raises(ValueError, match="shape"):
        embed_to_file(Short(), ["a", "b"], tmp_path / "e.bin")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("chunk_rows", "k"), [(1000, 10), (37, 10), (7, 25), (50, 300)])
def test_chunked_search_equals_the_full_score_matrix(tmp_path, backend, chunk_rows, k):
    passages, queries = random_unit(300, 16, 2), random_unit(40, 16, 3)
    stored = write(tmp_path, passages)
    scores, ids = search_top_k(queries, stored, k, backend=backend, chunk_rows=chunk_rows)
    expected_scores, expected_ids = reference_top_k(queries, passages, min(k, 300))
    assert ids.shape == (40, min(k, 300)) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_faiss_and_exact_agree_on_neighbours_order_and_scores(tmp_path):
    if not faiss_available():
        pytest.skip("faiss-cpu is not installed")
    # MiniLM's dimension: the two float32 kernels differ in the last bits, which the float64 rescoring evens out.
    passages, queries = random_unit(20000, 384, 4), random_unit(500, 384, 5)
    stored = write(tmp_path, passages)
    exact = search_top_k(queries, stored, 50, backend="exact", chunk_rows=3000)
    faiss = search_top_k(queries, stored, 50, backend="faiss", chunk_rows=3000)
    np.testing.assert_array_equal(faiss[1], exact[1])
    np.testing.assert_array_equal(faiss[0], exact[0])
    assert exact[0].dtype == np.float64
    np.testing.assert_allclose(exact[0], reference_top_k(queries, passages, 50)[0], atol=1e-6)


def test_rescoring_orders_candidates_by_float64_scores(tmp_path):
    passages = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    stored = write(tmp_path, passages)
    queries = np.array([[1.0, 0.0]], dtype=np.float32)
    scores, ids = embedding_index.rescore(queries, stored, np.array([[3, 1, 0, 2]]), 3)
    assert ids.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(scores, [[1.0, 0.8, 0.6]], atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk_rows", [100, 3, 4])
def test_ties_break_by_the_lower_id_across_chunks(tmp_path, backend, chunk_rows):
    # Rows 2, 5, 6, 9 are one vector (tied at the top), rows 0, 4, 7 another (tied next): k = 5 cuts inside the second tie.
    top, second = np.array([1.0, 0.0, 0.0]), np.array([0.6, 0.8, 0.0])
    passages = np.tile(np.array([0.0, 0.0, 1.0]), (12, 1))
    passages[[2, 5, 6, 9]] = top
    passages[[0, 4, 7]] = second
    stored = write(tmp_path, passages.astype(np.float32))
    queries = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    scores, ids = search_top_k(queries, stored, 5, backend=backend, chunk_rows=chunk_rows)
    assert ids[0].tolist() == [2, 5, 6, 9, 0]
    assert ids[1].tolist() == [1, 3, 8, 10, 11]  # five rows tie at cosine 1 with the second query
    np.testing.assert_allclose(scores[0], [1, 1, 1, 1, 0.6], atol=1e-6)


def test_top_k_breaks_ties_by_index():
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.9], dtype=np.float32)
    assert top_k(scores.copy(), 6).tolist() == [1, 5, 0, 2, 3, 4]
    assert top_k(scores.copy(), 3).tolist() == [1, 5, 0]
    assert top_k(scores.copy(), 4).tolist() == [1, 5, 0, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_score_matrix_larger_than_a_chunk(tmp_path, monkeypatch, backend):
    passages, queries = random_unit(500, 8, 6), random_unit(30, 8, 7)
    stored = write(tmp_path, passages)
    seen: list[tuple[int, int]] = []
    original = embedding_index._chunk_top_k_faiss if backend == "faiss" else embedding_index._chunk_top_k_exact

    def recording(q, chunk, k):
        seen.append((len(q), len(chunk)))
        return original(q, chunk, k)

    monkeypatch.setattr(embedding_index, f"_chunk_top_k_{backend}", recording)
    monkeypatch.setattr(embedding_index, "SCORE_BLOCK_ELEMENTS", 64 * 10)  # exact: blocks of 10 queries x 64 passages
    scores, ids = search_top_k(queries, stored, 12, backend=backend, chunk_rows=64)
    assert max(rows for _, rows in seen) == 64 and len(seen) == 8  # 500 passages in chunks of 64
    np.testing.assert_array_equal(ids, reference_top_k(queries, passages, 12)[1])


def test_empty_inputs(tmp_path):
    stored = write(tmp_path, random_unit(5, 4, 8))
    scores, ids = search_top_k(np.zeros((0, 4), dtype=np.float32), stored, 3)
    assert scores.shape == ids.shape == (0, 3)
    empty = EmbeddingFile(tmp_path / "none.bin", 0, 4)
    assert search_top_k(random_unit(2, 4, 9), empty, 3)[1].shape == (2, 0)


def test_backend_resolution(monkeypatch):
    assert resolve_backend("exact") == "exact"
    with pytest.raises(ConfigError, match="--search must be one of"):
        resolve_backend("hnsw")
    monkeypatch.setattr(embedding_index, "faiss_available", lambda: False)
    assert resolve_backend("auto") == "exact"
    with pytest.raises(ConfigError, match=r"--search faiss needs faiss-cpu.*--search exact"):
        resolve_backend("faiss")
    monkeypatch.setattr(embedding_index, "faiss_available", lambda: True)
    assert resolve_backend("auto") == "faiss"


def test_a_bi_encoder_that_does_not_remember_keeps_no_embedding(tiny_model_dir):
    from hf_crossenc.bi_encoder import BiEncoder

    forgetful = BiEncoder(str(tiny_model_dir), precision="fp32", remember=False)
    remembering = BiEncoder(str(tiny_model_dir), precision="fp32")
    texts = ["a cat", "a dog", "a cat"]
    np.testing.assert_allclose(forgetful.encode(texts), remembering.encode(texts), atol=1e-6)
    assert forgetful._cache == {} and set(remembering._cache) == {"a cat", "a dog"}
