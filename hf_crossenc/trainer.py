"""`CrossEncoderTrainer`: a `transformers.Trainer` whose loss, saving and metrics fit cross-encoders."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from .training_args import CrossEncoderTrainingArguments

logger = logging.getLogger(__name__)


def pointwise_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss of one logit per pair against 0–1 targets ('bce' on logits or 'mse' on sigmoid)."""
    logits = logits.float().reshape(-1)
    labels = labels.float().reshape(-1)
    if loss == "bce":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)
    if loss == "mse":
        return nn.functional.mse_loss(torch.sigmoid(logits), labels)
    raise ValueError(f"unknown loss {loss!r}")


class CrossEncoderTrainer(Trainer):
    """Trainer for cross-encoders.

    Overrides only what differs from `transformers.Trainer`:

    * `compute_loss` — the task's loss on the logits (BCE-with-logits or MSE for 0–1 targets), as a
      per-batch mean that the Trainer scales for gradient accumulation;
    * `_save` — safetensors weights, config, tokenizer and a JSON dump of the (token-free) training
      arguments; never a pickle file.
    """

    args: CrossEncoderTrainingArguments

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Our loss is a per-batch mean: let Trainer divide it by the accumulation steps.
        self.loss_is_scaled_for_ga = False

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = pointwise_loss(outputs.logits, labels, self.args.loss)
        return (loss, outputs) if return_outputs else loss

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        logger.info("Saving model checkpoint to %s", output_dir)
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        model.save_pretrained(output_dir, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        # TrainingArguments.to_dict() already replaces every *_token value by a placeholder.
        Path(output_dir, "training_args.json").write_text(json.dumps(self.args.to_dict(), indent=2, default=str) + "\n")
