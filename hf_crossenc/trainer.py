"""`CrossEncoderTrainer`: a `transformers.Trainer` whose loss, saving and metrics fit cross-encoders."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import DistributedType
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import HubStrategy, get_last_checkpoint

from .averaging import WeightAverageCallback, load_members
from .card_names import local_name
from .compat import gradient_checkpointing_layer
from .data import TEXT_A, TEXT_B
from .data_collator import LENGTH_GROUPED, add_lengths
from .fingerprint import write_fingerprint
from .first_token import first_token_only
from .length_sampler import arrow_length_sampler
from .losses import cross_encoder_loss
from .memory import HeapTrimCallback
from .metrics import is_collapsed, scores_from_logits
from .model_card import CrossEncoderModelCardCallback, CrossEncoderModelCardData, write_card
from .modeling import config_as_loaded, recomputable_layers, recompute_layers
from .tasks import MODEL_FILES
from .training_args import CrossEncoderTrainingArguments, split_list

logger = logging.getLogger(__name__)


STATE_FILES = ("trainer_state.json",)


def stage_model_files(source: Path, target: Path, with_state: bool = False) -> None:
    """Link (or copy) the publishable files of a saved folder into `target`: weights, config, tokenizer, card."""
    target.mkdir(parents=True, exist_ok=True)
    names = set(MODEL_FILES) | (set(STATE_FILES) if with_state else set())
    names |= {p.name for p in source.glob("model-*.safetensors")}
    for name in sorted(names):
        src = source / name
        if src.is_file():
            try:
                os.link(src, target / name)
            except OSError:
                shutil.copy2(src, target / name)


def score_examples(examples: list[dict[str, Any]], logits: np.ndarray, config: Any) -> list[dict[str, Any]]:
    """The card's example pairs with this model's scores (and predicted class names for classifiers)."""
    semantics = getattr(config, "hf_crossenc", None) or {}
    task = semantics.get("task", "regression")
    if logits.shape[-1] > 1:
        probs = scores_from_logits(logits, "softmax")
        names = [config.id2label[i] for i in range(probs.shape[1])]
        return [{**ex, "score": float(p.max()), "predicted": names[int(p.argmax())]} for ex, p in zip(examples, probs)]
    scores = scores_from_logits(logits, "sigmoid")
    out = [{**ex, "score": float(score)} for ex, score in zip(examples, scores)]
    if task == "classification":
        threshold = semantics.get("threshold") if semantics.get("threshold") is not None else 0.5
        negative, positive = semantics.get("label_names") or ["0", "1"]
        out = [{**ex, "predicted": positive if ex["score"] >= threshold else negative} for ex in out]
    if task == "reranking":
        out.sort(key=lambda ex: -ex["score"])
    return out


def clip_grad_norm_cpu(parameters: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` for CPU gradients, without the multiply by 1 when nothing is clipped.

    torch always multiplies every gradient by ``min(1, max_norm / (norm + 1e-6))`` so that no GPU has to
    sync to decide; on CPU the check is free, and fine-tuning steps rarely reach the norm (the default
    STS-B job never did at its logged steps), so most steps skip a read and write of every gradient
    (90 MB for MiniLM-L6). Returns the total norm; the gradients are the same as torch's, bit for bit, whenever
    the norm is finite (a NaN/inf norm leaves them as they are, where torch would make every gradient NaN).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, 2.0)
    if bool(max_norm / (total + 1e-6) < 1.0):  # torch's coefficient, computed the same way
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, total)
    return total


PATH_ARGUMENTS = ("output_dir", "logging_dir", "run_name", "resume_from_checkpoint", "average_with")
"""Training arguments that may hold local paths: training_args.json (uploaded with the model) names them by their last part."""


def public_arguments(args: Any) -> dict[str, Any]:
    """The training arguments as training_args.json records them: `TrainingArguments.to_dict()` (every *_token value
    already a placeholder), local paths reduced to their file or folder name."""
    values = args.to_dict()
    for key in PATH_ARGUMENTS:
        if isinstance(values.get(key), str):
            values[key] = local_name(values[key])
    return values


class CrossEncoderTrainer(Trainer):
    """Trainer for cross-encoders.

    Overrides only what differs from `transformers.Trainer`:

    * `compute_loss` — the task's loss on the logits (`cross_encoder_loss`: BCE or MSE for 0–1
      targets, cross-entropy for classes, listwise softmax cross-entropy for reranking groups), as a
      per-batch mean that the Trainer scales for gradient accumulation (and DDP averages); the forward runs
      the last layer for the first token only (`first_token_only`) and, for batches of more than
      ``recompute_above_tokens`` tokens, recomputes bottom layers' activations in the backward pass
      (`recompute_layers`; same gradients, bounded memory);
    * `_save` — safetensors weights, config, tokenizer, a JSON dump of the (token-free) training
      arguments and, on the main process, the model card (README.md + plots); never a pickle file;
    * `_push_from_checkpoint` / `push_to_hub` — Hub pushes through `hf_crossenc.publish` (one
      commit, retries, no pickles) instead of Trainer's upload of the whole output directory;
    * `__init__` — on CPU (``--fast_dropout``, the default there), swaps the model's dropout for
      `hf_crossenc.fast_dropout.FastDropout` and its SDPA attention for `hf_crossenc.cpu_attention`'s (same
      distribution, cheaper masks; weights untouched), and adds the token-length column a dataset lacks when batches
      are grouped by length;
    * `evaluate` — only to remember which split is being scored (for the card's plots). Every
      evaluation also checks for collapse: near-constant scores are logged as a loud warning;
    * `_clip_grad_norm` — on CPU, gradients are multiplied only when the norm exceeds
      ``max_grad_norm`` (same result; see `clip_grad_norm_cpu`).
    * ``--torch_empty_cache_steps`` on CPU (which transformers leaves alone there) trims glibc's heap every N
      steps (`hf_crossenc.memory.HeapTrimCallback`), so freed activations do not stay resident;
    * `train` — only to tell the averaging callback (``average_checkpoints``) which checkpoint a
      resumed run starts from, since its running sum lives there.

    Pass ``model_card=CrossEncoderModelCardData(...)`` to get a card in every saved folder; a
    `CrossEncoderModelCardCallback` keeps it up to date during training.
    """

    args: CrossEncoderTrainingArguments
    run_fingerprint: dict[str, Any] | None = None
    """Set by the job (`hf_crossenc.fingerprint.run_fingerprint`): written into every checkpoint and the saved model."""

    def __init__(self, *args: Any, model_card: CrossEncoderModelCardData | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_missing_lengths()
        if getattr(self.args, "fast_dropout", False) and self.model is not None and self.args.device.type == "cpu":
            from .cpu_attention import use_cpu_attention
            from .fast_dropout import use_fast_dropout

            use_fast_dropout(self.model)
            use_cpu_attention(self.model)
        # Our loss is a per-batch mean: let Trainer divide it by the accumulation steps.
        self.loss_is_scaled_for_ga = False
        self.model_card = model_card
        self.card_examples: list[dict[str, Any]] = []
        self.eval_predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._metric_prefix = "eval"
        self.collapsed_evaluations: list[int] = []
        self.recomputed_batches = 0  # training batches that recomputed their activations (recompute_above_tokens)
        # --torch_empty_cache_steps on CPU: trim glibc's heap, whose freed activations otherwise stay resident.
        self.heap_trim: HeapTrimCallback | None = None
        if self.args.torch_empty_cache_steps and self.args.device.type == "cpu":
            self.heap_trim = HeapTrimCallback(self.args.torch_empty_cache_steps)
            self.add_callback(self.heap_trim)
        recompute = getattr(self.args, "recompute_above_tokens", 0) and self.model is not None
        # Without transformers' GradientCheckpointingLayer, hf_crossenc.compat has already said that recompute is off.
        if recompute and gradient_checkpointing_layer() is not None and not recomputable_layers(self.model):
            logger.warning(
                "--recompute_above_tokens: %s has no trained transformers GradientCheckpointingLayer below its last layer "
                "(or checkpoints every batch already): every batch keeps its activations",
                type(self.model).__name__,
            )
        if model_card is not None:
            self.add_callback(CrossEncoderModelCardCallback(model_card, model_card.extra_hyperparameters))
        # --average_checkpoints / --average_with: the members are checked against the model now, before training.
        self.weight_average: WeightAverageCallback | None = None
        folders = split_list(getattr(self.args, "average_with", None))
        if getattr(self.args, "average_checkpoints", False) or folders:
            self.weight_average = WeightAverageCallback(
                epochs=self.args.average_checkpoints, members=load_members(folders, self.model), member_names=folders
            )
            self.add_callback(self.weight_average)
        if self.compute_metrics is not None:
            self.compute_metrics = self._keep_predictions(self.compute_metrics)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """Trainer's sampler; length-grouped ones read the length column once, as numpy (`hf_crossenc.length_sampler`)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return arrow_length_sampler(super()._get_train_sampler(train_dataset), dataset, self.args.length_column_name)

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        return arrow_length_sampler(super()._get_eval_sampler(eval_dataset), eval_dataset, self.args.length_column_name)

    def _add_missing_lengths(self) -> None:
        """Length-grouped sampling (the default) reads each example's token length: add the column to a train or eval
        `datasets.Dataset` of text pairs that lacks it (the training job computes it itself, before any transform)."""
        column = self.args.length_column_name
        if self.processing_class is None or getattr(self.args, "train_sampling_strategy", None) not in LENGTH_GROUPED:
            return
        max_length = getattr(self.data_collator, "max_length", None)

        def completed(dataset: Any) -> Any:
            names = getattr(dataset, "column_names", None)
            if isinstance(names, list) and TEXT_A in names and TEXT_B in names and column not in names:
                return add_lengths(dataset, self.processing_class, max_length, column)
            return dataset

        self.train_dataset = completed(self.train_dataset)
        if isinstance(self.eval_dataset, dict):
            self.eval_dataset = {name: completed(dataset) for name, dataset in self.eval_dataset.items()}
        else:
            self.eval_dataset = completed(self.eval_dataset)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        if self.weight_average is not None:  # the running sum of a resumed run lives in the checkpoint resumed from
            if resume_from_checkpoint is True:
                self.weight_average.resume_from = get_last_checkpoint(self.args.output_dir)
            else:
                self.weight_average.resume_from = str(resume_from_checkpoint) if resume_from_checkpoint else None
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _keep_predictions(self, compute_metrics: Any) -> Any:
        """Remember the last scores and labels of each evaluated split (for the card's scatter plot)."""

        def wrapped(eval_pred: Any) -> dict[str, float]:
            logits = np.asarray(eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions)
            labels = np.asarray(eval_pred.label_ids)
            if labels.ndim == 2 and labels.shape[1] == 2 and self.args.task == "reranking":
                labels = labels[:, 0]
            activation = "softmax" if logits.ndim == 2 and logits.shape[1] > 1 else "sigmoid"
            scores = scores_from_logits(logits, activation)
            self.eval_predictions[self._metric_prefix] = (scores, labels)
            if is_collapsed(scores):
                self.collapsed_evaluations.append(self.state.global_step)
                logger.warning(
                    "\n%s\nCOLLAPSE: at step %d all %d %s scores are (nearly) identical (spread %.2e): the model no longer "
                    "tells pairs apart. Lower --learning_rate, add --warmup_steps, check the labels, or resume from an earlier "
                    "checkpoint.\n%s",
                    "!" * 100,
                    self.state.global_step,
                    len(scores),
                    self._metric_prefix,
                    float(np.ptp(scores.reshape(len(scores), -1), axis=0).max()),
                    "!" * 100,
                )
            return compute_metrics(eval_pred)

        return wrapped

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> dict[str, float]:
        self._metric_prefix = metric_key_prefix
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        labels = inputs.pop("labels")
        # The head reads the first token only: the last layer skips the other positions (same loss).
        # Not under torch.compile, which would trace the swapped forward as a graph change.
        unwrapped = self.accelerator.unwrap_model(model, keep_torch_compile=False)
        # The longest batches recompute some layers' activations in the backward pass (same gradients).
        with (
            first_token_only(unwrapped, enabled=not self.args.torch_compile),
            recompute_layers(unwrapped, *self._recompute_limit(model, inputs)) as recomputed,
        ):
            outputs = model(**inputs)
        self.recomputed_batches += bool(recomputed)
        loss = cross_encoder_loss(outputs.logits, labels, self.args.loss)
        return (loss, outputs) if return_outputs else loss

    def _recompute_limit(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[int, int]:
        """(tokens of this batch, ``recompute_above_tokens``) for `recompute_layers`; limit 0 outside training."""
        limit = getattr(self.args, "recompute_above_tokens", 0)
        ids = inputs.get("input_ids")
        if not (model.training and torch.is_grad_enabled() and ids is not None) or self.args.torch_compile:
            return 0, 0
        return ids.numel(), limit

    def _clip_grad_norm(self, model: nn.Module) -> torch.Tensor:
        parameters = [p for p in model.parameters() if p.grad is not None]
        plain = self.accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU)
        if not (plain and parameters and self.accelerator.scaler is None and all(p.grad.device.type == "cpu" for p in parameters)):
            return super()._clip_grad_norm(model)
        return clip_grad_norm_cpu(parameters, self.args.max_grad_norm)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        logger.info("Saving model checkpoint to %s", output_dir)
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        with config_as_loaded(model):  # a --dropout override is not saved as the model's dropout
            model.save_pretrained(output_dir, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        Path(output_dir, "training_args.json").write_text(json.dumps(public_arguments(self.args), indent=2, default=str) + "\n")
        if self.run_fingerprint is not None:
            write_fingerprint(output_dir, self.run_fingerprint)
        if self.model_card is not None:
            self.write_model_card(output_dir)

    # ---- Hub pushes: our publish path (safetensors + card, never pickles) instead of Trainer's ----

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """Push the checkpoint's weights and card as the repo's current state (per `hub_strategy`)."""
        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        step = Path(checkpoint_folder).name.split("-")[-1]
        with tempfile.TemporaryDirectory(prefix="hf_crossenc_push_") as staging:
            stage_model_files(Path(checkpoint_folder), Path(staging))
            if self.args.hub_strategy in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
                sub = "last-checkpoint" if self.args.hub_strategy == HubStrategy.CHECKPOINT else f"checkpoints/checkpoint-{step}"
                stage_model_files(Path(checkpoint_folder), Path(staging, sub), with_state=True)
            self._publish(staging, f"Training in progress, step {step}")

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True, **kwargs: Any) -> Any:
        """Publish the output directory (final model, card, results.json) as one commit; main process only."""
        if not self.is_world_process_zero():
            return None
        return self._publish(self.args.output_dir, commit_message or "End of training")

    def _publish(self, folder: str, message: str) -> Any:
        from .publish import publish_folder

        result = publish_folder(
            folder,
            self.hub_model_id,
            private=bool(self.args.hub_private_repo),
            revision=self.args.hub_revision,
            commit_message=message,
            token=self.args.hub_token,
        )
        logger.info("pushed to %s (%s)", result.repo_url, "new commit" if result.changed else "no changes")
        return result

    def _card_model(self, output_dir: str) -> nn.Module | None:
        """The model that scores the card's examples. Under FSDP or DeepSpeed the parameters are sharded across the ranks
        and only the main process writes the card: a forward there alone would wait forever for the other ranks'
        all-gathers, so the full copy just saved to `output_dir` scores them, on CPU (None: no weights saved there)."""
        if not (self.is_fsdp_enabled or self.is_deepspeed_enabled):
            return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if not any(Path(output_dir, name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
            return None
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(output_dir, device_map="cpu")

    def write_model_card(self, output_dir: str) -> None:
        """Score the card's example pairs with the current model and render README.md + plots (main process)."""
        if not self.args.should_save or self.model_card is None:
            return
        model = self._card_model(output_dir) if self.card_examples else None
        if model is not None:
            was_training = model.training
            model.eval()
            pairs = [(ex["text_a"], ex["text_b"]) for ex in self.card_examples]
            enc = self.processing_class(
                [a for a, _ in pairs],
                [b for _, b in pairs],
                padding=True,
                truncation=True,
                max_length=self.data_collator.max_length,
                return_tensors="pt",
            ).to(model.device)
            with torch.inference_mode(), first_token_only(model):
                logits = model(**enc).logits.float().cpu().numpy()
            model.train(was_training)
            self.model_card.examples = score_examples(self.card_examples, logits, model.config)
        preds = self.eval_predictions.get("validation") or self.eval_predictions.get("eval")
        write_card(self.model_card, output_dir, *(preds or (None, None)))
