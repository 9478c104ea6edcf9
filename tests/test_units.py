"""Collator output, metric values computed by hand, and loss choice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, EvalPrediction

from hf_crossenc import CrossEncoderDataCollator
from hf_crossenc.losses import pointwise_loss
from hf_crossenc.metrics import compute_regression_metrics, correlation_metrics, sigmoid


@pytest.fixture
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_collator_tokenizes_pairs_jointly(tokenizer):
    collator = CrossEncoderDataCollator(tokenizer, max_length=64, pad_to_multiple_of=8)
    batch = collator(
        [
            {"text_a": "A cat sits.", "text_b": "A cat is sitting on the mat.", "label": 0.9, "length": 14},
            {"text_a": "Hi", "text_b": "Yo", "label": 0.1, "length": 5},
        ]
    )
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert all(isinstance(v, torch.Tensor) for v in batch.values())
    assert batch["input_ids"].shape[1] % 8 == 0
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == pytest.approx([0.9, 0.1])
    ids = batch["input_ids"][1].tolist()
    # [CLS] hi [SEP] yo [SEP] then padding; the second text has token type 1.
    assert ids[:5] == [
        tokenizer.cls_token_id,
        *tokenizer.convert_tokens_to_ids(["hi"]),
        tokenizer.sep_token_id,
        *tokenizer.convert_tokens_to_ids(["yo"]),
        tokenizer.sep_token_id,
    ]
    assert batch["token_type_ids"][1].tolist()[:5] == [0, 0, 0, 1, 1]
    assert batch["attention_mask"][1].sum().item() == 5


def test_collator_truncates_and_skips_missing_labels(tokenizer):
    collator = CrossEncoderDataCollator(tokenizer, max_length=16, pad_to_multiple_of=None)
    batch = collator([{"text_a": "word " * 50, "text_b": "other " * 50}])
    assert batch["input_ids"].shape == (1, 16)
    assert "labels" not in batch
    with pytest.raises(ValueError, match="empty batch"):
        collator([])


def test_correlations_by_hand():
    # Ranks agree perfectly -> Spearman 1; Pearson computed by hand = 1.55 / sqrt(0.6275 * 5).
    got = correlation_metrics(np.array([0.0, 0.1, 0.2, 1.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    assert got["spearman"] == pytest.approx(1.0)
    assert got["pearson"] == pytest.approx(1.55 / math.sqrt(0.6275 * 5))
    # One swapped pair among 4: Spearman 1 - 6*2/(4*15) = 0.8; Pearson 4/5 = 0.8.
    got = correlation_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert got == pytest.approx({"pearson": 0.8, "spearman": 0.8})


def test_constant_predictions_are_nan_not_invented():
    got = correlation_metrics(np.array([0.5, 0.5, 0.5]), np.array([0.0, 0.5, 1.0]))
    assert math.isnan(got["pearson"]) and math.isnan(got["spearman"])


def test_compute_metrics_applies_sigmoid_to_logits():
    logits = np.array([[-2.0], [0.0], [3.0]])
    labels = np.array([0.1, 0.5, 0.9])
    got = compute_regression_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert got["spearman"] == pytest.approx(1.0)
    assert got["pearson"] == pytest.approx(correlation_metrics(sigmoid(logits.ravel()), labels)["pearson"])
    assert sigmoid(np.array([0.0, 1000.0, -1000.0])).tolist() == [0.5, 1.0, 0.0]


def test_loss_choice_by_hand():
    logits, labels = torch.tensor([[0.0], [0.0]]), torch.tensor([1.0, 0.0])
    assert pointwise_loss(logits, labels, "bce").item() == pytest.approx(math.log(2))
    assert pointwise_loss(logits, labels, "mse").item() == pytest.approx(0.25)
    # BCE with a soft target of 0.8 at logit 0 is still log 2; at logit log(4) it is the entropy of 0.8.
    soft = pointwise_loss(torch.tensor([math.log(4.0)]), torch.tensor([0.8]), "bce").item()
    assert soft == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    with pytest.raises(ValueError):
        pointwise_loss(logits, labels, "hinge")


def test_random_swap_depends_only_on_seed_epoch_and_index():
    import datasets

    from hf_crossenc.ranking import INDEX
    from hf_crossenc.training_data import RandomSwap

    data = {"text_a": [f"a{i}" for i in range(200)], "text_b": [f"b{i}" for i in range(200)], INDEX: list(range(200))}

    def draw(swap: RandomSwap, epoch: int, order: list[int]) -> dict[int, dict]:
        swap.epoch = epoch
        ds = datasets.Dataset.from_dict(data).with_transform(swap)
        return {i: ds[i] for i in order}

    first = draw(RandomSwap(3, 200), 0, list(range(200)))
    assert first == draw(RandomSwap(3, 200), 0, list(reversed(range(200))))  # order of draws does not matter
    swapped = [r for r in first.values() if r["text_a"].startswith("b")]
    assert 60 < len(swapped) < 140  # about half
    assert all(r["text_b"] == "a" + r["text_a"][1:] for r in swapped)
    assert draw(RandomSwap(3, 200), 1, list(range(200))) != first  # a fresh draw each epoch
    ds = datasets.Dataset.from_dict({**data, "length": list(range(200))}).with_transform(RandomSwap(3, 200))
    assert list(ds["length"]) == list(range(200))  # column reads pass through


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


@pytest.mark.parametrize("scale", [1e-3, 10.0])  # below max_grad_norm (nothing clipped) and above it
def test_cpu_clipping_equals_torch(scale: float, tiny_model_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForSequenceClassification

    import hf_crossenc.trainer as trainer_module
    from hf_crossenc import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from hf_crossenc.trainer import clip_grad_norm_cpu

    def with_grads(seed: int) -> torch.nn.Module:
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen) * scale
        return model

    reference = with_grads(0)
    expected_norm = torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 1.0)
    assert (float(expected_norm) > 1.0) == (scale > 1)
    ours = with_grads(0)
    assert torch.equal(clip_grad_norm_cpu(list(ours.parameters()), 1.0), expected_norm)
    for p, q in zip(reference.parameters(), ours.parameters()):
        assert torch.equal(p.grad, q.grad)
    # The Trainer takes this path on CPU.
    calls = []
    monkeypatch.setattr(trainer_module, "clip_grad_norm_cpu", lambda *a: calls.append(a) or clip_grad_norm_cpu(*a))
    model = with_grads(0)
    args = CrossEncoderTrainingArguments(output_dir="out", max_grad_norm=1.0, eval_strategy="no", report_to="none", use_cpu=True)
    trainer = CrossEncoderTrainer(model=model, args=args)
    assert torch.equal(trainer._clip_grad_norm(model), expected_norm) and len(calls) == 1
    for p, q in zip(reference.parameters(), model.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_rank_cli_reads_one_passage_per_line_and_refuses_classifiers(tiny_model_dir, tmp_path, capsys) -> None:
    import json

    from transformers import AutoModelForSequenceClassification

    from hf_crossenc.cli import main as cli_main

    scorer = tmp_path / "scorer"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).save_pretrained(scorer)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(scorer)
    passages = tmp_path / "passages.txt"
    passages.write_text("first line\u2028still the first\n\nsecond\n", encoding="utf-8")
    assert cli_main(["rank", str(scorer), "--query", "a query", "--passages", str(passages)]) == 0
    ranked = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["passage"] for r in ranked) == ["first line\u2028still the first", "second"]

    classifier = tmp_path / "classifier"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3).save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(classifier)
    assert cli_main(["rank", str(classifier), "--query", "a query", "--passages", str(passages)]) == 2
    assert "multi-class classifier" in capsys.readouterr().err


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
