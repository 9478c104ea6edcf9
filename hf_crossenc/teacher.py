"""Teachers for distillation: the bi-encoder (fine-tuned on the training pairs first, in a child process, when asked)
and a trained cross-encoder, and the training labels they give (`distill_labels`).

The target arithmetic is in `hf_crossenc.distillation`; the bi-encoder itself in `hf_crossenc.bi_encoder`.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import TeacherArguments
from .data import TEXT_A, TEXT_B
from .errors import ConfigError
from .inference import CrossEncoderPredictor
from .logs import setup_logging
from .metrics import correlation_metrics, roc_auc
from .modeling import resolve_model_path
from .training_args import CrossEncoderTrainingArguments

logger = logging.getLogger("hf_crossenc")

TEACHER_DIR = "teacher"  # OUTPUT_DIR/teacher: the fine-tuned bi-encoder teacher (--teacher_finetune_epochs), never published


def distill_labels(
    dataset: Any,
    teacher_args: TeacherArguments,
    max_length: int,
    task: str = "regression",
    silver_texts: dict[str, tuple[list[str], list[str]]] | None = None,
    training_args: CrossEncoderTrainingArguments | None = None,
) -> Any:
    """Mix calibrated bi-encoder similarities into the training labels.

    Similarity scores (regression): a least-squares line maps the cosine onto the 0–1 labels. 0/1
    labels (binary classification, pointwise reranking): Platt scaling maps it onto P(label = 1).
    """
    import datasets

    from .bi_encoder import BiEncoder
    from .distillation import calibrate, calibrate_logistic, mix_labels, silver_pairs, teacher_probabilities, teacher_targets

    gold = np.asarray(dataset["label"], dtype=np.float64)
    teacher_path = resolve_model_path(teacher_args.teacher, "--teacher")
    if (teacher_args.teacher_finetune_epochs or 0) > 0:
        teacher_path = finetuned_teacher(teacher_path, dataset, gold, teacher_args, max_length, training_args)
    teacher = BiEncoder(teacher_path, max_length=max_length, precision=teacher_args.teacher_precision, pooling=teacher_args.teacher_pooling)
    cosine = teacher.cosine(dataset[TEXT_A], dataset[TEXT_B])
    if task == "regression":
        slope, intercept = calibrate(cosine, gold)
        targets = teacher_targets(cosine, slope, intercept)
        agreement = f"Spearman {correlation_metrics(targets, gold)['spearman']:.4f}"
    else:
        if gold.min() == gold.max():
            raise ConfigError("--teacher needs training labels of both classes (0 and 1) to calibrate the teacher.")
        slope, intercept = calibrate_logistic(cosine, gold)
        targets = teacher_probabilities(cosine, slope, intercept)
        agreement = f"ROC AUC {roc_auc(targets, gold.astype(int)):.4f}"
    logger.info(
        "teacher %s on the training pairs: %s with the gold labels; calibration %.3f*cos%+.3f%s; weight %.2f",
        teacher_args.teacher,
        agreement,
        slope,
        intercept,
        "" if task == "regression" else " (logistic)",
        teacher_args.teacher_weight,
    )
    # Silver pairs are regression-only (checked by TeacherArguments.check): their teacher is the calibrated line.
    bi_targets = functools.partial(teacher_targets, slope=slope, intercept=intercept)

    def teacher_of(cos: np.ndarray, texts_a: list[str], texts_b: list[str]) -> np.ndarray:
        return bi_targets(cos)

    if teacher_args.cross_encoder_teacher:
        teacher_of = cross_encoder_teacher(teacher_args, bi_targets)
        targets = teacher_of(cosine, dataset[TEXT_A], dataset[TEXT_B])
        logger.info(
            "cross-encoder teacher %s (share %.2f): teacher Spearman %.4f with the gold labels",
            teacher_args.cross_encoder_teacher,
            teacher_args.cross_encoder_share,
            correlation_metrics(targets, gold)["spearman"],
        )
    mixed = mix_labels(gold, targets, teacher_args.teacher_weight).astype(np.float32)
    features = dataset.features
    # The texts stay where they are (a memory-mapped Arrow file for a large split); only the labels are new.
    dataset = dataset.select_columns([TEXT_A, TEXT_B]).add_column("label", mixed, feature=features["label"])
    if teacher_args.silver_pairs > 0:
        new_a, new_b, new_cos = silver_pairs(dataset[TEXT_A], dataset[TEXT_B], teacher, teacher_args.silver_pairs)
        silver = np.asarray(teacher_of(new_cos, new_a, new_b), dtype=np.float32)
        logger.info("added %d teacher-labelled pairs (mean target %.3f)", len(new_a), float(silver.mean()) if len(silver) else 0.0)
        extra = datasets.Dataset.from_dict({TEXT_A: new_a, TEXT_B: new_b, "label": silver.tolist()}, features=features)
        dataset = datasets.concatenate_datasets([dataset, extra])
    for path, (new_a, new_b) in (silver_texts or {}).items():
        silver = np.asarray(teacher_of(teacher.cosine(new_a, new_b), new_a, new_b), dtype=np.float32)
        logger.info("added %d teacher-labelled pairs from %s (mean target %.3f)", len(new_a), path, float(silver.mean()))
        extra = datasets.Dataset.from_dict({TEXT_A: new_a, TEXT_B: new_b, "label": silver.tolist()}, features=features)
        dataset = datasets.concatenate_datasets([dataset, extra])
    return dataset


def finetuned_teacher(
    base: str,
    dataset: Any,
    gold: np.ndarray,
    teacher_args: TeacherArguments,
    max_length: int,
    training_args: CrossEncoderTrainingArguments | None,
) -> str:
    """``--teacher_finetune_epochs``: the bi-encoder teacher fine-tuned on the training pairs, in OUTPUT_DIR/teacher (reused
    when a complete one made from the same base, data and settings is there, e.g. with --resume; replaced otherwise).
    It trains with the pooling it teaches with (``--teacher_pooling``, else the base's own), and keeps it in its folder."""
    import hashlib
    import multiprocessing
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    import torch
    from accelerate import PartialState

    from .bi_encoder import finetune_bi_encoder
    from .pooling import resolve_pooling

    if training_args is None:
        raise ValueError("--teacher_finetune_epochs needs the training arguments (where to save the fine-tuned teacher)")
    folder = Path(training_args.output_dir, TEACHER_DIR)
    digest = hashlib.sha256(json.dumps([list(dataset[TEXT_A]), list(dataset[TEXT_B]), gold.tolist()]).encode()).hexdigest()
    pooling = resolve_pooling(base, teacher_args.teacher_pooling)  # in this process: a bad pooling stops before the child
    made_from = {
        "teacher": teacher_args.teacher,  # as the user named it (the model card shows it)
        "base": base,
        "epochs": teacher_args.teacher_finetune_epochs,
        "seed": training_args.seed,
        "max_length": max_length,
        "freeze_embeddings": True,
        "pooling": pooling.mode,
        "data": digest,
    }
    record = folder / "finetune.json"
    state = PartialState()
    complete = (folder / "model.safetensors").is_file() and record.is_file() and json.loads(record.read_text()) == made_from
    state.wait_for_everyone()  # every process has looked before the main one writes
    if complete:
        logger.info("reusing the fine-tuned bi-encoder teacher in %s", folder)
    else:
        if state.is_main_process:
            if folder.exists():
                logger.info("replacing %s: it was fine-tuned from another base, data or settings", folder)
                shutil.rmtree(folder)
            logger.info(
                "fine-tuning the bi-encoder teacher %s for %s epoch(s) on %d training pairs",
                teacher_args.teacher,
                teacher_args.teacher_finetune_epochs,
                len(gold),
            )
            tmp = folder.with_name(folder.name + ".partial")
            if tmp.exists():
                shutil.rmtree(tmp)  # left by an interrupted fine-tune
            # A child process: its optimizer state and fragmented heap go back to the OS when it ends, so the
            # cross-encoder trains in a process as lean as without the fine-tune (peak RSS: docs/experiments.md, run FT3).
            spawn = multiprocessing.get_context("spawn")
            setup = (torch.get_num_threads(),)  # the child would read accelerate's OMP_NUM_THREADS=1: 2x slower
            with ProcessPoolExecutor(1, mp_context=spawn, initializer=_child_setup, initargs=setup) as child:
                child.submit(
                    finetune_bi_encoder,
                    base,
                    list(dataset[TEXT_A]),
                    list(dataset[TEXT_B]),
                    gold,
                    tmp,
                    epochs=teacher_args.teacher_finetune_epochs,
                    max_length=max_length,
                    seed=training_args.seed,
                    precision=teacher_args.teacher_precision,
                    freeze_embeddings=True,  # same dev Spearman (0.8933 vs 0.8934 after 1 epoch), 25% faster
                    pooling=pooling,
                ).result()
            (tmp / "finetune.json").write_text(json.dumps(made_from, indent=2) + "\n")
            tmp.rename(folder)  # complete or absent: an interrupted fine-tune is never reused
        state.wait_for_everyone()
    return str(folder)


def describe_teacher(teacher_args: TeacherArguments) -> tuple[str | None, float]:
    """The bi-encoder teacher as the model card names it, and the epochs it was fine-tuned on the training pairs (0 if
    not). A teacher fine-tuned by an earlier distillation round is a local folder: its ``finetune.json`` names the
    model it came from, so the card never shows a local path."""
    teacher, epochs = teacher_args.teacher, teacher_args.teacher_finetune_epochs
    record = Path(teacher or "", "finetune.json")
    if teacher and not epochs and record.is_file():
        made_from = json.loads(record.read_text())
        return made_from.get("teacher") or Path(teacher).name, made_from["epochs"]
    return teacher, epochs


def _child_setup(threads: int) -> None:
    """A teacher fine-tune's child process: the parent's CPU threads and log format."""
    import torch

    torch.set_num_threads(threads)
    setup_logging()


def cross_encoder_teacher(teacher_args: TeacherArguments, bi_encoder_targets: Any) -> Any:
    """Teacher targets of (cosine, texts_a, texts_b): w * cross-encoder score (both orders) + (1 - w) * calibrated cosine."""
    predictor = CrossEncoderPredictor.from_pretrained(teacher_args.cross_encoder_teacher, precision="auto", flag="--cross_encoder_teacher")
    if predictor.semantics.activation != "sigmoid" or predictor.semantics.task not in (None, "regression"):
        raise ConfigError(f"--cross_encoder_teacher {teacher_args.cross_encoder_teacher} must be a similarity (regression) model.")
    weight = teacher_args.cross_encoder_share

    def targets(cosine: np.ndarray, texts_a: list[str], texts_b: list[str]) -> np.ndarray:
        scores = predictor.predict(list(zip(texts_a, texts_b)), symmetric=True) if len(texts_a) else np.zeros(0)
        return weight * np.asarray(scores, dtype=np.float64) + (1.0 - weight) * bi_encoder_targets(cosine)

    return targets


def reranker_teacher(name_or_path: str) -> Any:
    """A trained one-score model (reranker or similarity model) whose logits teach listwise groups."""
    predictor = CrossEncoderPredictor.from_pretrained(name_or_path, precision="auto", flag="--cross_encoder_teacher")
    if predictor.model.config.num_labels != 1:
        raise ConfigError(f"--cross_encoder_teacher {name_or_path} must be a one-score model (a reranker), not a classifier.")
    return predictor


def listwise_teachers(
    teacher_args: TeacherArguments, pairs: Any, max_length: int, training_args: CrossEncoderTrainingArguments
) -> tuple[Any, Any]:
    """Listwise reranking: the bi-encoder whose softmax(cosine / temperature) teaches each group (fine-tuned first on
    every (query, passage, 0/1) training pair with ``--teacher_finetune_epochs``), and the trained reranker that joins
    it (``--cross_encoder_teacher``); None for each that is not asked for."""
    from .bi_encoder import BiEncoder

    if not teacher_args.active:
        return None, None
    teacher_path = resolve_model_path(teacher_args.teacher, "--teacher")
    if (teacher_args.teacher_finetune_epochs or 0) > 0:
        gold = np.asarray(pairs["label"], dtype=np.float64)
        teacher_path = finetuned_teacher(teacher_path, pairs, gold, teacher_args, max_length, training_args)
    teacher = BiEncoder(teacher_path, max_length=max_length, precision=teacher_args.teacher_precision, pooling=teacher_args.teacher_pooling)
    logger.info(
        "listwise targets: %.2f x one-hot + %.2f x softmax(teacher cosine / %g)",
        1 - teacher_args.teacher_weight,
        teacher_args.teacher_weight,
        teacher_args.teacher_temperature,
    )
    reranker = None
    if teacher_args.cross_encoder_teacher:
        reranker = reranker_teacher(teacher_args.cross_encoder_teacher)
        logger.info(
            "listwise teacher: %.2f x softmax(%s logits) + %.2f x softmax(cosine / %g)",
            teacher_args.cross_encoder_share,
            teacher_args.cross_encoder_teacher,
            1 - teacher_args.cross_encoder_share,
            teacher_args.teacher_temperature,
        )
    return teacher, reranker
