"""hf_crossenc.cpu_attention: softmax(QKᵀ)·V with fast dropout masks, in place of SDPA while training on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_crossenc.cpu_attention import ATTENTION_NAME, use_cpu_attention
from hf_crossenc.fast_dropout import use_fast_dropout


def test_use_fast_dropout_keeps_eval_scores_and_the_saved_config(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    batch = tokenizer(["a cat sits", "hello there my friend"], ["a cat", "hi"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).logits
    assert use_fast_dropout(model) > 0
    assert use_cpu_attention(model) and model.config._attn_implementation == ATTENTION_NAME
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert not any(m.training for m in model.modules())  # swapped modules keep the model's mode
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, before, atol=1e-5)
    # Training mode with every dropout probability at 0 is the evaluation forward (padding masked right).
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for layer in model.base_model.encoder.layer:
        layer.attention.self.dropout.p = 0.0
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, before, atol=1e-5)
    # Dropout on: the output changes between calls and gradients flow.
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.3
    for layer in model.base_model.encoder.layer:
        layer.attention.self.dropout.p = 0.3
    first, second = model(**batch).logits, model(**batch).logits
    assert not torch.allclose(first, second)
    first.sum().backward()
    assert model.base_model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert ATTENTION_NAME not in json.dumps(config)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    assert reloaded.config._attn_implementation != ATTENTION_NAME


@pytest.mark.parametrize("padded", [False, True])
def test_decoder_classifiers_stay_causal(padded):
    """A decoder without padding gets no mask from transformers (SDPA's is_causal does the masking): ours must too."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, num_labels=2, pad_token_id=0, attn_implementation="sdpa",
    )  # fmt: skip
    model = LlamaForSequenceClassification(config).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 3, 4, 5]] if padded else [[5, 6, 7, 8, 9], [4, 3, 2, 1, 7]])
    mask = (ids != 0).long()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        use_fast_dropout(model)
        assert use_cpu_attention(model) and model.config._attn_implementation == ATTENTION_NAME
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, before, atol=1e-5, rtol=0)
