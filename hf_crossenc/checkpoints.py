"""Finding a checkpoint to resume from, skipping any that a crash left half-written; checking an output folder before
a run writes into it."""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

from .errors import ConfigError

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TORCH_STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth")
AVERAGE_FILE = "weight_average.safetensors"  # the running sum of --average_checkpoints (hf_crossenc.averaging)


def _safetensors_ok(path: Path) -> bool:
    """The header parses and the file is exactly as long as the header says."""
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + header_len + end
    except (OSError, ValueError, KeyError, struct.error):
        return False


def checkpoint_problem(folder: Path, averaged: bool = False) -> str | None:
    """Why `folder` cannot be resumed from, or None if it is complete.

    Trainer writes `trainer_state.json` last, so a checkpoint without a readable one was cut off;
    the weights and the (zip-format) torch states are checked for truncation too. A run that averages
    its epochs (``averaged``) also needs the running sum, which is written after the rest.
    """
    state = folder / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "trainer_state.json is missing or unreadable"
    weights = folder / "model.safetensors"
    if not weights.is_file() or not _safetensors_ok(weights):
        return "model.safetensors is missing or truncated"
    for name in TORCH_STATE_FILES:
        path = folder / name
        if path.exists() and not zipfile.is_zipfile(path):
            return f"{name} is truncated"
    if not (folder / "optimizer.pt").exists():
        return "optimizer.pt is missing"
    average = folder / AVERAGE_FILE
    if averaged and not (average.is_file() and _safetensors_ok(average)):
        return f"{AVERAGE_FILE} is missing or truncated (cut off, or written without --average_checkpoints)"
    return None


def latest_complete_checkpoint(output_dir: str | Path, averaged: bool = False) -> Path | None:
    """Newest `checkpoint-N` in `output_dir` that is complete (for a run with ``--average_checkpoints``:
    ``averaged=True``); incomplete ones are logged and skipped."""
    folders = []
    for path in Path(output_dir).glob("checkpoint-*"):
        match = CHECKPOINT_RE.match(path.name)
        if match and path.is_dir():
            folders.append((int(match.group(1)), path))
    for _, folder in sorted(folders, reverse=True):
        problem = checkpoint_problem(folder, averaged)
        if problem is None:
            return folder
        logger.warning("skipping incomplete checkpoint %s: %s", folder, problem)
    return None


def resumable(output_dir: str | Path, averaged: bool = False, earlier: bool = True) -> bool:
    """Whether ``--resume`` has something to start from in `output_dir`: a complete checkpoint, or (``earlier``)
    a finished or checkpointed earlier distillation round or soup member under ``rounds/`` or ``soup/``."""
    out = Path(output_dir)
    if latest_complete_checkpoint(out, averaged) is not None:
        return True
    parts = [*out.glob("rounds/round-*"), *out.glob("soup/seed-*")] if earlier else []
    return any((f / "results.json").is_file() or latest_complete_checkpoint(f, averaged) is not None for f in parts)


def check_output_dir(training_args: Any, rounds: bool = False) -> None:
    """Refuse to overwrite a non-empty output directory; with --resume, require something to resume from
    (with `rounds`, a finished or checkpointed earlier round in OUTPUT_DIR/rounds/ counts too)."""
    out = Path(training_args.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output_dir {out} exists and is not a directory.")
    if training_args.resume:
        averaged = training_args.average_checkpoints
        if training_args.resume_from_checkpoint is None and not resumable(out, averaged, earlier=rounds):
            where = "or finished round or soup member " if rounds else ""
            need = f" (with --average_checkpoints a checkpoint also needs its {AVERAGE_FILE})" if averaged else ""
            raise ConfigError(f"--resume: no complete checkpoint-* folder {where}in --output_dir {out} to resume from{need}.")
        return
    if out.is_dir() and any(out.iterdir()) and not training_args.overwrite_output_dir:
        raise ConfigError(
            f"--output_dir {out} already exists and is not empty. Pass --resume to continue an interrupted run from its "
            "newest complete checkpoint, --overwrite_output_dir to train into it anyway, or choose another --output_dir."
        )
