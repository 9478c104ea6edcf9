"""Loading base models and recording, in `config.json`, how logits become scores."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch.utils.checkpoint
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .compat import gradient_checkpointing_layer
from .errors import ConfigError
from .model_files import BUNDLED_MODEL as BUNDLED_MODEL
from .model_files import bundled_model_path as bundled_model_path
from .model_files import check_model_source, check_weights, model_load_errors

logger = logging.getLogger(__name__)

CONFIG_KEY = "hf_crossenc"
"""Key in `config.json` that holds the score semantics of a model trained by hf_crossenc."""


def resolve_model_path(name_or_path: str | None, flag: str = "--model_name_or_path", trust_pickle_weights: bool = False) -> str:
    """`None`/'bundled:all-MiniLM-L6-v2' → the bundled folder; a checked model folder; else a Hub id (offline: a cached
    one). A model that cannot be loaded is a `ConfigError` naming ``flag`` (see `hf_crossenc.model_files`)."""
    return check_model_source(name_or_path, flag, trust_pickle_weights)


def load_tokenizer(model_path: str, flag: str = "--model_name_or_path") -> PreTrainedTokenizerBase:
    """The tokenizer of a resolved model path; one that cannot be loaded is a `ConfigError` (exit code 2) naming it."""
    with model_load_errors(model_path, flag):
        return AutoTokenizer.from_pretrained(model_path)


def safetensors_only(name_or_path: str, trust_pickle_weights: bool = False) -> bool | None:
    """The `use_safetensors` value for `from_pretrained`: True (refuse pickles) unless the user trusts them.

    A local folder that holds only pickle weights is refused with an explanation (`check_weights`): unpickling a
    file can run arbitrary code, so it is never done without ``trust_pickle_weights``.
    """
    if trust_pickle_weights:
        logger.warning("--trust_pickle_weights: pickle weights of %s may be loaded (this can execute code)", name_or_path)
        return None
    path = Path(name_or_path)
    if path.is_dir():
        check_weights(path, "model", trust_pickle_weights)
    return True


@dataclass
class ScoreSemantics:
    """How a raw model output becomes a score; stored under ``config.hf_crossenc``."""

    task: str = "regression"
    activation: str = "sigmoid"
    label_scale: tuple[float, float] | list[float] = (0.0, 1.0)
    loss: str = "bce"
    max_length: int | None = None
    version: str = ""
    threshold: float | None = None
    """Binary classification: scores >= threshold mean the positive class (chosen on the validation split)."""
    label_names: list[str] | None = None
    """Classification: class names in id order (binary: [negative, positive])."""
    symmetric: bool = False
    """Score each pair in both orders and average (hf_crossenc's predict default for this model)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["label_scale"] = list(self.label_scale)
        return out

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> ScoreSemantics:
        data = getattr(config, CONFIG_KEY, None)
        if isinstance(data, dict):
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        # A plain model (not trained by us): one logit → sigmoid, several → softmax.
        num_labels = getattr(config, "num_labels", 1)
        return cls(task="regression" if num_labels == 1 else "classification", activation="sigmoid" if num_labels == 1 else "softmax")


def record_score_semantics(config: PretrainedConfig, semantics: ScoreSemantics) -> None:
    """Write the score semantics into the config, in our key and in the key sentence-transformers reads."""
    setattr(config, CONFIG_KEY, semantics.to_dict())
    activation_class = {"sigmoid": "torch.nn.modules.activation.Sigmoid", "softmax": "torch.nn.modules.activation.Softmax"}
    config.sentence_transformers = {"activation_fn": activation_class.get(semantics.activation, "torch.nn.modules.linear.Identity")}


def load_model_for_training(
    name_or_path: str,
    num_labels: int = 1,
    dropout: float | None = None,
    trust_pickle_weights: bool = False,
    id2label: dict[int, str] | None = None,
    flag: str = "--model_name_or_path",
) -> PreTrainedModel:
    """Load a base encoder with a fresh (or existing) sequence-classification head, safetensors only.

    ``id2label`` names the logits (class names of a classifier; the positive class of a one-logit one).
    """
    # problem_type stays unset: with one label, transformers' text-classification pipeline then applies the
    # sigmoid our scores are defined by ("regression" would make it return raw logits).
    kwargs: dict[str, Any] = {"num_labels": num_labels}
    if id2label:
        kwargs.update(id2label=dict(id2label), label2id={name: i for i, name in id2label.items()})
    with model_load_errors(name_or_path, flag):
        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    as_loaded: dict[str, Any] = {}
    if dropout is not None:
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", "dropout", "attention_dropout"):
            if hasattr(config, name):
                as_loaded[name] = getattr(config, name)
                setattr(config, name, dropout)
    use_safetensors = safetensors_only(name_or_path, trust_pickle_weights)
    with model_load_errors(name_or_path, flag):
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path, config=config, use_safetensors=use_safetensors)
    # A dropout override is a setting of this training run, not of the model: the saved config keeps
    # the values the model came with, so whoever fine-tunes the result gets the usual dropout.
    setattr(model, SAVED_CONFIG_VALUES, as_loaded)
    return model


SAVED_CONFIG_VALUES = "_hf_crossenc_saved_config_values"


@contextmanager
def config_as_loaded(model: PreTrainedModel) -> Iterator[None]:
    """Within the block, the config values that training overrode (dropout) are back to the loaded ones."""
    saved = getattr(model, SAVED_CONFIG_VALUES, None) or {}
    current = {name: getattr(model.config, name) for name in saved}
    for name, value in saved.items():
        setattr(model.config, name, value)
    try:
        yield
    finally:
        for name, value in current.items():
            setattr(model.config, name, value)


def encoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The transformer layers of ``model``'s encoder, bottom first (BERT's ``encoder.layer``, DistilBERT's
    ``transformer.layer``, ...): the first module list under the base model with one entry per hidden layer."""
    count = getattr(model.config, "num_hidden_layers", None)
    for module in model.base_model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ConfigError(f"cannot find the {count} transformer layers of {type(model).__name__} to freeze.")


def freeze(model: PreTrainedModel, embeddings: bool = False, layers: int = 0) -> None:
    """Keep parts of the encoder fixed during training (``requires_grad`` off).

    ``embeddings``: the word-embedding matrix only (half of MiniLM's parameters: no dense gradient or
    optimizer state for it; the gradient still flows down to the position embeddings and the embedding norm).
    ``layers`` > 0: the whole embedding block (word, position and type embeddings, their norm) and the
    bottom ``layers`` transformer layers, so backpropagation stops above them — no gradient with respect to
    their inputs or weights is computed at all, and their activations are not kept for it.
    """
    if embeddings or layers:
        model.get_input_embeddings().weight.requires_grad_(False)
    if not layers:
        return
    stack = encoder_layers(model)
    if not 0 < layers <= len(stack):
        raise ConfigError(f"--freeze_layers {layers}: the model has {len(stack)} transformer layers.")
    block = getattr(model.base_model, "embeddings", None)
    if not isinstance(block, nn.Module):
        raise ConfigError(f"--freeze_layers needs an encoder with an `embeddings` block; {type(model).__name__} has none.")
    block.requires_grad_(False)
    for layer in stack[:layers]:
        layer.requires_grad_(False)


def layers_to_recompute(tokens: int, limit: int, layers: int) -> int:
    """How many of ``layers`` a batch of ``tokens`` recomputes so that it keeps the activations of no more
    token-layers than a batch of ``limit`` tokens keeps (all ``layers``): none up to ``limit`` tokens, then
    ``layers - floor(layers * limit / tokens)``; ``limit`` 0 means never."""
    if limit <= 0 or tokens <= limit or layers <= 0:
        return 0
    return layers - (layers * limit) // tokens


def recomputable_layers(model: PreTrainedModel) -> list[nn.Module]:
    """The layers `recompute_layers` may recompute: the trained transformer layers below the last, bottom first;
    none when the layers are not transformers' `GradientCheckpointingLayer`s (or cannot be found), or when the
    model already checkpoints (``--gradient_checkpointing``), which is then left to it; none, with one warning, when
    transformers no longer has that class where `hf_crossenc.compat.gradient_checkpointing_layer` looks."""
    layer_class = gradient_checkpointing_layer()
    if layer_class is None:
        return []
    try:
        stack = list(encoder_layers(model))
    except ConfigError:
        return []
    if not all(isinstance(layer, layer_class) and not layer.gradient_checkpointing for layer in stack):
        return []
    return [layer for layer in stack[:-1] if any(p.requires_grad for p in layer.parameters())]


@contextmanager
def recompute_layers(model: PreTrainedModel, tokens: int, limit: int) -> Iterator[int]:
    """Within the block, a batch of more than ``limit`` tokens (padding included) keeps about as many activations
    for the backward pass as a batch of ``limit`` tokens (in token-layers; recomputed layers still keep their
    input, and one layer is rebuilt at a time in the backward pass): the bottom layers (of those that are trained,
    the last layer excepted) keep only their input and the backward pass recomputes the rest (activation
    checkpointing), as many as `layers_to_recompute` says; yields how many.

    The gradients are the same — the recomputation replays the same arithmetic with the random state
    restored (dropout masks included) and autocast as it was — at the cost of one more forward of those
    layers. Used by `CrossEncoderTrainer` (``--recompute_above_tokens``) so that the few longest batches of a
    run, several times the tokens of a typical one, do not set the peak memory of the whole training. The
    last layer is left alone (its outputs are needed for the first token only; see `first_token`); fixed
    layers keep nothing anyway. The checkpoint is bound at forward time, so the backward may run after the
    block has closed. Models without such layers are left as they are (yields 0; see `recomputable_layers`).
    """
    trained = recomputable_layers(model) if limit > 0 and tokens > limit else []
    layers = trained[: layers_to_recompute(tokens, limit, len(trained))]
    checkpoint = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    names = ("gradient_checkpointing", "_gradient_checkpointing_func")
    saved = [{name: vars(layer)[name] for name in names if name in vars(layer)} for layer in layers]
    for layer in layers:
        layer.gradient_checkpointing = True
        layer._gradient_checkpointing_func = checkpoint
    try:
        yield len(layers)
    finally:
        for layer, before in zip(layers, saved, strict=True):
            for name in names:  # back to exactly what the layer had (instance attributes or the class default)
                if name in before:
                    setattr(layer, name, before[name])
                else:
                    delattr(layer, name)
