"""hf_crossenc.data_collator: CrossEncoderDataCollator tokenizes pairs jointly, truncates, flattens listwise groups."""

from __future__ import annotations

import pytest
import torch

from hf_crossenc.data_collator import CrossEncoderDataCollator


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


def test_collator_flattens_groups_in_order(tiny_model_dir):
    from transformers import AutoTokenizer

    collator = CrossEncoderDataCollator(AutoTokenizer.from_pretrained(tiny_model_dir), max_length=32)
    batch = collator(
        [{"text_a": "q one", "text_b": "pos", "negatives": ["n a", "n b"]}, {"text_a": "q two", "text_b": "pos 2", "negatives": ["c", "d"]}]
    )
    assert batch["input_ids"].shape[0] == 6
    assert batch["labels"].tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    tokenizer = collator.tokenizer
    second = tokenizer.decode(batch["input_ids"][1], skip_special_tokens=True)
    assert second.startswith("q one") and second.endswith("n a")


def test_collator_keeps_group_ids_with_eval_labels(tiny_model_dir):
    from transformers import AutoTokenizer

    collator = CrossEncoderDataCollator(AutoTokenizer.from_pretrained(tiny_model_dir))
    batch = collator(
        [{"text_a": "q", "text_b": "a", "label": 1.0, "group_id": 3}, {"text_a": "q", "text_b": "b", "label": 0.0, "group_id": 3}]
    )
    assert batch["labels"].tolist() == [[1.0, 3.0], [0.0, 3.0]]
    classes = collator([{"text_a": "a", "text_b": "b", "label": 2}])
    assert classes["labels"].dtype == torch.int64
