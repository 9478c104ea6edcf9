"""`hf-crossenc rank`: rerank passages for a query with a trained reranker; JSON lines, best first."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from .common import add_model_flags, load_predictor, positive_int


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("rank", help="rerank passages for a query with a trained reranker (best first, JSON lines)")
    parser.add_argument("model", help="trained model folder or Hub id")
    parser.add_argument("--query", required=True, help="the query")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--passages", help="text file with one passage per line")
    source.add_argument("--passage", action="append", help="one passage (repeatable)")
    parser.add_argument("--top_k", type=positive_int, default=None, help="print only the best K")
    parser.add_argument("--batch_size", type=positive_int, default=64, help="pairs per batch (default: 64)")
    add_model_flags(parser)
    return parser


def _read_passages(path: Path) -> list[str]:
    if not path.is_file():
        raise UserInputError(f"file {path}: not found.")
    # One passage per line (split on newlines only: str.splitlines() also breaks at U+2028, form feeds...).
    return [line.strip() for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def run(args: argparse.Namespace) -> int:
    passages = _read_passages(Path(args.passages)) if args.passages else list(args.passage)
    if not passages:
        raise UserInputError("no passages to rank.")
    predictor = load_predictor(args)
    if predictor.semantics.activation == "softmax":
        raise UserInputError(f"{args.model} is a multi-class classifier: rank needs a one-score model (a reranker or similarity model).")
    ranked = predictor.rank(args.query, passages, top_k=args.top_k, batch_size=args.batch_size)
    sys.stdout.write("".join(json.dumps({"index": r.index, "score": round(r.score, 6), "passage": r.passage}) + "\n" for r in ranked))
    return 0
