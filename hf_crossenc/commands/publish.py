"""`hf-crossenc publish`: upload a trained model folder to the Hugging Face Hub in one commit (or one pull request)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .. import publish
from .common import non_negative_float, positive_int


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("publish", help="upload a trained model folder to the Hugging Face Hub (one commit)")
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
    parser.add_argument(
        "--include_logs",
        "--include-logs",
        action="store_true",
        help="also upload the TensorBoard traces in runs/ (written by training with --report_to tensorboard): the Hub "
        "shows them in the model's Training metrics tab",
    )
    parser.add_argument(
        "--max-attempts", type=positive_int, default=5, metavar="N", help="tries per Hub request on transient errors (default: 5)"
    )
    parser.add_argument(
        "--retry-backoff",
        type=non_negative_float,
        default=None,
        metavar="SECONDS",
        help=f"first wait between retries, doubled each time (default: ${publish.BACKOFF_ENV} or 1.0)",
    )
    parser.description = parser.description or "Upload a trained model folder to the Hugging Face Hub in one commit (or one pull request)."
    parser.epilog = (
        "The token comes from HF_TOKEN or a saved `hf auth login`; the endpoint from HF_ENDPOINT. "
        "checkpoint-*/, runs/ (unless --include_logs) and hidden files are not uploaded; pickle files (*.bin, *.pt, ...) are refused."
    )
    return parser


def _backoff_from(args: argparse.Namespace) -> float:
    """The first wait between retries: --retry-backoff, else the environment's `publish.BACKOFF_ENV`, else 1 s."""
    if args.retry_backoff is not None:
        return args.retry_backoff
    raw = os.environ.get(publish.BACKOFF_ENV)
    if not raw:
        return 1.0
    try:
        return float(raw)
    except ValueError:
        raise publish.PublishError(f"{publish.BACKOFF_ENV}={raw!r} is not a number of seconds.") from None


def run(args: argparse.Namespace) -> int:
    """Print the model URL (or the PR URL) on stdout; status messages on stderr."""
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
        include_logs=args.include_logs,
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
