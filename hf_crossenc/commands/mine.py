"""`hf-crossenc mine` (also `python -m hf_crossenc.commands.mine`): mine hard negatives for (query, positive) pairs
with a bi-encoder (`hf_crossenc.mining`); writes query,positive,negative_1..n and prints a summary."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..embedding_index import resolve_backend
from ..errors import ConfigError
from ..logs import setup_logging
from ..mining import check_mining_settings, check_output_paths, mine_hard_negatives, write_atomically, write_mined
from ..mining_io import CORPUS_CANDIDATES, POSITIVE_CANDIDATES, QUERY_CANDIDATES, read_corpus, read_pairs
from .common import EPILOG, exit_code_of, finite_float, non_negative_int, positive_int


def _optional_float(value: str) -> float | None:
    if value.strip().lower() in ("none", "off", ""):
        return None
    try:
        return finite_float(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a finite number or 'none', got {value!r}") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mine",
        help="mine hard negatives for (query, positive) pairs with a bi-encoder; writes query,positive,negative_1..n",
        epilog=EPILOG,
    )
    return add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser for `hf-crossenc mine` (`python -m hf_crossenc.commands.mine`)."""
    return add_arguments(argparse.ArgumentParser(prog="hf-crossenc mine", epilog=EPILOG))


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `hf-crossenc mine` arguments to `parser`."""
    from ..modeling import BUNDLED_MODEL

    parser.add_argument("input", help="(query, positive) pairs: .csv/.tsv/.json/.jsonl/.parquet; a query may have several rows")
    parser.add_argument("--output", required=True, help="where to write the mined rows (.csv or .jsonl)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output (and --summary) file")
    parser.add_argument("--query_column", default=None, help=f"query column (default: first of {', '.join(QUERY_CANDIDATES[:4])}, ...)")
    parser.add_argument(
        "--positive_column", default=None, help=f"positive column (default: first of {', '.join(POSITIVE_CANDIDATES[:5])}, ...)"
    )
    parser.add_argument(
        "--corpus", default=None, metavar="FILE", help="extra candidate passages (the positives of INPUT are always candidates)"
    )
    parser.add_argument(
        "--corpus_column",
        default=None,
        help=f"passage column of --corpus (default: its only column, or first of {', '.join(CORPUS_CANDIDATES)})",
    )
    parser.add_argument("--model", default=BUNDLED_MODEL, help=f"bi-encoder: folder, Hub id or {BUNDLED_MODEL} (default)")
    parser.add_argument("--num_negatives", type=positive_int, default=5, help="negatives per query (default: 5)")
    parser.add_argument(
        "--range_min", type=non_negative_int, default=0, help="skip the candidates ranked above this (0-based rank; default: 0)"
    )
    parser.add_argument("--range_max", type=positive_int, default=50, help="examine candidates ranked below this (default: 50)")
    parser.add_argument(
        "--margin",
        type=_optional_float,
        default=0.05,
        help="drop candidates scoring above (lowest positive score - margin): likely unlabelled positives (default: 0.05; 'none' disables)",
    )
    parser.add_argument("--max_score", type=_optional_float, default=None, help="drop candidates with cosine above this (default: none)")
    parser.add_argument("--batch_size", type=positive_int, default=128, help="texts per encoder batch (default: 128)")
    parser.add_argument("--max_length", type=positive_int, default=128, help="tokens per text; longer ones are truncated (default: 128)")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],  # the values of hf_crossenc.inference.PRECISIONS, without importing torch here
        default="auto",
        help="encoder precision (default: auto, bf16 where the CPU computes bf16 natively; fp32 for vectors independent of the CPU)",
    )
    parser.add_argument("--summary", default=None, metavar="FILE", help="also write the summary (printed on stdout) to this JSON file")
    scale = parser.add_argument_group("scale (docs/mining.md)")
    scale.add_argument(
        "--search",
        choices=["auto", "faiss", "exact"],  # hf_crossenc.embedding_index.SEARCH_BACKENDS
        default="auto",
        help="nearest-neighbour search: faiss IndexFlatIP (needs faiss-cpu: pip install 'hf_crossenc[mining]') or numpy; "
        "both exact, same neighbours (default: auto, faiss when installed)",
    )
    scale.add_argument(
        "--embedding_dtype",
        choices=["float32", "float16"],  # hf_crossenc.embedding_index.EMBEDDING_DTYPES
        default="float32",
        help="how the embeddings are stored on disk during mining (float16: half the file; default: float32)",
    )
    scale.add_argument(
        "--embeddings_dir",
        default=None,
        metavar="DIR",
        help="where the temporary embedding files go, removed afterwards (default: the system's temporary directory; "
        "a million MiniLM embeddings take 1.5 GB in float32)",
    )
    scale.add_argument(
        "--cpu_kernel_cache",
        type=non_negative_int,
        default=256,
        help="bf16 on CPU: keep at most this many compiled oneDNN kernels in each of PyTorch's two kernel caches, as in "
        "predict and training (a value already in the environment wins; 0: PyTorch's default of 1024, ~0.5 MB each)",
    )
    if not parser.description:
        parser.description = "Mine hard negatives for (query, positive) pairs with a bi-encoder, for reranker training."
    return parser


def run(args: argparse.Namespace) -> int:
    """Validate everything, load the bi-encoder, mine, write; print the summary JSON on stdout."""
    from ..bi_encoder import BiEncoder
    from ..memory import bound_kernel_caches
    from ..modeling import resolve_model_path

    check_mining_settings(args.num_negatives, args.range_min, args.range_max, args.margin, args.max_score)
    if args.batch_size < 1 or args.max_length < 1:
        raise ConfigError(f"--batch_size and --max_length must be positive, got {args.batch_size} and {args.max_length}.")
    output = Path(args.output)
    summary_path = Path(args.summary) if args.summary else None
    check_output_paths(output, summary_path, overwrite=args.overwrite)
    resolve_backend(args.search)
    if args.embeddings_dir is not None and not Path(args.embeddings_dir).is_dir():
        raise ConfigError(f"--embeddings_dir {args.embeddings_dir} is not a directory.")
    queries, positives = read_pairs(args.input, args.query_column, args.positive_column)
    corpus = read_corpus(args.corpus, args.corpus_column) if args.corpus else None

    model_path = resolve_model_path(args.model, "--model")
    bound_kernel_caches(args.cpu_kernel_cache)  # before the first bf16 kernel: passages of many lengths meet many shapes
    encoder = BiEncoder(
        model_path, max_length=args.max_length, batch_size=args.batch_size, precision=args.precision, flag="--model", remember=False
    )
    result = mine_hard_negatives(
        queries,
        positives,
        encoder,
        corpus=corpus,
        num_negatives=args.num_negatives,
        range_min=args.range_min,
        range_max=args.range_max,
        margin=args.margin,
        max_score=args.max_score,
        search=args.search,
        embedding_dtype=args.embedding_dtype,
        embeddings_dir=args.embeddings_dir,
    )
    write_mined(result, output, overwrite=args.overwrite)
    summary = {
        "input": str(args.input),
        "corpus": args.corpus,
        "model": args.model,
        "precision": encoder.precision,
        "output": str(output),
        **result.summary,
    }
    text = json.dumps(summary, indent=2)
    if summary_path is not None:
        write_atomically(summary_path, text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m hf_crossenc.commands.mine ...`: bad input becomes one `error:` line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    setup_logging(logging.WARNING)
    return exit_code_of(run, args)


if __name__ == "__main__":
    sys.exit(main())
