"""Log set-up, defined once: every command, the training job and its child processes log the same way."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Send hf_crossenc's (and the libraries') log records to stderr in the project's format."""
    logging.basicConfig(format=LOG_FORMAT, level=level)
