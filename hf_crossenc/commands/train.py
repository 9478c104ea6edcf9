"""`hf-crossenc train` and `accelerate launch scripts/train.py`: the training job from a YAML config and flags.

The flags are the fields of the job's argument dataclasses (`hf_crossenc.config.build_parser`); `--help` lists them.
"""

from __future__ import annotations

import argparse
import sys

from ..config import parse_job_arguments
from ..job import train
from ..logs import setup_logging
from .common import exit_code_of


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """A placeholder: `hf-crossenc train ...` hands its arguments to `main` unparsed (the job has its own parser)."""
    return subparsers.add_parser(
        "train", help="fine-tune a cross-encoder (same flags as scripts/train.py; see `hf-crossenc train --help`)", add_help=False
    )


def run(argv: list[str]) -> int:
    """Parse the config and flags, then run the whole job (rounds and soups included)."""
    model_args, data_args, teacher_args, training_args = parse_job_arguments(argv)
    train(model_args, data_args, training_args, teacher_args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 for bad input (one `error:` line, no traceback)."""
    setup_logging()
    return exit_code_of(run, list(sys.argv[1:] if argv is None else argv))
