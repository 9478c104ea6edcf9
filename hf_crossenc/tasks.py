"""The task vocabulary, defined once: tasks, their losses and default metrics, and the files of a saved model."""

from __future__ import annotations

TASKS = ("regression", "classification", "reranking")
LOSSES = ("bce", "mse", "ce", "listwise")
TASK_LOSSES = {"regression": ("bce", "mse"), "classification": ("bce", "ce"), "reranking": ("bce", "listwise")}
DEFAULT_LOSS = {"regression": "bce", "reranking": "listwise"}  # classification: bce (binary) or ce, from the labels
DEFAULT_METRIC = {"regression": "spearman", "classification": "accuracy", "reranking": "map"}
"""The validation metric that picks the best checkpoint (and the card's headline metric) when none is given."""

KIND = {"regression": "cross-encoder", "classification": "pair classifier", "reranking": "reranker"}
"""How a model card names a model of each task."""

WEIGHT_FILES = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json")
"""Glob patterns of a saved model's weights."""

MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "README.md",
    "training_curve.png",
    "eval_scatter.png",
    "eval_scores.png",
    "training_args.json",
)
"""The publishable files of a saved model folder (sharded weights `model-*.safetensors` besides)."""

FINGERPRINT_FILE = "run_fingerprint.json"
"""What produced a checkpoint or model folder (hf_crossenc.fingerprint): resuming checks it."""
