"""The transformers internals hf_crossenc's speed and memory helpers use, looked up lazily, each with a fallback.

`first_token` (the last layer for the first token only), `cpu_attention` (attention with fast dropout) and
`modeling.recompute_layers` (activation checkpointing of the longest batches) use parts of transformers that are not
its public API and may move or change in a release. Each function here returns the object(s), or None when they are
missing or no longer look as expected; then the helper leaves the model to plain transformers (the same scores, only
slower or more memory) and ONE warning per helper says so. Nothing is imported when this module is, so hf_crossenc
imports whatever transformers has moved. hf_crossenc is tested with the transformers range of its pyproject.toml.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

_warned: set[str] = set()
"""Helpers whose fallback has been announced (one warning each per process)."""


def _lookup(module: str, name: str, check: Callable[[Any], bool]) -> Any | None:
    """``module.name``, or None when the module or the name is missing or the object fails ``check``."""
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return value if check(value) else None


def _found(helper: str, fallback: str, wanted: dict[str, Any]) -> bool:
    """True when every wanted object was found; else warn once per ``helper`` (naming what is missing) and False."""
    missing = [path for path, value in wanted.items() if value is None]
    if not missing:
        return True
    if helper not in _warned:
        _warned.add(helper)
        import transformers

        logger.warning(
            "%s: transformers %s has no usable %s (private parts of transformers that moved or changed): %s. "
            "hf_crossenc is tested with the transformers versions its pyproject.toml allows.",
            helper,
            getattr(transformers, "__version__", "?"),
            ", ".join(missing),
            fallback,
        )
    return False


def _has(*attributes: str) -> Callable[[Any], bool]:
    return lambda value: all(callable(getattr(value, attribute, None)) for attribute in attributes)


def first_token_attention() -> tuple[Any, Callable[..., Any]] | None:
    """(``ALL_ATTENTION_FUNCTIONS``, BERT's ``eager_attention_forward``) for `hf_crossenc.first_token`, or None."""
    functions = _lookup("transformers.modeling_utils", "ALL_ATTENTION_FUNCTIONS", _has("get_interface"))
    eager = _lookup("transformers.models.bert.modeling_bert", "eager_attention_forward", callable)
    wanted = {
        "transformers.modeling_utils.ALL_ATTENTION_FUNCTIONS": functions,
        "transformers.models.bert.modeling_bert.eager_attention_forward": eager,
    }
    if not _found("first_token_only", "the last layer computes every position, as in plain transformers", wanted):
        return None
    return functions, eager


class CpuAttentionSupport(NamedTuple):
    """What `hf_crossenc.cpu_attention` needs: the registries of attention functions and of their masks, SDPA's mask
    function (for the registered name) and SDPA's attention (its path off the CPU)."""

    attention_interface: Any
    mask_interface: Any
    sdpa_mask: Callable[..., Any]
    sdpa_attention_forward: Callable[..., Any]


def cpu_attention_support() -> CpuAttentionSupport | None:
    """transformers' ``AttentionInterface``, ``masking_utils.AttentionMaskInterface``, ``masking_utils.sdpa_mask`` and
    ``integrations.sdpa_attention.sdpa_attention_forward`` for `hf_crossenc.cpu_attention`, or None."""
    wanted = {
        "transformers.AttentionInterface": _lookup("transformers", "AttentionInterface", _has("register")),
        "transformers.masking_utils.AttentionMaskInterface": _lookup(
            "transformers.masking_utils", "AttentionMaskInterface", _has("register")
        ),
        "transformers.masking_utils.sdpa_mask": _lookup("transformers.masking_utils", "sdpa_mask", callable),
        "transformers.integrations.sdpa_attention.sdpa_attention_forward": _lookup(
            "transformers.integrations.sdpa_attention", "sdpa_attention_forward", callable
        ),
    }
    if not _found("use_cpu_attention", "the model keeps its own attention (torch's dropout inside it)", wanted):
        return None
    return CpuAttentionSupport(*wanted.values())


def gradient_checkpointing_layer() -> type | None:
    """transformers' ``GradientCheckpointingLayer`` (the base class of layers that can recompute their activations) for
    `hf_crossenc.modeling.recompute_layers`, or None."""
    cls = _lookup(
        "transformers.modeling_layers",
        "GradientCheckpointingLayer",
        lambda value: isinstance(value, type) and hasattr(value, "gradient_checkpointing"),
    )
    wanted = {"transformers.modeling_layers.GradientCheckpointingLayer": cls}
    if not _found("recompute_above_tokens", "every batch keeps its activations (no recompute)", wanted):
        return None
    return cls
