"""hf_crossenc.bi_encoder: BiEncoder embeddings on the tiny model, length-grouped batches, finetune_bi_encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hf_crossenc.bi_encoder import BiEncoder


def test_bi_encoder_embeddings_are_normalised_and_order_independent(tiny_model_dir):
    encoder = BiEncoder(str(tiny_model_dir), batch_size=2, precision="fp32")
    texts = ["a short one", "a much longer sentence about cats and dogs", "a short one", "x"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (4, 32)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(4), abs=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2])
    fresh = BiEncoder(str(tiny_model_dir), batch_size=3, precision="fp32")  # other batches, no cache: same vectors
    np.testing.assert_allclose(fresh.encode(texts[::-1])[::-1], vectors, atol=1e-5)
    cos = encoder.cosine(["a short one"], ["a short one"])
    assert cos[0] == pytest.approx(1.0, abs=1e-5)


def test_bi_encoder_length_stays_within_its_position_table(tiny_model_dir):
    """A longer limit (e.g. a cross-encoder's) is cut to the encoder's own positions: long texts are truncated, not
    sent past the position embeddings."""
    encoder = BiEncoder(str(tiny_model_dir), max_length=100_000, precision="fp32")
    positions = encoder.model.config.max_position_embeddings
    assert encoder.max_length == positions
    assert encoder.encode(["word " * (2 * positions)]).shape == (1, encoder.model.config.hidden_size)


def test_bi_encoder_in_bf16_is_close_to_fp32(tiny_model_dir):
    texts_a = ["a short one", "a much longer sentence about cats and dogs", "x", "two dogs run in a park"]
    texts_b = ["a short two", "cats and dogs", "a much longer sentence about x", "a dog runs"]
    full = BiEncoder(str(tiny_model_dir), precision="fp32")
    half = BiEncoder(str(tiny_model_dir), precision="bf16")
    assert half.model.dtype == torch.bfloat16 and full.model.dtype == torch.float32
    vectors = half.encode(texts_a)
    assert vectors.dtype == np.float32 and np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(4), abs=1e-5)
    np.testing.assert_allclose(half.cosine(texts_a, texts_b), full.cosine(texts_a, texts_b), atol=0.02)
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert BiEncoder(str(tiny_model_dir), precision="auto").precision == ("bf16" if native else "fp32")
    with pytest.raises(ValueError, match="precision"):
        BiEncoder(str(tiny_model_dir), precision="fp16")


def test_length_grouped_batches_cover_every_row_once_with_similar_lengths():
    from hf_crossenc.bi_encoder import length_grouped_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, size=1000)
    batches = length_grouped_batches(lengths, 16, np.random.default_rng(1), window=50)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    assert max(len(b) for b in batches) == 16
    grouped_padding = sum(len(b) * lengths[b].max() for b in batches)
    random_padding = sum(len(b) * lengths[b].max() for b in np.array_split(rng.permutation(1000), len(batches)))
    assert grouped_padding < 0.7 * random_padding  # 0.59 with these seeds
    again = length_grouped_batches(lengths, 16, np.random.default_rng(1), window=50)
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))


def test_finetune_bi_encoder_can_keep_the_word_embeddings_fixed(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from hf_crossenc.bi_encoder import finetune_bi_encoder

    texts_a = [f"the cat number {i} sits" for i in range(8)]
    texts_b = [f"a cat {i} sits" if i % 2 else f"stocks fell {i}" for i in range(8)]
    labels = np.array([0.9 if i % 2 else 0.1 for i in range(8)])
    kwargs = {"epochs": 2, "batch_size": 4, "learning_rate": 1e-3, "max_length": 32, "precision": "fp32"}

    def tensor(weights, suffix):  # the base may carry a "bert." prefix, the saved bi-encoder does not
        return next(v for k, v in weights.items() if k.endswith(suffix))

    def tuned(name, **extra):
        path = finetune_bi_encoder(str(tiny_model_dir), texts_a, texts_b, labels, tmp_path / name, **kwargs, **extra)
        return load_file(str(Path(path) / "model.safetensors"))

    base, frozen, free = load_file(str(tiny_model_dir / "model.safetensors")), tuned("f", freeze_embeddings=True), tuned("g")
    words, query = "word_embeddings.weight", "layer.0.attention.self.query.weight"
    assert torch.equal(tensor(frozen, words), tensor(base, words))
    assert not torch.equal(tensor(free, words), tensor(base, words))
    assert not torch.equal(tensor(frozen, query), tensor(base, query))  # the encoder layers still train


def test_finetune_bi_encoder_moves_cosines_towards_the_labels_and_is_seeded(tiny_model_dir, tmp_path):
    from hf_crossenc.bi_encoder import finetune_bi_encoder

    texts_a = [f"the cat number {i} sits on a mat" for i in range(16)]
    texts_b = [f"a cat {i} is sitting" if i % 2 else f"stocks fell {i} points today" for i in range(16)]
    labels = np.array([0.9 if i % 2 else 0.1 for i in range(16)])
    before = BiEncoder(str(tiny_model_dir), precision="fp32").cosine(texts_a, texts_b)
    kwargs = {"epochs": 6, "batch_size": 4, "learning_rate": 1e-3, "max_length": 32, "seed": 3, "precision": "fp32"}
    first = finetune_bi_encoder(str(tiny_model_dir), texts_a, texts_b, labels, tmp_path / "one", **kwargs)
    after = BiEncoder(first, precision="fp32").cosine(texts_a, texts_b)
    assert np.mean((after - labels) ** 2) < 0.5 * np.mean((before - labels) ** 2)
    again = BiEncoder(finetune_bi_encoder(str(tiny_model_dir), texts_a, texts_b, labels, tmp_path / "two", **kwargs), precision="fp32")
    np.testing.assert_array_equal(again.cosine(texts_a, texts_b), after)  # same seed, same weights
    with pytest.raises(ValueError, match="as many"):
        finetune_bi_encoder(str(tiny_model_dir), texts_a, texts_b[:3], labels, tmp_path / "bad", epochs=1)
