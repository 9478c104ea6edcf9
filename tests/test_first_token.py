"""The last layer computed for the first token only gives the same logits and gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.bert.modeling_bert import BertLayer

from hf_crossenc.first_token import first_token_only

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar loudly on a stage."),
    ("Short.", "A much longer second sentence with many more tokens in it than the first."),
    ("Two dogs run.", "Dogs."),
]


def _batch(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any(), "the batch must contain padding"
    return enc


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_same_logits_and_gradients(tiny_model_dir, attn):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1, attn_implementation=attn)
    model.eval()  # no dropout, so both paths see the same arithmetic
    enc = _batch(tiny_model_dir)
    layer = model.bert.encoder.layer[-1]
    results = []
    for patched in (False, True):
        model.zero_grad()
        with first_token_only(model, enabled=patched) as applied:
            assert applied is patched
            logits = model(**enc).logits
        logits.sum().backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (full, full_grads), (fast, fast_grads) = results
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    assert fast_grads.keys() == full_grads.keys() and len(full_grads) > 0
    for name in full_grads:
        torch.testing.assert_close(fast_grads[name], full_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert "forward" not in vars(layer) and type(layer) is BertLayer, "the original layer is restored after the block"


def test_same_gradients_under_activation_checkpointing(tiny_model_dir):
    """The swapped-in class inherits transformers' checkpointing wrapper of `forward`: the last layer is
    recomputed in backward like the others (its feed-forward runs twice, for the first position), with the
    same gradients."""
    enc = _batch(tiny_model_dir)
    grads = []
    for patched in (False, True):
        torch.manual_seed(0)  # the same classifier head both times
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_model_dir, num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
        model.activation_checkpointing_enable()
        model.train()
        seen = []
        dense = model.bert.encoder.layer[-1].intermediate.dense
        hook = dense.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.shape[1]))
        with first_token_only(model, enabled=patched) as applied:
            assert applied is patched
            model(**enc).logits.sum().backward()
        hook.remove()
        assert seen == ([1, 1] if patched else [enc["input_ids"].shape[1]] * 2), "forward + checkpoint recompute"
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_really_computes_less(tiny_model_dir):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    enc = _batch(tiny_model_dir)
    seen = []
    hook = model.bert.encoder.layer[-1].intermediate.dense.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(**enc)
        with first_token_only(model):
            model(**enc)
    hook.remove()
    length = enc["input_ids"].shape[1]
    assert seen[0][:2] == (3, length) and seen[1][:2] == (3, 1)


def test_data_parallel_replicas_run_their_own_layer(tiny_model_dir):
    """nn.DataParallel (Trainer on several GPUs without a distributed launch) replicates the model inside the
    block: each replica's last layer must take the first-token path with its own weights, not call back into the
    original layer (which lives on the first device). Replicated here the way `replicate()` does it."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    enc = _batch(tiny_model_dir)
    layer = model.bert.encoder.layer[-1]
    with torch.no_grad():
        full = model(**enc).logits
        with first_token_only(model) as applied:
            assert applied
            replica = layer._replicate_for_data_parallel()
            assert replica.forward.__self__ is replica
            seen = []
            hook = layer.intermediate.dense.register_forward_hook(lambda m, i, o: seen.append(o.shape))
            model.bert.encoder.layer[-1] = replica
            fast = model(**enc).logits
            model.bert.encoder.layer[-1] = layer
            hook.remove()
    assert type(layer) is BertLayer and type(replica) is not BertLayer  # the replica keeps the class it was made with
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    assert seen[0][:2] == (3, 1), "the replica's own submodules computed the first position only"


def test_leaves_a_layer_with_an_instance_forward_alone(tiny_model_dir):
    """A forward set on the instance (accelerate's hooks do that) shadows any class: report it as not applied."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    layer = model.bert.encoder.layer[-1]
    layer.forward = layer.forward  # an instance attribute wrapping the class's forward
    with first_token_only(model) as applied:
        assert applied is False and type(layer) is BertLayer


def test_leaves_other_models_alone(tiny_model_dir):
    encoder = AutoModel.from_pretrained(tiny_model_dir)  # no first-token head: every position is an output
    with first_token_only(encoder) as applied:
        assert applied is False
    assert "forward" not in vars(encoder.encoder.layer[-1])


@pytest.mark.parametrize(
    "settings", [{"output_hidden_states": True}, {"output_attentions": True}, {"attn_implementation": "flex_attention"}]
)
def test_left_off_when_every_position_or_another_mask_is_needed(tiny_model_dir, settings):
    """Hidden states / attentions of every position, or flex attention's block masks: the full layer runs."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, **settings)
    with first_token_only(model) as applied:
        assert applied is False
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    with first_token_only(model) as applied:
        assert applied is True
