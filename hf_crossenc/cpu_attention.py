"""CPU attention for training with fast dropout: softmax(QKᵀ)·V, with `hf_crossenc.fast_dropout` masks on the attention
probabilities while training.

`use_cpu_attention(model)` routes an SDPA model's attention through `attention_with_fast_dropout` (registered with
transformers' `AttentionInterface` as ``"hf_crossenc_cpu"``). transformers does not serialise the attention
implementation, so the saved model loads and scores exactly as before. On GPUs it is transformers' own SDPA path.
When the transformers internals this needs (`hf_crossenc.compat.cpu_attention_support`) have moved, the model keeps its
own attention, with one warning.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from .compat import CpuAttentionSupport, cpu_attention_support
from .fast_dropout import fast_dropout

logger = logging.getLogger(__name__)

ATTENTION_NAME = "hf_crossenc_cpu"


def attention_with_fast_dropout(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention; on CPU, dropout on the probabilities uses `keep_mask`.

    Inputs as transformers passes them: (batch, heads, length, head_dim) and an SDPA-style mask
    (boolean, True = attend, or additive float). On CPU this is the plain softmax(QKᵀ)V path (for
    sentence-pair lengths it is also faster than SDPA's flash kernel in evaluation); off CPU it is
    transformers' own SDPA path.
    """
    if query.device.type != "cpu":
        support = cpu_attention_support()
        if support is None:  # use_cpu_attention registers this function only after finding them
            raise RuntimeError("hf_crossenc_cpu attention without transformers' SDPA attention (see hf_crossenc.compat)")
        return support.sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat the key/value heads
        repeat = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(repeat, dim=1), value.repeat_interleave(repeat, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is None and getattr(module, "is_causal", False) and query.shape[2] > 1:
        # Decoder models without padding pass no mask and rely on is_causal (as SDPA does).
        q_len, k_len = query.shape[2], key.shape[2]
        attention_mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask[..., : key.shape[-2]]
    weights = fast_dropout(torch.softmax(weights, dim=-1), dropout)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _register(support: CpuAttentionSupport) -> None:
    support.attention_interface.register(ATTENTION_NAME, attention_with_fast_dropout)
    support.mask_interface.register(ATTENTION_NAME, support.sdpa_mask)


def use_cpu_attention(model: nn.Module) -> bool:
    """Route an SDPA model's attention through `attention_with_fast_dropout`; False (and nothing changed) for any other
    attention implementation, or when transformers' attention registries have moved (one warning)."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == "sdpa" and hasattr(model, "set_attn_implementation"):
        support = cpu_attention_support()
        if support is None:
            return False
        _register(support)
        model.set_attn_implementation(ATTENTION_NAME)
        return True
    logger.info("fast dropout: attention implementation %r left unchanged", getattr(config, "_attn_implementation", None))
    return False
