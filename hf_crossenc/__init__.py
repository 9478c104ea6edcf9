"""hf_crossenc: fine-tune cross-encoders with the Hugging Face Trainer and publish them to the Hub.

The public classes are imported lazily, so `hf-crossenc --help` or `publish` do not pay for
importing torch until they need it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "job",
    "CrossEncoderJobResult": "results",
    "ModelArguments": "arguments",
    "DataArguments": "arguments",
    "TeacherArguments": "arguments",
    "parse_job_arguments": "config",
    "CrossEncoderDataCollator": "data_collator",
    "CrossEncoderModelCardData": "model_card",
    "CrossEncoderModelCardCallback": "model_card",
    "CrossEncoderPredictor": "inference",
    "CrossEncoderTrainer": "trainer",
    "CrossEncoderTrainingArguments": "training_args",
    "publish_folder": "publish",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'hf_crossenc' has no attribute {name!r}")
