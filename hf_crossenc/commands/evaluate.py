"""`hf-crossenc evaluate`: score a labelled file with a trained model and print the metrics of its task."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from .common import add_both_orders_flag, add_column_flags, load_predictor, non_negative_int, positive_int, probability


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a labelled file with a trained model and print the metrics of its task "
        "(Pearson/Spearman, accuracy/F1/AUC, or MAP/MRR@10/NDCG@10 by query)",
    )
    parser.add_argument("model", help="trained model folder or Hub id")
    parser.add_argument("data", help="labelled pairs (.csv/.tsv/.json/.jsonl/.parquet)")
    add_column_flags(parser, precision="fp32")
    parser.add_argument("--label_column", default=None, help="label column (default: auto-detect)")
    parser.add_argument("--label_scale", default=None, help="raw label range, e.g. '0,5' (default: the scale the model was trained with)")
    parser.add_argument("--batch_size", type=positive_int, default=64, help="pairs per batch (default: 64)")
    add_both_orders_flag(parser)
    parser.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="resamples for the confidence intervals of every metric (pairs resampled, or queries for a reranker; "
        "the model and threshold held fixed); 0 leaves them out (default: 1000)",
    )
    parser.add_argument("--level", type=probability, default=0.95, help="confidence level of the intervals (default: 0.95)")
    parser.add_argument(
        "--compare",
        default=None,
        metavar="OTHER_MODEL",
        help="also score the file with another trained model of the same task and report the paired difference of "
        "every metric (this model minus the other) with its bootstrap interval, both models on the same resampled "
        "pairs or queries: an interval containing 0 means this data does not tell them apart",
    )
    parser.add_argument(
        "--compare_bi_encoder",
        nargs="?",
        const="bundled:all-MiniLM-L6-v2",
        default=None,
        metavar="BI_ENCODER",
        help="also score the file with a bi-encoder (cosine of its embeddings, pooled as its sentence-transformers files "
        "say, else mean-pooled; default: the bundled all-MiniLM-L6-v2, zero-shot) and report the paired difference of the metrics that need no threshold "
        "(correlations, ROC AUC / average precision, ranking metrics): does the cross-encoder beat it?",
    )
    parser.add_argument("--output", default=None, help="also write the metrics to this JSON file")
    return parser


def _check_flags(args: argparse.Namespace) -> None:
    if args.bootstrap < 0:
        raise UserInputError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {args.bootstrap}.")
    if not 0 < args.level < 1:
        raise UserInputError(f"--level must be between 0 and 1 (exclusive), got {args.level}.")
    for flag, value in (("--compare", args.compare), ("--compare_bi_encoder", args.compare_bi_encoder)):
        if value is not None and args.bootstrap == 0:
            raise UserInputError(f"{flag} needs resamples: drop --bootstrap 0 (or give a positive number).")


def run(args: argparse.Namespace) -> int:
    from ..comparison import check_comparable, compare_bi_encoder, compare_models
    from ..data import read_table
    from ..evaluation import labelled_split, split_metrics
    from ..model_files import check_model_source

    _check_flags(args)
    table = read_table(args.data)  # validate the input before loading the model
    for flag, other_model in (("--compare", args.compare), ("--compare_bi_encoder", args.compare_bi_encoder)):
        if other_model is not None:  # every model given is checked before any is loaded or anything scored
            check_model_source(other_model, flag, args.trust_pickle_weights and flag == "--compare")
    predictor = load_predictor(args)
    task = predictor.semantics.task
    # Comparisons that cannot be made are refused before anything is scored.
    other = None
    if args.compare is not None:
        other = load_predictor(args, model=args.compare, flag="--compare")
        check_comparable(predictor, other, args.model, args.compare)
    if args.compare_bi_encoder is not None and predictor.semantics.activation == "softmax":
        raise UserInputError(f"--compare_bi_encoder: {args.model} is a multi-class classifier; a cosine scores one class only.")
    split, threshold = labelled_split(
        table,
        predictor,
        text_a_column=args.text_a_column,
        text_b_column=args.text_b_column,
        label_column=args.label_column,
        label_scale=args.label_scale,
    )
    pairs = list(zip(split.dataset["text_a"], split.dataset["text_b"]))
    # A reranker scores one order: a (query, passage) pair is not symmetric.
    symmetric = None if task == "reranking" else args.both_orders
    scores = predictor.predict(pairs, batch_size=args.batch_size, symmetric=symmetric)
    metrics = split_metrics(task, scores, split, threshold, resamples=args.bootstrap, level=args.level)
    if other is not None:
        metrics["comparison"] = compare_models(
            predictor,
            other,
            split,
            scores,
            threshold,
            other_model=args.compare,
            symmetric=symmetric,
            batch_size=args.batch_size,
            resamples=args.bootstrap,
            level=args.level,
        )
    if args.compare_bi_encoder is not None:
        metrics["bi_encoder_comparison"] = compare_bi_encoder(
            predictor,
            split,
            scores,
            threshold,
            bi_encoder=args.compare_bi_encoder,
            precision=args.precision,
            resamples=args.bootstrap,
            level=args.level,
        )
    text = json.dumps(metrics, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0
