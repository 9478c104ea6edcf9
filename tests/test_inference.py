"""hf_crossenc.inference: CrossEncoderPredictor (bf16, batches in input order, halving the batch when out of memory)
and pad_rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_predictor_bf16_precision_is_close_to_fp32(tiny_model_dir):
    from hf_crossenc import CrossEncoderPredictor

    pairs = [("a man eats food", "someone is eating"), ("the sky is blue", "a dog runs"), ("x", "y z w")]
    exact = CrossEncoderPredictor.from_pretrained(tiny_model_dir).predict(pairs)
    fast = CrossEncoderPredictor.from_pretrained(tiny_model_dir, precision="bf16")
    assert fast.precision == "bf16"
    assert fast.model.dtype == torch.bfloat16  # bf16 weights, not autocast over fp32 ones
    np.testing.assert_allclose(fast.predict(pairs), exact, atol=2e-2)
    # An fp32 model handed to the constructor stays fp32 (not mutated) and runs under autocast.
    fp32_model = CrossEncoderPredictor.from_pretrained(tiny_model_dir).model
    autocast = CrossEncoderPredictor(fp32_model, fast.tokenizer, precision="bf16")
    np.testing.assert_allclose(autocast.predict(pairs), exact, atol=2e-2)
    assert fp32_model.dtype == torch.float32
    assert CrossEncoderPredictor.from_pretrained(tiny_model_dir, precision="auto").precision in ("fp32", "bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        CrossEncoderPredictor.from_pretrained(tiny_model_dir, precision="fp8")


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_rows_matches_tokenizer_pad(tokenizer, side):
    from hf_crossenc.inference import pad_rows

    tokenizer.padding_side = side
    pairs = [("a man eats food", "someone is eating a large meal today"), ("x", "y"), ("the sky is blue", "a dog runs")]
    encoded = tokenizer([a for a, _ in pairs], [b for _, b in pairs])
    rows = [2, 0, 1]
    fast = pad_rows(encoded, rows, tokenizer)
    slow = tokenizer.pad([{k: encoded[k][i] for k in encoded} for i in rows], padding=True, return_tensors="pt")
    assert set(fast) == set(slow)
    for key in slow:
        assert fast[key].dtype == slow[key].dtype
        torch.testing.assert_close(fast[key], slow[key], rtol=0, atol=0)
    # A field without a known pad value goes through tokenizer.pad.
    with_mask = tokenizer([a for a, _ in pairs], [b for _, b in pairs], return_special_tokens_mask=True)
    fallback = pad_rows(with_mask, rows, tokenizer)
    assert fallback["special_tokens_mask"].shape == fast["input_ids"].shape


def test_predictor_scores_batches_in_input_order(tiny_model_dir):
    from hf_crossenc import CrossEncoderPredictor

    predictor = CrossEncoderPredictor.from_pretrained(tiny_model_dir)
    model, tok = predictor.model, predictor.tokenizer
    words = ["a", "man", "eats", "food", "while", "the", "dog", "runs", "across", "the", "wide", "green", "field", "today"]
    pairs = [(" ".join(words[: 1 + i % 7]), " ".join(words[i % 5 :])) for i in range(23)]

    def one_by_one() -> np.ndarray:  # plain forward, one unpadded pair at a time
        with torch.inference_mode():
            return np.stack([predictor.activate(model(**tok(a, b, return_tensors="pt")).logits)[0].numpy() for a, b in pairs])

    # The random tiny head barely separates pairs: rescale it so that the scores spread out.
    with torch.no_grad():
        model.classifier.bias.zero_()
        logits = np.log(one_by_one())
        margin = logits[:, 0] - logits[:, 1]
        model.classifier.weight.mul_(float(1 / margin.std()))
        model.classifier.bias[0] = float(-margin.mean() / margin.std())
    expected = one_by_one()
    assert np.ptp(expected[:, 0]) > 0.2  # distinct enough that a shuffled order would show
    scores = predictor.predict(pairs, batch_size=4)  # lengths sorted across 6 batches, some padded
    np.testing.assert_allclose(scores, expected, atol=1e-3)  # float noise, amplified by the rescaled head
    assert scores.shape == expected.shape and scores.dtype == np.float32


def test_predictor_halves_the_batch_when_out_of_memory(tiny_model_dir, caplog):
    """A batch that raises torch.OutOfMemoryError (a GPU's longest batches) is retried at half the size; the later
    batches keep it; the scores and their order are those of an unconstrained run. A single pair that fails raises."""
    from hf_crossenc import CrossEncoderPredictor

    predictor = CrossEncoderPredictor.from_pretrained(tiny_model_dir)
    words = ["a", "man", "eats", "food", "while", "the", "dog", "runs", "across", "the", "wide", "green", "field", "today"]
    pairs = [(" ".join(words[: 1 + i % 7]), " ".join(words[i % 5 :])) for i in range(23)]
    expected = predictor.predict(pairs, batch_size=8)
    seen = []

    def limit(max_tokens: int):
        def hook(module, args, kwargs):
            ids = kwargs["input_ids"]
            seen.append(tuple(ids.shape))
            if ids.numel() > max_tokens:
                raise torch.OutOfMemoryError("simulated: out of memory")

        return predictor.model.register_forward_pre_hook(hook, with_kwargs=True)

    handle = limit(3 * 12)  # 8 pairs of the shortest lengths fit in no batch above 3 x 12 tokens
    with caplog.at_level("WARNING", logger="hf_crossenc.inference"):
        scores = predictor.predict(pairs, batch_size=8)
    handle.remove()
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    sizes = [rows for rows, _ in seen]
    assert sizes[0] == 8 and min(sizes) < 8 and sum(r for r, t in seen if r * t <= 36) == len(pairs)
    assert sizes == sorted(sizes, reverse=True), "once halved, later batches keep the smaller size"
    assert "out of memory scoring 8 pairs" in caplog.text
    # Both orders (symmetric=True): the second pass starts at the size the first one ended with.
    expected = predictor.predict(pairs, batch_size=8, symmetric=True)
    seen.clear()
    handle = limit(3 * 12)
    np.testing.assert_allclose(predictor.predict(pairs, batch_size=8, symmetric=True), expected, atol=1e-6)
    handle.remove()
    sizes = [rows for rows, _ in seen]
    assert sizes == sorted(sizes, reverse=True) and sizes.count(8) == 1, "one failed batch of 8 in the whole call"
    handle = limit(0)  # nothing fits, not even one pair
    with pytest.raises(torch.OutOfMemoryError):
        predictor.predict(pairs[:3], batch_size=2)
    handle.remove()
