"""`hf-crossenc predict`: score pairs from a file or the command line; one JSON line per pair."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import add_both_orders_flag, add_column_flags, load_predictor, positive_int


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("predict", help="score pairs from a file or the command line")
    parser.add_argument("model", help="trained model folder or Hub id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="pairs file (.csv/.tsv/.json/.jsonl/.parquet)")
    source.add_argument("--pair", nargs=2, action="append", metavar=("TEXT_A", "TEXT_B"), help="one pair (repeatable)")
    add_column_flags(parser)
    parser.add_argument("--output", default=None, help="write JSON lines here instead of stdout")
    parser.add_argument("--rescale", action="store_true", help="report scores on the original label scale (e.g. 0-5)")
    add_both_orders_flag(parser)
    parser.add_argument("--batch_size", type=positive_int, default=64, help="pairs per batch (default: 64)")
    return parser


def _read_pairs(path: str, text_a_column: str | None, text_b_column: str | None) -> list[tuple[str, str]]:
    """The validated (text_a, text_b) pairs of a file; a label column, if any, is ignored."""
    from ..data import build_split, read_table, resolve_columns

    table = read_table(path)
    columns = resolve_columns(table, text_a_column, text_b_column, None, require_label=False)
    columns = type(columns)(columns.text_a, columns.text_b, None)
    split = build_split(table, columns, name="predict", scale=None)
    return list(zip(split.dataset["text_a"], split.dataset["text_b"]))


def run(args: argparse.Namespace) -> int:
    from ..inference import prediction_record
    from ..text_inputs import flag_pairs

    pairs = _read_pairs(args.input, args.text_a_column, args.text_b_column) if args.input else flag_pairs(args.pair)
    predictor = load_predictor(args)
    scores = predictor.predict(pairs, batch_size=args.batch_size, rescale=args.rescale, symmetric=args.both_orders)
    lines = [json.dumps({"text_a": a, "text_b": b, **prediction_record(predictor, s)}) for (a, b), s in zip(pairs, scores)]
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
