"""`hf-crossenc` command line: train, evaluate, predict, rank, mine and publish."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import publish
from .errors import UserInputError

EPILOG = "Exit codes: 0 success, 2 bad input (data, flags, paths), 1 unexpected failure."


def _add_column_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text_a_column", default=None, help="first text column (default: auto-detect)")
    parser.add_argument("--text_b_column", default=None, help="second text column (default: auto-detect)")
    _add_model_flags(parser)


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust_pickle_weights", action="store_true", help="allow a model stored as pickle (pytorch_model.bin): unpickling can run code"
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help="fp32 (default: the exact scores of plain transformers), bf16 (weights and forward in bf16: faster on AVX512-BF16/AMX CPUs and GPUs), "
        "or auto (bf16 where native)",
    )
    parser.add_argument(
        "--cpu_kernel_cache",
        type=int,
        default=256,
        help="bf16 on CPU: keep at most this many compiled oneDNN kernels in each of PyTorch's two kernel caches "
        "(ONEDNN_PRIMITIVE_CACHE_CAPACITY, LRU_CACHE_CAPACITY; a value already in the environment wins; 0 leaves PyTorch's "
        "default of 1024). Each kernel holds ~0.5 MB; long inputs meet many shapes (default: 256, as training)",
    )


def _load_predictor(args: argparse.Namespace) -> Any:
    """Bound the CPU kernel caches (before the first bf16 kernel is built), then load the model."""
    from .inference import CrossEncoderPredictor
    from .memory import bound_kernel_caches

    try:
        bound_kernel_caches(args.cpu_kernel_cache)
    except ValueError as err:  # a negative capacity
        raise UserInputError(str(err)) from err
    return CrossEncoderPredictor.from_pretrained(args.model, trust_pickle_weights=args.trust_pickle_weights, precision=args.precision)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-crossenc", description=__doc__, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "train",
        help="fine-tune a cross-encoder (same flags as scripts/train.py; see `hf-crossenc train --help`)",
        add_help=False,
    )

    ev = sub.add_parser(
        "evaluate",
        help="score a labelled file with a trained model and print the metrics of its task "
        "(Pearson/Spearman, accuracy/F1/AUC, or MAP/MRR@10/NDCG@10 by query)",
    )
    ev.add_argument("model", help="trained model folder or Hub id")
    ev.add_argument("data", help="labelled pairs (.csv/.tsv/.json/.jsonl/.parquet)")
    _add_column_flags(ev)
    ev.add_argument("--label_column", default=None, help="label column (default: auto-detect)")
    ev.add_argument("--label_scale", default=None, help="raw label range, e.g. '0,5' (default: the scale the model was trained with)")
    ev.add_argument("--batch_size", type=int, default=64)
    ev.add_argument(
        "--symmetric",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the scores of (a, b) and (b, a) (default: what the model recorded, hf_crossenc.symmetric)",
    )
    ev.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="resamples for the confidence intervals of every metric (pairs resampled, or queries for a reranker; "
        "the model and threshold held fixed); 0 leaves them out (default: 1000)",
    )
    ev.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default: 0.95)")
    ev.add_argument(
        "--compare",
        default=None,
        metavar="OTHER_MODEL",
        help="also score the file with another trained model of the same task and report the paired difference of "
        "every metric (this model minus the other) with its bootstrap interval, both models on the same resampled "
        "pairs or queries: an interval containing 0 means this data does not tell them apart",
    )
    ev.add_argument(
        "--compare_bi_encoder",
        nargs="?",
        const="bundled:all-MiniLM-L6-v2",
        default=None,
        metavar="BI_ENCODER",
        help="also score the file with a bi-encoder (cosine of mean-pooled embeddings; default: the bundled "
        "all-MiniLM-L6-v2, zero-shot) and report the paired difference of the metrics that need no threshold "
        "(correlations, ROC AUC / average precision, ranking metrics): does the cross-encoder beat it?",
    )
    ev.add_argument("--output", default=None, help="also write the metrics to this JSON file")

    pr = sub.add_parser("predict", help="score pairs from a file or the command line")
    pr.add_argument("model", help="trained model folder or Hub id")
    src = pr.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="pairs file (.csv/.tsv/.json/.jsonl/.parquet)")
    src.add_argument("--pair", nargs=2, action="append", metavar=("TEXT_A", "TEXT_B"), help="one pair (repeatable)")
    _add_column_flags(pr)
    pr.add_argument("--output", default=None, help="write JSON lines here instead of stdout")
    pr.add_argument("--rescale", action="store_true", help="report scores on the original label scale (e.g. 0-5)")
    pr.add_argument(
        "--symmetric",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the scores of (a, b) and (b, a) (default: what the model recorded, hf_crossenc.symmetric)",
    )
    pr.add_argument("--batch_size", type=int, default=64)

    rk = sub.add_parser("rank", help="rerank passages for a query with a trained reranker (best first, JSON lines)")
    rk.add_argument("model", help="trained model folder or Hub id")
    rk.add_argument("--query", required=True, help="the query")
    rk_src = rk.add_mutually_exclusive_group(required=True)
    rk_src.add_argument("--passages", help="text file with one passage per line")
    rk_src.add_argument("--passage", action="append", help="one passage (repeatable)")
    rk.add_argument("--top_k", type=int, default=None, help="print only the best K")
    rk.add_argument("--batch_size", type=int, default=64)
    _add_model_flags(rk)

    from .mining import add_mine_arguments

    add_mine_arguments(
        sub.add_parser(
            "mine",
            help="mine hard negatives for (query, positive) pairs with a bi-encoder; writes query,positive,negative_1..n",
            epilog=EPILOG,
        )
    )
    add_publish_arguments(sub.add_parser("publish", help="upload a trained model folder to the Hugging Face Hub (one commit)"))
    from .search import add_search_arguments

    add_search_arguments(sub.add_parser("search", help="grid search over training flags, selecting on the validation split only"))
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from .data import read_table
    from .evaluation import split_metrics

    if args.bootstrap < 0:
        raise UserInputError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {args.bootstrap}.")
    if not 0 < args.level < 1:
        raise UserInputError(f"--level must be between 0 and 1 (exclusive), got {args.level}.")
    for flag, value in (("--compare", args.compare), ("--compare_bi_encoder", args.compare_bi_encoder)):
        if value is not None and args.bootstrap == 0:
            raise UserInputError(f"{flag} needs resamples: drop --bootstrap 0 (or give a positive number).")
    table = read_table(args.data)  # validate the input before loading the model
    predictor = _load_predictor(args)
    task = predictor.semantics.task
    # Comparisons that cannot be made are refused before anything is scored.
    other = _comparable_model(args, predictor) if args.compare is not None else None
    if args.compare_bi_encoder is not None and predictor.semantics.activation == "softmax":
        raise UserInputError(f"--compare_bi_encoder: {args.model} is a multi-class classifier; a cosine scores one class only.")
    if task == "reranking":
        split, threshold = _ranking_split(args, table), None
    elif task == "classification":
        split, threshold = _classification_split(args, table, predictor)
    else:
        split, threshold = _regression_split(args, table, predictor), None
    pairs = list(zip(split.dataset["text_a"], split.dataset["text_b"]))
    # A reranker scores one order: a (query, passage) pair is not symmetric.
    symmetric = None if task == "reranking" else args.symmetric
    scores = predictor.predict(pairs, batch_size=args.batch_size, symmetric=symmetric)
    metrics = split_metrics(task, scores, split, threshold, resamples=args.bootstrap, level=args.level)
    if args.compare is not None:
        metrics["comparison"] = _compare(args, predictor, other, split, scores, threshold, symmetric)
    if args.compare_bi_encoder is not None:
        metrics["bi_encoder_comparison"] = _compare_bi_encoder(args, predictor, split, scores, threshold)
    text = json.dumps(metrics, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


def _class_names(predictor: Any) -> list[str] | None:
    """The labels a classifier's outputs stand for, in output order (recorded names, else config.id2label)."""
    semantics, config = predictor.semantics, predictor.model.config
    if semantics.task != "classification":
        return None
    if semantics.label_names:
        return list(semantics.label_names)
    return ["0", "1"] if semantics.activation == "sigmoid" else [str(config.id2label[i]) for i in range(config.num_labels)]


def _comparable_model(args: argparse.Namespace, predictor: Any) -> Any:
    """The `--compare` model, loaded like the first one; exit 2 unless it scores the same thing: the same task and
    activation and, for classifiers, the same labels in the same output order."""
    other = _load_predictor(argparse.Namespace(**{**vars(args), "model": args.compare}))
    mine, theirs = predictor.semantics, other.semantics
    if (mine.task, mine.activation, _class_names(predictor)) != (theirs.task, theirs.activation, _class_names(other)):
        raise UserInputError(
            f"--compare {args.compare}: a {theirs.task} model ({theirs.activation}, labels {_class_names(other)}) cannot be "
            f"compared with {args.model}, a {mine.task} model ({mine.activation}, labels {_class_names(predictor)})."
        )
    return other


def _compare(
    args: argparse.Namespace, predictor: Any, other: Any, split: Any, scores: Any, threshold: float | None, symmetric: bool | None
) -> dict[str, Any]:
    """The paired comparison of `--compare`: the other model's metrics on the same split, and the difference."""
    from .evaluation import bootstrap_difference, split_labels, task_metrics

    task = predictor.semantics.task
    other_threshold = None
    if task == "classification" and predictor.semantics.activation == "sigmoid":
        other_threshold = other.semantics.threshold if other.semantics.threshold is not None else 0.5
    pairs = list(zip(split.dataset["text_a"], split.dataset["text_b"]))
    other_scores = other.predict(pairs, batch_size=args.batch_size, symmetric=symmetric)
    labels, queries = split_labels(task, split)
    difference = bootstrap_difference(
        task, scores, other_scores, labels, queries, threshold, other_threshold, resamples=args.bootstrap, level=args.level
    )
    return {"model": args.compare, "metrics": task_metrics(task, other_scores, labels, queries, other_threshold), **difference}


# A cosine has no decision threshold: a classifier is compared on the metrics that use the scores alone.
THRESHOLD_FREE = {"regression": ("pearson", "spearman"), "classification": ("auc", "average_precision")}


def _compare_bi_encoder(args: argparse.Namespace, predictor: Any, split: Any, scores: Any, threshold: float | None) -> dict[str, Any]:
    """`--compare_bi_encoder`: the bi-encoder's cosines of the same pairs, their metrics and the paired difference."""
    from .distill import BiEncoder
    from .evaluation import bootstrap_difference, split_labels, task_metrics
    from .modeling import resolve_model_path

    task = predictor.semantics.task
    encoder = BiEncoder(resolve_model_path(args.compare_bi_encoder), max_length=predictor.max_length, precision=args.precision)
    cosine = encoder.cosine(split.dataset["text_a"], split.dataset["text_b"])
    labels, queries = split_labels(task, split)
    difference = bootstrap_difference(task, scores, cosine, labels, queries, threshold, resamples=args.bootstrap, level=args.level)
    keep = THRESHOLD_FREE.get(task) or tuple(difference["difference"])
    metrics = {k: v for k, v in task_metrics(task, cosine, labels, queries).items() if k in keep or k in ("queries", "skipped_queries")}
    return {
        "model": args.compare_bi_encoder,
        "metrics": metrics,
        **{k: v for k, v in difference.items() if not isinstance(v, dict)},
        **{k: {m: x for m, x in v.items() if m in keep} for k, v in difference.items() if isinstance(v, dict)},
    }


def _regression_split(args: argparse.Namespace, table: Any, predictor: Any) -> Any:
    from .data import build_split, parse_label_scale, resolve_columns

    columns = resolve_columns(table, args.text_a_column, args.text_b_column, args.label_column)
    scale = parse_label_scale(args.label_scale) or predictor.label_scale
    if scale == "auto":
        raise UserInputError("evaluate needs an explicit --label_scale (or none, to use the model's).")
    return build_split(table, columns, name="evaluation", scale=scale)


def _classification_split(args: argparse.Namespace, table: Any, predictor: Any) -> tuple[Any, float | None]:
    """The labelled split, and the decision threshold of a binary classifier (the saved one, else 0.5)."""
    from .data import build_class_split, resolve_columns
    from .labels import LabelVocab

    columns = resolve_columns(table, args.text_a_column, args.text_b_column, args.label_column)
    config = predictor.model.config
    binary = predictor.semantics.activation == "sigmoid"
    names = predictor.semantics.label_names or (["0", "1"] if binary else [config.id2label[i] for i in range(config.num_labels)])
    split = build_class_split(table, columns, name="evaluation", vocab=LabelVocab(tuple(names), binary=binary))
    if not binary:
        return split, None
    return split, predictor.semantics.threshold if predictor.semantics.threshold is not None else 0.5


def _ranking_split(args: argparse.Namespace, table: Any) -> Any:
    from .ranking import build_ranking_split

    return build_ranking_split(
        table, name="evaluation", query_column=args.text_a_column, passage_column=args.text_b_column, label_column=args.label_column
    )


def _rank(args: argparse.Namespace) -> int:
    if args.passages:
        path = Path(args.passages)
        if not path.is_file():
            raise UserInputError(f"file {path}: not found.")
        # One passage per line (split on newlines only: str.splitlines() also breaks at U+2028, form feeds...).
        passages = [line.strip() for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    else:
        passages = list(args.passage)
    if not passages:
        raise UserInputError("no passages to rank.")
    predictor = _load_predictor(args)
    if predictor.semantics.activation == "softmax":
        raise UserInputError(f"{args.model} is a multi-class classifier: rank needs a one-score model (a reranker or similarity model).")
    ranked = predictor.rank(args.query, passages, top_k=args.top_k, batch_size=args.batch_size)
    sys.stdout.write("".join(json.dumps({"index": r.index, "score": round(r.score, 6), "passage": r.passage}) + "\n" for r in ranked))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .data import build_split, read_table, resolve_columns

    if args.input:
        table = read_table(args.input)
        columns = resolve_columns(table, args.text_a_column, args.text_b_column, None, require_label=False)
        columns = type(columns)(columns.text_a, columns.text_b, None)
        split = build_split(table, columns, name="predict", scale=None)
        pairs = list(zip(split.dataset["text_a"], split.dataset["text_b"]))
    else:
        pairs = [tuple(p) for p in args.pair]
    predictor = _load_predictor(args)
    scores = predictor.predict(pairs, batch_size=args.batch_size, rescale=args.rescale, symmetric=args.symmetric)
    lines = [json.dumps({"text_a": a, "text_b": b, **_prediction(predictor, s)}) for (a, b), s in zip(pairs, scores)]
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _prediction(predictor: Any, score: Any) -> dict[str, Any]:
    """One output record: the score, and for classifiers the predicted class (and class probabilities)."""
    semantics = predictor.semantics
    if getattr(score, "ndim", 0) == 1:  # softmax probabilities
        names = [predictor.model.config.id2label[i] for i in range(len(score))]
        return {"label": names[int(score.argmax())], "probabilities": {n: round(float(p), 6) for n, p in zip(names, score)}}
    out = {"score": round(float(score), 6)}
    if semantics.task == "classification":
        negative, positive = semantics.label_names or ["0", "1"]
        threshold = semantics.threshold if semantics.threshold is not None else 0.5
        out["label"] = positive if score >= threshold else negative
    return out


# ---- publish ---------------------------------------------------------------------------


def add_publish_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `hf-crossenc publish` arguments to `parser`."""
    parser.add_argument(
        "model_dir", metavar="MODEL_DIR", help="trained model folder (config.json, model.safetensors, tokenizer, README.md)"
    )
    parser.add_argument("--repo-id", required=True, metavar="NAME/REPO", help="target Hub repo, e.g. my-user/stsb-cross-encoder")
    parser.add_argument("--private", action="store_true", help="create the repo as private (no effect on an existing repo)")
    parser.add_argument("--revision", default=None, metavar="REV", help="branch to commit to (created from main if missing; default: main)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request against main instead of committing to it")
    parser.add_argument(
        "--commit-message", default=None, metavar="MSG", help=f"commit (or PR) title (default: {publish.DEFAULT_COMMIT_MESSAGE!r})"
    )
    parser.add_argument("--max-attempts", type=int, default=5, metavar="N", help="tries per Hub request on transient errors (default: 5)")
    parser.add_argument(
        "--retry-backoff",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"first wait between retries, doubled each time (default: ${publish.BACKOFF_ENV} or 1.0)",
    )
    parser.description = parser.description or "Upload a trained model folder to the Hugging Face Hub in one commit (or one pull request)."
    parser.epilog = (
        "The token comes from HF_TOKEN or a saved `hf auth login`; the endpoint from HF_ENDPOINT. "
        "checkpoint-*/, runs/ and hidden files are not uploaded; pickle files (*.bin, *.pt, ...) are refused."
    )
    return parser


def _backoff_from(args: argparse.Namespace) -> float:
    if args.retry_backoff is not None:
        return args.retry_backoff
    raw = os.environ.get(publish.BACKOFF_ENV)
    if not raw:
        return 1.0
    try:
        return float(raw)
    except ValueError:
        raise publish.PublishError(f"{publish.BACKOFF_ENV}={raw!r} is not a number of seconds.") from None


def run_publish(args: argparse.Namespace) -> int:
    """Run `hf-crossenc publish`: print the model URL (or the PR URL) on stdout; status messages on stderr."""
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.disable_propagation()  # huggingface_hub has its own stderr handler: don't print its warnings twice
    result = publish.publish_folder(
        args.model_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        create_pr=args.create_pr,
        commit_message=args.commit_message,
        max_attempts=args.max_attempts,
        backoff=_backoff_from(args),
    )
    url = result.pr_url or result.repo_url
    if not result.pr_url and args.revision not in (None, "main"):
        url = f"{result.repo_url}/tree/{args.revision}"
    if not result.changed:
        print(
            f"Nothing changed: {args.repo_id} already has these files (commit {result.commit_oid[:12]}); no new commit made.",
            file=sys.stderr,
        )
    elif result.pr_url:
        print(f"Opened pull request {result.pr_url} (commit {result.commit_oid[:12]}).", file=sys.stderr)
    else:
        print(f"Published {args.model_dir} to {args.repo_id} (commit {result.commit_oid[:12]}).", file=sys.stderr)
    print(url)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from .training import main as train_main

        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    return exit_code_of(_dispatch, args)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "publish":
        return run_publish(args)
    if args.command == "mine":
        from .mining import run_mine

        return run_mine(args)
    if args.command == "search":
        from .search import run_search

        return run_search(args)
    commands = {"evaluate": _evaluate, "predict": _predict, "rank": _rank}
    return commands[args.command](args)


def exit_code_of(command: Callable[[Any], Any], argument: Any) -> int:
    """Run a command; bad input (`UserInputError`) becomes one `error:` line on stderr and its exit code (2)."""
    try:
        result = command(argument)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
