"""Compute the last encoder layer for the first token only.

A BERT sequence classifier reads one vector, the last layer's output at the first token
(`[CLS]`, through the pooler). The last layer's outputs at every other position are computed
and thrown away: its query projection, attention output projection and feed-forward block
run for all T tokens when one is needed. Only the keys and values need every token. On
MiniLM-L6 that is ~14% of the model's FLOPs, forward and backward, for no change in the scores
(the same arithmetic on the same inputs; differences are float rounding only).

`first_token_only(model)` patches the last layer of a supported model for the duration of a
`with` block and restores it afterwards, so the saved weights, the state dict and what plain
transformers computes are unchanged::

    with first_token_only(model):
        logits = model(**batch).logits      # same logits, less work

Models outside the supported list (BERT-family classifiers whose head reads the first token)
are left untouched, and so is every model, with one warning, when the transformers internals this uses
(`hf_crossenc.compat.first_token_attention`) have moved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .compat import first_token_attention
from .cpu_attention import ATTENTION_NAME as CPU_ATTENTION

# Sequence classifiers whose head reads only hidden_states[:, 0] and whose layers have BERT's
# module layout (attention.self.{query,key,value}, attention.output, feed_forward_chunk).
SUPPORTED_MODEL_TYPES = frozenset({"bert"})
# Attention functions whose mask is a plain tensor (or None) that can be cut to the first query row.
ATTENTION_IMPLEMENTATIONS = frozenset({"eager", "sdpa", CPU_ATTENTION})


def _last_layer(model: nn.Module) -> nn.Module | None:
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return None
    if getattr(config, "is_decoder", False) or not type(model).__name__.endswith("ForSequenceClassification"):
        return None
    if getattr(config, "output_hidden_states", False) or getattr(config, "output_attentions", False):
        return None  # those outputs include the last layer's every position
    if getattr(config, "_attn_implementation", None) not in ATTENTION_IMPLEMENTATIONS:
        return None  # e.g. flex attention, whose block masks cannot be cut to the first query
    base = getattr(model, getattr(model, "base_model_prefix", "bert"), None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not layers:
        return None
    layer = layers[-1]
    needed = hasattr(layer, "attention") and hasattr(layer.attention, "self") and hasattr(layer, "feed_forward_chunk")
    if not needed or first_token_attention() is None:  # None: transformers' attention functions moved (warned once)
        return None
    return layer


def _first_token_forward(
    layer: nn.Module,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *args: Any,
    **kwargs: Any,
) -> torch.Tensor:
    kwargs.pop("encoder_attention_mask", None)
    kwargs.pop("past_key_values", None)
    attn = layer.attention.self
    batch, length, _ = hidden_states.shape
    first = hidden_states[:, :1]
    head = attn.attention_head_size
    query = attn.query(first).view(batch, 1, -1, head).transpose(1, 2)
    key = attn.key(hidden_states).view(batch, length, -1, head).transpose(1, 2)
    value = attn.value(hidden_states).view(batch, length, -1, head).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] != 1:
        attention_mask = attention_mask[:, :, :1, :]
    found = first_token_attention()
    if found is None:  # first_token_only swaps the class in only after finding them
        raise RuntimeError("first-token forward without transformers' attention functions (see hf_crossenc.compat)")
    functions, eager_attention_forward = found
    interface = functions.get_interface(attn.config._attn_implementation, eager_attention_forward)
    context, _ = interface(
        attn, query, key, value, attention_mask, dropout=attn.dropout.p if attn.training else 0.0, scaling=attn.scaling, **kwargs
    )
    context = context.reshape(batch, 1, -1)
    attention_output = layer.attention.output(context, first)
    return layer.feed_forward_chunk(attention_output)


_FIRST_TOKEN_CLASSES: dict[type, type] = {}


def _first_token_class(cls: type) -> type:
    """A subclass of the layer's class whose forward is `_first_token_forward` (one per class)."""
    if getattr(cls, "_first_token_only", False):
        return cls
    if cls not in _FIRST_TOKEN_CLASSES:
        _FIRST_TOKEN_CLASSES[cls] = type(f"FirstToken{cls.__name__}", (cls,), {"forward": _first_token_forward, "_first_token_only": True})
    return _FIRST_TOKEN_CLASSES[cls]


@contextlib.contextmanager
def first_token_only(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Within the block, the model's last layer computes only the first position; yields whether it applied.

    The layer's class is swapped for a subclass for the duration (rather than binding a forward to the
    instance): `nn.DataParallel` replicas copy the class and would keep calling a bound method of the
    original layer, on the original device.
    """
    layer = _last_layer(model) if enabled else None
    original = type(layer)  # read once: the check and the restore must agree
    # Already first-token (a nested block), or a forward set on the instance (e.g. an accelerate hook), which a
    # class swap would not reach: leave the layer alone.
    if layer is None or getattr(original, "_first_token_only", False) or "forward" in vars(layer):
        yield False
        return
    layer.__class__ = _first_token_class(original)
    try:
        yield True
    finally:
        layer.__class__ = original
