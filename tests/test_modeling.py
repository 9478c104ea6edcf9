"""hf_crossenc.modeling: loading a model for training, freezing parts of it."""

from __future__ import annotations

import pytest

from hf_crossenc.errors import ConfigError


def test_freeze_layers_stops_backpropagation_above_them(tiny_model_dir):
    import torch

    from hf_crossenc.modeling import encoder_layers, freeze, load_model_for_training

    model = load_model_for_training(str(tiny_model_dir))
    freeze(model, embeddings=True)  # the word-embedding matrix only: the gradient still reaches the positions
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.base_model.embeddings.position_embeddings.weight.requires_grad
    assert all(p.requires_grad for p in encoder_layers(model).parameters())

    model = load_model_for_training(str(tiny_model_dir))
    stack = encoder_layers(model)
    assert len(stack) == 2 and stack is model.bert.encoder.layer
    freeze(model, layers=1)
    outputs = {}
    stack[0].register_forward_hook(lambda module, args, out: outputs.setdefault(0, out[0] if isinstance(out, tuple) else out))
    batch = {"input_ids": torch.tensor([[2, 5, 6, 3, 7, 8, 3]]), "labels": torch.tensor([0.5])}
    logits = model(input_ids=batch["input_ids"]).logits
    torch.nn.functional.mse_loss(logits.squeeze(-1), batch["labels"]).backward()
    assert not outputs[0].requires_grad  # nothing below layer 2 is on the backward graph
    frozen = [*model.base_model.embeddings.parameters(), *stack[0].parameters()]
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stack[1].parameters() if p.dim() > 1)
    assert model.classifier.weight.grad is not None
    for bad in (3, -1):
        with pytest.raises(ConfigError, match="transformer layers"):
            freeze(load_model_for_training(str(tiny_model_dir)), layers=bad)
