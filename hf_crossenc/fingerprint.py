"""What produced a checkpoint: the run fingerprint, so that ``--resume`` never continues another run.

Every checkpoint, the final model folder and each distillation round / soup member folder carry ``run_fingerprint.json``
(written by `CrossEncoderTrainer._save`): the models the run starts from or learns from (a local folder by the sha256 of
its weight files and config.json — about 2 GB/s, a fraction of a second for MiniLM; a Hub id by its name), the sha256
of every data file (a Hub dataset by its name, config and splits, which are arguments) and the arguments that change
training. ``--resume`` (and the reuse of a finished round or soup member) compares the recorded fingerprint with the
one of the command and refuses, naming each difference, before the model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from . import __version__
from .arguments import DataArguments, ModelArguments, TeacherArguments
from .checkpoints import latest_complete_checkpoint
from .errors import ConfigError
from .modeling import BUNDLED_MODEL, bundled_model_path
from .tasks import FINGERPRINT_FILE
from .training_args import CrossEncoderTrainingArguments, split_list

FORMAT = 1

MODEL_KEYS = ("model_name_or_path", "teacher", "cross_encoder_teacher", "average_with")
"""Arguments naming models: recorded by the models' identity (`model_identity`), not by path."""
DATA_KEYS = ("train_file", "validation_file", "test_file", "silver_file")
"""Arguments naming data files: recorded by their content (sha256)."""
NOT_TRAINING = frozenset({"license", "language", "dataset_card_id", "trust_pickle_weights", "distill_rounds"})
"""Arguments of the model, data and teacher groups that do not change the trained weights (card metadata, permission to
load pickles; a round's own arguments always say one round)."""
TRAINING_KEYS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "seed", "data_seed", "full_determinism", "warmup_steps", "warmup_ratio", "weight_decay", "lr_scheduler_type",
    "lr_scheduler_kwargs", "optim", "optim_args", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "label_smoothing_factor", "bf16", "fp16", "group_by_length", "dataloader_drop_last", "eval_strategy", "eval_steps",
    "load_best_model_at_end", "metric_for_best_model", "greater_is_better", "gradient_checkpointing", "neftune_noise_alpha",
    "use_cpu", "world_size",
)  # fmt: skip
"""transformers' training arguments that change the optimisation or which checkpoint becomes the model."""
OWN_NOT_TRAINING = frozenset(
    {"resume", "overwrite_output_dir", "output_dir", "cpu_threads", "cpu_kernel_cache", "recompute_above_tokens",
     "bootstrap_resamples", "soup_seeds", "average_with", "per_device_eval_batch_size", "save_strategy",
     "save_total_limit", "logging_steps", "report_to", "remove_unused_columns"}
)  # fmt: skip
"""Fields declared by `CrossEncoderTrainingArguments` that do not change the weights (speed and memory settings with the
same gradients, where and how often to save or log, evaluation statistics; `average_with` is recorded as models).
Every other field it declares is recorded, so a new training option is covered without being listed."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def model_identity(name_or_path: str | None) -> dict[str, Any] | None:
    """A model as the fingerprint records it: a local folder by the sha256 of config.json and its weight files, a Hub id
    by its name (the cached revision is not looked up)."""
    if not name_or_path:
        return None
    resolved = bundled_model_path() if name_or_path == BUNDLED_MODEL else Path(name_or_path)
    if not resolved.is_dir():
        return {"hub_id": name_or_path}
    files = [resolved / "config.json", *sorted(resolved.glob("*.safetensors")), *sorted(resolved.glob("*.bin"))]
    return {"files": {file.name: file_sha256(file) for file in files if file.is_file()}}


def readable_file(path: str | Path | None) -> bool:
    """A file this process can read (one that is missing or unreadable is reported by the data checks, by name)."""
    return bool(path) and Path(path).is_file() and os.access(path, os.R_OK)


def data_identity(data_args: DataArguments, teacher_args: TeacherArguments) -> dict[str, Any]:
    """The sha256 of every data file the run reads (a comma-separated --silver_file: one per file, in order)."""
    values = {key: getattr(data_args, key) for key in DATA_KEYS[:3]}
    data: dict[str, Any] = {key: file_sha256(path) if readable_file(path) else path for key, path in values.items()}
    silver = split_list(teacher_args.silver_file)
    data["silver_file"] = [file_sha256(path) if readable_file(path) else path for path in silver] or None
    return data


def training_values(training_args: CrossEncoderTrainingArguments) -> dict[str, Any]:
    """The training arguments that change the weights (`TRAINING_KEYS` and the own fields not in `OWN_NOT_TRAINING`)."""
    inherited = {f.name for f in fields(TrainingArguments)}
    own = [f.name for f in fields(CrossEncoderTrainingArguments) if f.name not in inherited and f.name not in OWN_NOT_TRAINING]
    return {key: getattr(training_args, key, None) for key in (*TRAINING_KEYS, *own)}


def run_fingerprint(
    model_args: ModelArguments,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
) -> dict[str, Any]:
    """The fingerprint of one training run (JSON-ready)."""
    arguments: dict[str, Any] = {}
    for group in (model_args, data_args, teacher_args):
        arguments.update({k: v for k, v in asdict(group).items() if k not in (*MODEL_KEYS, *DATA_KEYS) and k not in NOT_TRAINING})
    arguments.update(training_values(training_args))
    models = {
        "model_name_or_path": model_identity(model_args.model_name_or_path or BUNDLED_MODEL),
        "teacher": model_identity(teacher_args.teacher) if teacher_args.active else None,
        "cross_encoder_teacher": model_identity(teacher_args.cross_encoder_teacher),
        "average_with": [model_identity(folder) for folder in split_list(training_args.average_with)] or None,
    }
    fingerprint = {
        "format": FORMAT,
        "hf_crossenc_version": __version__,
        "models": models,
        "data": data_identity(data_args, teacher_args),
        "arguments": arguments,
    }
    return json.loads(json.dumps(fingerprint, default=str))  # enums and the like as the file holds them


def write_fingerprint(folder: str | Path, fingerprint: dict[str, Any]) -> None:
    Path(folder, FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_fingerprint(folder: str | Path) -> dict[str, Any] | None:
    """The fingerprint recorded in `folder`, or None if it has none (written by hf-crossenc before 0.x fingerprints)."""
    path = Path(folder, FINGERPRINT_FILE)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}): the folder cannot be checked to come from this command.") from None


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between a recorded fingerprint and the current one, in words (empty if they match)."""
    out = []
    for key in sorted(set(recorded.get("arguments", {})) | set(current["arguments"])):
        old, new = recorded.get("arguments", {}).get(key, "(not recorded)"), current["arguments"].get(key, "(not recorded)")
        if old != new:
            out.append(f"{key}: {old} in the checkpoint, {new} now")
    for key, new in current["data"].items():
        if recorded.get("data", {}).get(key) != new:
            out.append(f"{key} content differs" if new else f"{key}: given in the checkpoint, not now")
    for key, new in current["models"].items():
        old = recorded.get("models", {}).get(key)
        if old != new:
            out.append(f"{key}: another model" + (" (its config.json or weight files differ)" if old and new else ""))
    return out


def check_fingerprint(folder: str | Path, fingerprint: dict[str, Any], what: str) -> None:
    """`ConfigError` unless `folder` records the same fingerprint; `what` names the action (e.g. "--resume")."""
    recorded = read_fingerprint(folder)
    if recorded is None:
        raise ConfigError(
            f"{what}: {folder} has no {FINGERPRINT_FILE} (it was written by an hf-crossenc older than {__version__}), so it "
            "cannot be checked to come from this command. Finish it with the version that started it, or start over "
            "with --overwrite_output_dir (which removes the old checkpoints and model)."
        )
    found = differences(recorded, fingerprint)
    if found:
        raise ConfigError(
            f"{what}: {folder} was trained with other settings than this command: {'; '.join(found)}. Run it with the "
            "settings it was started with, or start over with --overwrite_output_dir (which removes the old checkpoints and model)."
        )


def check_resume(training_args: CrossEncoderTrainingArguments, fingerprint: dict[str, Any]) -> None:
    """With ``--resume`` (or ``--resume_from_checkpoint``): the checkpoint it would continue, and the model folder
    itself when it records a fingerprint (a finished run), must come from the same fingerprint."""
    out = Path(training_args.output_dir)
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and training_args.resume:
        checkpoint = latest_complete_checkpoint(out, training_args.average_checkpoints)
    if checkpoint is None:
        return
    check_fingerprint(checkpoint, fingerprint, "--resume")
    if (out / FINGERPRINT_FILE).is_file():
        check_fingerprint(out, fingerprint, "--resume")
