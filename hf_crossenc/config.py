"""From a YAML config and command-line flags to the job's four argument dataclasses.

`parse_job_arguments(argv)` reads ``--config file.yaml`` (optional) as defaults and lets flags override them. With
neither a config nor training data (``--train_file``, ``--dataset_name``), the defaults are the default job: the
STS-B recipe of ``configs/stsb.yaml`` (shipped inside the package), the one definition of that recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import sys
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints

import yaml
from transformers import HfArgumentParser

from .arguments import DEPRECATED_NAMES, DataArguments, ModelArguments, TeacherArguments
from .errors import ConfigError
from .training_args import CrossEncoderTrainingArguments
from .validation import TypeMismatch, coerce_value

logger = logging.getLogger("hf_crossenc")

JobArguments = tuple[ModelArguments, DataArguments, TeacherArguments, CrossEncoderTrainingArguments]

DEFAULT_RECIPE = "stsb.yaml"
"""The default job's recipe, in the package's recipes/ folder (the same file as configs/stsb.yaml)."""
TEACHER_KEYS = ("teacher", "teacher_weight", "silver_pairs", "teacher_finetune_epochs")
"""The default job's teacher: dropped as a whole when the command line names its own --teacher or --teacher_weight, so
that `--teacher_weight 0` turns the teacher off rather than leaving its silver pairs without one."""


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser((ModelArguments, DataArguments, TeacherArguments, CrossEncoderTrainingArguments))
    parser.add_argument("--config", default=None, help="YAML file of arguments; command-line flags override it.")
    return parser


def default_recipe_path() -> Path:
    """configs/stsb.yaml as the installed package carries it."""
    return Path(str(resources.files("hf_crossenc") / "recipes" / DEFAULT_RECIPE))


def parse_job_arguments(argv: list[str] | None = None) -> JobArguments:
    """Parse `--config file.yaml` (optional) and the command line; flags on the command line win."""
    argv = rename_deprecated_flags(list(sys.argv[1:] if argv is None else argv))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    parser = build_parser()
    # Training data on the command line means no default job; the real parser reads it, so that every
    # spelling it accepts (--train-file, abbreviations) counts.
    given, _ = build_parser().parse_known_args(rest)
    if known.config:
        parser.set_defaults(**load_config_file(known.config, parser))
    elif not (given.train_file or given.dataset_name):
        parser.set_defaults(**default_job(own_teacher=given.teacher is not None or given.teacher_weight is not None))
    try:
        model_args, data_args, teacher_args, training_args, _ = parser.parse_args_into_dataclasses(args=rest)
    except ConfigError:  # our own checks (hf_crossenc.validation), already named by flag
        raise
    except ValueError as err:  # raised by TrainingArguments.__post_init__ for inconsistent settings
        raise ConfigError(f"invalid arguments: {err}") from None
    return model_args, data_args, teacher_args, training_args


def default_job(own_teacher: bool = False) -> dict[str, Any]:
    """The default job's settings (configs/stsb.yaml); without its teacher when the user names their own."""
    values = read_config(default_recipe_path())
    if own_teacher:
        values = {key: value for key, value in values.items() if key not in TEACHER_KEYS}
    logger.info("no data given: the default job, STS-B from %s", Path(values["train_file"]).parent)
    return values


def rename_deprecated_flags(argv: list[str]) -> list[str]:
    """Old flag names (`DEPRECATED_NAMES`) replaced by the new ones, with a warning for each."""
    out = []
    for token in argv:
        name, sep, value = token.partition("=")
        old = name[2:].replace("-", "_") if name.startswith("--") else None
        if old in DEPRECATED_NAMES:
            new = DEPRECATED_NAMES[old]
            logger.warning("--%s is deprecated and will be removed in the next release: use --%s", old, new)
            token = f"--{new}{sep}{value}"
        out.append(token)
    return out


def read_config(path: str | Path) -> dict[str, Any]:
    """A YAML config's mapping of argument names to values (deprecated names renamed); `ConfigError` if unreadable."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} not found.")
    try:
        values = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of argument names to values.")
    renamed = {}
    for key, value in values.items():
        if key in DEPRECATED_NAMES:
            logger.warning(
                "config file %s: %r is deprecated and will be removed in the next release: use %r", path, key, DEPRECATED_NAMES[key]
            )
            key = DEPRECATED_NAMES[key]
        renamed[key] = value
    return renamed


def load_config_file(path: str | Path, parser: argparse.ArgumentParser | None = None) -> dict[str, Any]:
    """Read a YAML config; a key that no argument has is an error naming the closest valid key."""
    values = read_config(path)
    valid = {action.dest for action in (parser or build_parser())._actions if action.dest not in ("help", "config")}  # no nested configs
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(str(key), sorted(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"config file {path}: unknown key {key!r}.{hint} Run with --help for every valid key.")
    return typed_values(values, path, parser or build_parser())


def typed_values(values: dict[str, Any], path: str | Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A config's values converted to their fields' types (as the command line converts its text) and checked against
    their choices: a value of the wrong type is a `ConfigError` naming the file and key, not a traceback later."""
    hints = field_types(parser)
    choices = {action.dest: action.choices for action in parser._actions if action.choices}
    typed = {}
    for key, value in values.items():
        if key not in hints:
            typed[key] = value
            continue
        try:
            typed[key] = coerce_value(value, hints[key])
        except TypeMismatch as err:
            raise ConfigError(f"config file {path}: {key} must be {err.expected}, got {value!r}.") from None
        allowed = choices.get(key)
        items = typed[key] if isinstance(typed[key], list) else [typed[key]]
        if allowed is not None and any(item is not None and item not in allowed for item in items):
            raise ConfigError(f"config file {path}: {key} must be one of {', '.join(map(str, allowed))}, got {value!r}.")
    return typed


def field_types(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Field name → its resolved type, over the dataclasses of an `HfArgumentParser` (none for a plain parser)."""
    hints: dict[str, Any] = {}
    for cls in getattr(parser, "dataclass_types", ()):
        resolved = get_type_hints(cls)
        hints.update({spec.name: resolved[spec.name] for spec in dataclasses.fields(cls) if spec.init})
    return hints
