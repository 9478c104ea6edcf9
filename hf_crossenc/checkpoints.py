"""Finding a checkpoint to resume from, skipping any that a crash left half-written; checking an output folder before
a run writes into it."""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .tasks import FINGERPRINT_FILE, MODEL_FILES

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TORCH_STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "optimizer.bin", "pytorch_model_fsdp.bin")
OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin")
"""The optimizer state of a checkpoint: Trainer's own, or accelerate's under FSDP (FULL_STATE_DICT)."""
AVERAGE_FILE = "weight_average.safetensors"  # the running sum of --average_checkpoints (hf_crossenc.averaging)
RUN_FILES = (*MODEL_FILES, "results.json", FINGERPRINT_FILE)
"""Files a run writes into its output folder (removed by --overwrite_output_dir; other files stay)."""
RUN_PATTERNS = ("checkpoint-*", "model-*-of-*.safetensors")
RUN_FOLDERS = ("rounds", "soup", "teacher", "teacher.partial")
"""Sub-folders of distillation rounds, seed soups and the fine-tuned bi-encoder teacher (`hf_crossenc.teacher.TEACHER_DIR`)."""


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
    if not any((folder / name).exists() for name in OPTIMIZER_FILES):
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
    check_writable(out)
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


def check_writable(out: Path) -> None:
    """`ConfigError` naming --output_dir unless `out` (or, when it does not exist yet, its nearest existing parent, where
    it will be created) is a folder this process can create files in. Nothing is left behind: the probe is an anonymous
    temporary file."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--output_dir {out} cannot be created: {existing} is a file, not a folder.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        where = "" if existing == out else f" (it would be created in {existing})"
        raise ConfigError(f"--output_dir {out} is not writable{where}: {err.strerror or err}.") from None


def clear_previous_run(training_args: Any, in_use: list[str | None], keep_teacher: bool) -> list[str]:
    """``--overwrite_output_dir`` (without --resume): remove what an earlier run wrote into the output folder before this
    one trains — checkpoints, model, card, results, fingerprint and the sub-folders `RUN_FOLDERS` — except the sub-folders
    holding a model of `in_use` (an earlier round or soup member of this job) and, with `keep_teacher`, teacher/ (its
    finetune.json decides whether it is reused). Other files stay. Main process only; returns the names removed."""
    from accelerate import PartialState

    out = Path(training_args.output_dir)
    keep = {"teacher"} if keep_teacher else set()
    root = out.resolve()
    for path in filter(None, in_use):
        resolved = Path(path).resolve()
        if resolved != root and resolved.is_relative_to(root):
            keep.add(resolved.relative_to(root).parts[0])
    state = PartialState()
    removed: list[str] = []
    if state.is_main_process and out.is_dir():
        names = [*RUN_FILES, *RUN_FOLDERS]
        for path in sorted({*(out / name for name in names), *(p for pattern in RUN_PATTERNS for p in out.glob(pattern))}):
            if path.name in keep or not (path.exists() or path.is_symlink()):
                continue
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(path.name)
        if removed:
            logger.info("--overwrite_output_dir: removed the earlier run's %s from %s", ", ".join(removed), out)
    state.wait_for_everyone()
    return removed
