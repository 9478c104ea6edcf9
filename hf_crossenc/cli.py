"""`hf-crossenc` command line: builds the parser from the command modules (`hf_crossenc.commands`) and dispatches."""

from __future__ import annotations

import argparse
import logging
import sys

from .commands import data, evaluate, mine, predict, publish, rank, search
from .commands.common import EPILOG, exit_code_of
from .logs import setup_logging

COMMANDS = {
    "evaluate": evaluate,
    "predict": predict,
    "rank": rank,
    "mine": mine,
    "publish": publish,
    "search": search,
    "data": data,
}
"""Every subcommand but train, in the order `hf-crossenc --help` lists them: its module has `add_parser` and `run`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-crossenc", description=__doc__, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "train",
        help="fine-tune a cross-encoder (same flags as scripts/train.py; see `hf-crossenc train --help`)",
        add_help=False,
    )
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from .commands.train import main as train_main

        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    setup_logging(logging.WARNING)
    return exit_code_of(_dispatch, args)


def _dispatch(args: argparse.Namespace) -> int:
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
