"""The training job as a Python function: `train(model_args, data_args, training_args, teacher_args)`.

Order of work: check the arguments, read and validate every split, and only then create the output directory, load the
model and train. Bad input therefore raises `UserInputError` (exit code 2 on the command line) and leaves nothing
behind. Distillation rounds and seed soups (`hf_crossenc.recipes`) call the single run, `train_once`, with
`dataclasses.replace`d arguments.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sized
from pathlib import Path
from typing import Any

import numpy as np
from transformers import set_seed

from . import __version__
from .arguments import DataArguments, ModelArguments, TeacherArguments
from .averaging import check_members
from .card_names import local_name
from .checkpoints import check_output_dir, clear_previous_run, latest_complete_checkpoint
from .data import TEXT_A, TEXT_B
from .data_collator import CrossEncoderDataCollator
from .errors import ConfigError
from .evaluation import split_metrics
from .fingerprint import check_resume, run_fingerprint
from .inference import CrossEncoderPredictor, resolve_precision
from .job_card import build_card, card_examples
from .memory import bound_kernel_caches, release_memory
from .metrics import best_threshold, metrics_for_task
from .model_files import check_training_models
from .modeling import (
    CONFIG_KEY,
    ScoreSemantics,
    freeze,
    load_model_for_training,
    load_tokenizer,
    record_score_semantics,
    resolve_model_path,
)
from .publish import check_push_to_hub
from .recipes import run_rounds, run_soup, soup_member_summary
from .results import CrossEncoderJobResult
from .streaming import check_streaming, load_streaming_task_data, output_entries, removed_on_data_error
from .task_data import TaskData, load_task_data
from .trainer import CrossEncoderTrainer
from .training_args import CrossEncoderTrainingArguments, configure_cpu_threads, split_list
from .training_data import build_train_dataset
from .validation import check_max_length, check_values

logger = logging.getLogger("hf_crossenc")


def train(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: CrossEncoderTrainingArguments,
    teacher_args: TeacherArguments | None = None,
) -> CrossEncoderJobResult:
    """Train, evaluate every split, save the model, its card and results.json; returns the results.

    The whole job: a single run, or the distillation rounds (``teacher_args.distill_rounds > 1``) or seed soup
    (``training_args.soup_seeds``) the arguments ask for. The arguments are checked (and their task-dependent defaults
    filled in place) before anything is read or written.
    """
    teacher_args = teacher_args if teacher_args is not None else TeacherArguments()
    # Before the first kernel of the process (teachers, rounds and soup members included) and any child process.
    bound_kernel_caches(training_args.cpu_kernel_cache)
    check_arguments(model_args, data_args, teacher_args, training_args)
    check_push_to_hub(training_args)  # --push_to_hub: token, not offline, repo id; before any data, model or training
    check_training_models(model_args, teacher_args, training_args)  # every model given, before anything is written
    if training_args.soup_seeds:
        return run_soup(model_args, data_args, teacher_args, training_args, train_once=train_once)
    if teacher_args.distill_rounds > 1:
        if training_args.average_with:
            raise ConfigError("--average_with applies to one training run; with --distill_rounds use --soup_seeds.")
        return run_rounds(model_args, data_args, teacher_args, training_args, train_once=train_once)
    return train_once(model_args, data_args, teacher_args, training_args)


def check_arguments(
    model_args: ModelArguments, data_args: DataArguments, teacher_args: TeacherArguments, training_args: CrossEncoderTrainingArguments
) -> None:
    """Every value against its allowed range (`hf_crossenc.validation`), then every group's checks for the task (each
    fills its task-dependent defaults)."""
    check_values(model_args, data_args, teacher_args, training_args)
    task = training_args.task
    data_args.check(task)
    teacher_args.check(task, training_args.loss)
    model_args.check(task)
    check_streaming(data_args, teacher_args, training_args)  # --streaming: --max_steps, and what a stream cannot serve


def train_once(
    model_args: ModelArguments,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    earlier_rounds: list[dict[str, Any]] | None = None,
) -> CrossEncoderJobResult:
    """One training run of checked arguments. `earlier_rounds` (from `run_rounds`, for the last round): their scores go
    into results.json as ``run.distill_rounds``, before the card is written and anything is pushed."""
    kernel_caches = bound_kernel_caches(training_args.cpu_kernel_cache)
    check_output_dir(training_args)  # writable, and empty unless --overwrite_output_dir or --resume
    fingerprint = run_fingerprint(model_args, data_args, teacher_args, training_args)  # as recipes compute it for reuse
    check_arguments(model_args, data_args, teacher_args, training_args)
    check_resume(training_args, fingerprint)  # --resume continues only a run of the same fingerprint
    data = read_data(data_args, teacher_args, training_args)
    choose_loss(data, training_args)
    threads = configure_cpu_threads(training_args.cpu_threads)
    set_seed(training_args.seed)
    model_path = resolve_model_path(model_args.model_name_or_path, "--model_name_or_path", model_args.trust_pickle_weights)
    check_max_length(model_path, model_args.max_length)  # the model's config only: before the weights load
    tokenizer = load_tokenizer(model_path)
    model, semantics = load_model(model_path, model_args, data, training_args)
    train_dataset, callbacks = training_examples(data, data_args, teacher_args, training_args, tokenizer, model_args.max_length)
    eval_dataset = data.splits["validation"].dataset if "validation" in data.splits else None
    if eval_dataset is None and training_args.eval_strategy != "no":
        raise ConfigError("no validation split: pass --validation_file (or --validation_split), or --eval_strategy no.")
    if training_args.overwrite_output_dir and not training_args.resume:  # all checked: the earlier run goes
        clear_overwritten(model_args, teacher_args, training_args)
    written_before = output_entries(training_args.output_dir)  # a bad streamed row removes what the run wrote after this
    collator = CrossEncoderDataCollator(
        tokenizer, max_length=model_args.max_length, pad_to_multiple_of=model_args.pad_to_multiple_of or None
    )
    card = build_card(model_args, data_args, teacher_args, training_args, data.splits, semantics)
    trainer = CrossEncoderTrainer(
        model_card=card,
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=metrics_for_task(data.task, data.vocab.num_labels if data.vocab else 1),
        callbacks=callbacks,
    )
    trainer.card_examples = card_examples(data)
    trainer.run_fingerprint = fingerprint
    if trainer.hub_model_id:
        card.model_id = trainer.hub_model_id  # full NAME/REPO as created by Trainer.init_hf_repo
    log_start(data, train_dataset, training_args, threads, trainer.accelerator.mixed_precision)
    train_output, train_seconds = fit(trainer, training_args, written_before)
    averaging = trainer.weight_average
    if averaging is not None and averaging.steps:
        card.best_step, card.averaged_steps = None, list(averaging.steps)
    soup_members = [soup_member_summary(folder) for folder in (averaging.member_folders if averaging is not None else [])] or None
    card.averaged_with = soup_members
    card.split_sizes["train"] = len(data.splits["train"])  # a stream's (--streaming) rows read, known only now
    save_and_release(trainer, training_args)

    # Final numbers come from the saved folder, scored exactly as users will score it (fp32,
    # CrossEncoderPredictor), so `hf-crossenc evaluate` reproduces results.json.
    metrics: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        metrics = evaluate_saved_model(training_args.output_dir, data, trainer)
    trainer.accelerator.wait_for_everyone()
    run = run_record(model_args, data_args, teacher_args, training_args, data, trainer, sized(train_dataset))
    run.update(
        cpu_threads_per_process=threads,
        cpu_kernel_caches=kernel_caches or None,  # --cpu_kernel_cache: the oneDNN / ideep capacities in effect
        train_runtime_s=round(train_seconds, 2),
        train_samples_per_second=round(train_output.metrics.get("train_samples_per_second", math.nan), 3),
        averaged_with=soup_members,
    )
    result = CrossEncoderJobResult(training_args.output_dir, metrics, {key: run[key] for key in RUN_KEYS if key in run})
    if earlier_rounds is not None:
        result.run["distill_rounds"] = [*earlier_rounds, {"round": len(earlier_rounds) + 1, **result.metrics}]
    write_results(trainer, card, result, train_seconds)
    return result


def read_data(data_args: DataArguments, teacher_args: TeacherArguments, training_args: CrossEncoderTrainingArguments) -> TaskData:
    """Every split read and validated; with --streaming the training split is a stream, checked row by row as read."""
    if data_args.streaming:
        return load_streaming_task_data(data_args, training_args.task, training_args.seed)
    return load_task_data(data_args, training_args.task, teacher_args.silver_file)


def training_examples(
    data: TaskData,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    tokenizer: Any,
    max_length: int,
) -> tuple[Any, list[Any]]:
    """The training dataset and its callbacks (`build_train_dataset`); --streaming: the stream's buffer-shuffled pairs."""
    if data_args.streaming:
        return data.splits["train"].dataset, []
    return build_train_dataset(data, data_args, teacher_args, training_args, tokenizer, max_length)


def clear_overwritten(model_args: ModelArguments, teacher_args: TeacherArguments, training_args: CrossEncoderTrainingArguments) -> None:
    """``--overwrite_output_dir``: remove the earlier run's files, keeping what this run reads (models given as folders
    inside it, the fine-tuned teacher when this run fine-tunes one)."""
    in_use = [
        model_args.model_name_or_path,
        teacher_args.teacher,
        teacher_args.cross_encoder_teacher,
        *split_list(training_args.average_with),
    ]
    clear_previous_run(training_args, in_use, keep_teacher=(teacher_args.teacher_finetune_epochs or 0) > 0)


def write_results(trainer: CrossEncoderTrainer, card: Any, result: CrossEncoderJobResult, train_seconds: float) -> None:
    """The final card and results.json on the main process, then the final push (which carries both)."""
    card.eval_metrics = dict(result.metrics)
    card.train_runtime_s = train_seconds
    card.threshold = (getattr(trainer.model.config, CONFIG_KEY, None) or {}).get("threshold")
    if trainer.is_world_process_zero():
        result.write()
        trainer.write_model_card(trainer.args.output_dir)
        logger.info("results: %s", json.dumps(result.metrics))
    if trainer.args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training: best model and evaluation results")


def choose_loss(data: TaskData, training_args: CrossEncoderTrainingArguments) -> None:
    """Classification: the loss the labels need (bce for two classes 0/1, ce for more); a given one must fit."""
    vocab = data.vocab
    if data.task != "classification" or vocab is None:
        return
    expected = "bce" if vocab.binary else "ce"
    if training_args.loss is None:
        training_args.loss = expected
    elif training_args.loss != expected:
        kind = "two classes 0/1 (one sigmoid logit)" if vocab.binary else f"{len(vocab.names)} classes (softmax)"
        raise ConfigError(f"--loss {training_args.loss} does not fit the labels: {kind} train with --loss {expected}.")


def load_model(
    model_path: str, model_args: ModelArguments, data: TaskData, training_args: CrossEncoderTrainingArguments
) -> tuple[Any, ScoreSemantics]:
    """The model to train (frozen parts fixed, soup members checked against it) and the score semantics it records."""
    vocab = data.vocab
    model = load_model_for_training(
        model_path,
        num_labels=vocab.num_labels if vocab else 1,
        id2label=vocab.id2label() if vocab else None,
        dropout=model_args.dropout,
        trust_pickle_weights=model_args.trust_pickle_weights,
    )
    freeze(model, embeddings=model_args.freeze_embeddings, layers=model_args.freeze_layers)
    check_members(split_list(training_args.average_with), model)  # before anything is written
    semantics = ScoreSemantics(
        task=data.task,
        activation="softmax" if vocab and not vocab.binary else "sigmoid",
        label_scale=data.scale.as_list(),
        loss=training_args.loss,
        max_length=model_args.max_length,
        version=__version__,
        label_names=list(vocab.names) if vocab else None,
        symmetric=model_args.score_both_orders,
    )
    record_score_semantics(model.config, semantics)
    return model, semantics


def sized(dataset: Any) -> int | None:
    """The examples of a training epoch; None for a stream (--streaming), whose length is unknown."""
    return len(dataset) if isinstance(dataset, Sized) else None


def log_start(data: TaskData, train_dataset: Any, training_args: CrossEncoderTrainingArguments, threads: int, precision: str) -> None:
    world = training_args.world_size
    unit = f"groups of {training_args.train_group_size} passages" if training_args.loss == "listwise" else "examples"
    size = sized(train_dataset)
    logger.info(
        "%s: training on %s (%s %s per epoch) | %d process(es) x %d CPU thread(s) | global batch %d | loss %s | mixed precision %s",
        data.task,
        "a stream of pairs" if size is None else f"{len(data.splits['train'])} pairs",
        "?" if size is None else size,
        unit,
        world,
        threads,
        training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world,
        training_args.loss,
        precision,
    )


def fit(trainer: CrossEncoderTrainer, training_args: CrossEncoderTrainingArguments, written_before: set[str] | None) -> tuple[Any, float]:
    """Train (from the newest complete checkpoint with --resume); the Trainer's output and the seconds it took. A bad
    row met while training (a --streaming `DataError`) removes what the run wrote since `written_before` and goes on."""
    started = time.perf_counter()
    resume_from = training_args.resume_from_checkpoint
    if training_args.resume and resume_from is None:
        resume_from = str(latest_complete_checkpoint(training_args.output_dir, training_args.average_checkpoints))
        logger.info("resuming from %s", resume_from)
    with removed_on_data_error(training_args.output_dir, written_before, trainer.is_world_process_zero()):
        output = trainer.train(resume_from_checkpoint=resume_from)
    return output, time.perf_counter() - started


def save_and_release(trainer: CrossEncoderTrainer, training_args: CrossEncoderTrainingArguments) -> None:
    """Save the final model (no push yet: the final push carries results.json and the final card), then free the
    optimizer's moments and the gradients before the saved model is loaded a second time to be scored."""
    trainer.save_model(training_args.output_dir, _internal_call=True)
    if trainer.optimizer is not None:
        trainer.optimizer.state.clear()
    trainer.model.zero_grad(set_to_none=True)
    release_memory()


def evaluate_saved_model(folder: str, data: TaskData, trainer: CrossEncoderTrainer) -> dict[str, Any]:
    """The task's metrics of the saved model on every labelled non-train split.

    Binary classifiers first get their decision threshold: the accuracy-maximising cut on the
    validation split's scores (0.5 without one), written into the saved config.json, so every
    loader classifies the same way. (Validation accuracy at that cut is optimistic by construction;
    the test split is the honest number.)
    """
    predictor = CrossEncoderPredictor.from_pretrained(folder)
    batch_size = trainer.args.per_device_eval_batch_size
    scored: dict[str, np.ndarray] = {}
    for name, split in data.splits.items():
        if name == "train" or "label" not in split.dataset.column_names:
            continue
        scored[name] = predictor.predict(list(zip(split.dataset[TEXT_A], split.dataset[TEXT_B])), batch_size=batch_size)
    threshold = None
    if data.vocab is not None and data.vocab.binary:
        threshold = 0.5
        if "validation" in scored:
            threshold = best_threshold(scored["validation"], data.splits["validation"].dataset["label"])
        record_threshold(folder, threshold)
        semantics = dict(trainer.model.config.hf_crossenc)
        trainer.model.config.hf_crossenc = {**semantics, "threshold": threshold}
        logger.info(
            "decision threshold %.4f (chosen on %s), saved in config.json", threshold, "validation" if "validation" in scored else "-"
        )
    results: dict[str, Any] = {}
    for name, scores in scored.items():
        split = data.splits[name]
        labels = np.asarray(split.dataset["label"], dtype=np.float64)
        trainer.eval_predictions[name] = (scores, labels)
        results[name] = split_metrics(data.task, scores, split, threshold, resamples=trainer.args.bootstrap_resamples)
        logger.info("%s: %s", name, results[name])
    return results


def record_threshold(folder: str, threshold: float) -> None:
    """Write the decision threshold into the saved config.json (under hf_crossenc)."""
    path = Path(folder, "config.json")
    config = json.loads(path.read_text())
    config.setdefault(CONFIG_KEY, {})["threshold"] = threshold
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


RUN_KEYS = (
    "task", "loss", "base_model", "train_pairs", "train_examples_per_epoch", "train_group_size", "label_names", "binary",
    "train_pair_order", "teacher", "teacher_precision", "teacher_weight", "teacher_finetune_epochs", "silver_pairs",
    "silver_file", "cross_encoder_teacher", "cross_encoder_share", "epochs", "freeze_embeddings", "freeze_layers",
    "recompute_above_tokens", "recomputed_batches", "heap_trims", "global_steps", "world_size", "cpu_threads_per_process",
    "cpu_kernel_caches", "global_batch_size", "train_runtime_s", "train_samples_per_second", "best_model_checkpoint",
    "averaged_steps", "averaged_with", "metric_for_best_model", "collapsed_evaluations", "label_scale", "hf_crossenc_version",
)  # fmt: skip
"""The keys of results.json's "run" record, in the order it lists them."""


def run_record(
    model_args: ModelArguments,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    data: TaskData,
    trainer: CrossEncoderTrainer,
    examples_per_epoch: int | None,
) -> dict[str, Any]:
    """How the model was trained, for results.json (the keys of `RUN_KEYS` known once training is over). results.json is
    published with the model: local paths (base model, teachers, silver files, checkpoint) are named by their last
    part (`hf_crossenc.card_names.local_name`); Hub ids and ``bundled:...`` stay as given."""
    vocab, averaging, world = data.vocab, trainer.weight_average, training_args.world_size
    teacher = teacher_args.active
    return {
        "task": data.task,
        "loss": training_args.loss,
        "base_model": local_name(model_args.model_name_or_path),
        "train_pairs": len(data.splits["train"]),
        "train_examples_per_epoch": examples_per_epoch,
        **({"train_group_size": training_args.train_group_size} if training_args.loss == "listwise" else {}),
        **({"label_names": list(vocab.names), "binary": vocab.binary} if vocab else {}),
        "train_pair_order": data_args.train_pair_order,
        "teacher": local_name(teacher_args.teacher) if teacher else None,
        "teacher_precision": resolve_precision(teacher_args.teacher_precision, use_cpu=True) if teacher else None,
        "teacher_weight": teacher_args.teacher_weight,
        "teacher_finetune_epochs": teacher_args.teacher_finetune_epochs,
        "silver_pairs": teacher_args.silver_pairs,
        "silver_file": local_name(teacher_args.silver_file),
        "cross_encoder_teacher": local_name(teacher_args.cross_encoder_teacher),
        "cross_encoder_share": teacher_args.cross_encoder_share if teacher_args.cross_encoder_teacher else None,
        "epochs": training_args.num_train_epochs,
        "freeze_embeddings": model_args.freeze_embeddings,
        "freeze_layers": model_args.freeze_layers,
        "recompute_above_tokens": training_args.recompute_above_tokens,
        # training batches of this process (since its start, if resumed) that recomputed activations
        "recomputed_batches": trainer.recomputed_batches,
        "heap_trims": trainer.heap_trim.trims if trainer.heap_trim is not None else None,  # --torch_empty_cache_steps on CPU
        "global_steps": trainer.state.global_step,
        "world_size": world,
        "global_batch_size": training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world,
        "best_model_checkpoint": None if averaging is not None and averaging.steps else local_name(trainer.state.best_model_checkpoint),
        "averaged_steps": list(averaging.steps) if averaging is not None and averaging.epochs else None,
        "metric_for_best_model": training_args.metric_for_best_model,
        "collapsed_evaluations": trainer.collapsed_evaluations,
        "label_scale": data.scale.as_list(),
        "hf_crossenc_version": __version__,
    }
