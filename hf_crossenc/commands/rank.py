"""`hf-crossenc rank`: rerank passages for a query with a trained reranker; JSON lines, best first."""

from __future__ import annotations

import argparse
import json
import sys
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


def run(args: argparse.Namespace) -> int:
    from ..text_inputs import flag_text, read_text_lines

    query = flag_text(args.query, "--query")
    if args.passages:  # one passage per line, blank lines skipped
        passages = read_text_lines(args.passages, "--passages")
    else:
        passages = [
            flag_text(p, f"--passage (passage {i})" if len(args.passage) > 1 else "--passage") for i, p in enumerate(args.passage, 1)
        ]
    if not passages:
        raise UserInputError(
            f"no passages to rank: file {args.passages} holds only blank lines." if args.passages else "no passages to rank."
        )
    predictor = load_predictor(args)
    if predictor.semantics.activation == "softmax":
        raise UserInputError(f"{args.model} is a multi-class classifier: rank needs a one-score model (a reranker or similarity model).")
    ranked = predictor.rank(query, passages, top_k=args.top_k, batch_size=args.batch_size)
    sys.stdout.write("".join(json.dumps({"index": r.index, "score": round(r.score, 6), "passage": r.passage}) + "\n" for r in ranked))
    return 0
