"""The allowed values of every numeric and enumerated training argument, checked before anything heavy is loaded.

`RANGES` is the one table of the numeric fields of `ModelArguments`, `DataArguments`, `TeacherArguments` and
`CrossEncoderTrainingArguments` that users set: kind (whole number or number), lower and upper bound, whether None
("unset") is allowed, and when the field is used at all. `check_values(*groups)` checks every field of the groups it
is given against the table, and every field with ``choices`` in its metadata against them, raising `ConfigError`
named as the flag (``--per_device_train_batch_size must be at least 1, got 0.``). It runs in
`CrossEncoderTrainingArguments.__post_init__` and in `hf_crossenc.job.check_arguments`, before any data is read.

`coerce_value` checks (and converts) a YAML config's value against a field's type; `check_max_length` checks
``--max_length`` against the base model's position table, from its config alone.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from .errors import ConfigError

MIN_MAX_LENGTH = 8
"""The shortest --max_length: [CLS] a [SEP] b [SEP] and a few tokens of text."""
MAX_SEED = 2**32 - 1
"""numpy's seeds are 32-bit."""


def _strategy(group: Any, name: str) -> str:
    value = getattr(group, name, None)
    return str(getattr(value, "value", value))


def _steps(strategy: str) -> Callable[[Any], bool]:
    return lambda group: _strategy(group, strategy) == "steps"


@dataclass(frozen=True)
class Rule:
    """The allowed values of a numeric field: ``low`` (inclusive unless ``low_open``) to ``high`` (inclusive unless
    ``high_open``); ``none`` allows None (unset); ``also`` are extra allowed values (e.g. -1 = off), ``note`` says what
    they mean; ``when`` says when the field is used (it is not checked otherwise)."""

    kind: type = int
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none: bool = False
    also: tuple[float, ...] = ()
    note: str = ""
    when: Callable[[Any], bool] | None = None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"lie in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
        elif self.low is not None and self.low_open:
            text = f"be greater than {_num(self.low)}"
        elif self.low == 0:
            text = "be 0 or more"
        elif self.low is not None:
            text = f"be at least {_num(self.low)}"
        else:
            text = f"be at most {_num(self.high)}"
        return f"{text} ({self.note})" if self.note else text

    def allows(self, value: float) -> bool:
        if value in self.also:
            return True
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_FRACTION = {"kind": float, "low": 0.0, "high": 1.0}
RANGES: dict[str, Rule] = {
    # ModelArguments
    "max_length": Rule(low=MIN_MAX_LENGTH),
    "pad_to_multiple_of": Rule(low=0, none=True, note="0 = no rounding"),
    "dropout": Rule(**_FRACTION, high_open=True, none=True),
    "freeze_layers": Rule(low=0),
    # DataArguments
    "max_train_samples": Rule(low=1, none=True),
    "max_eval_samples": Rule(low=1, none=True),
    "shuffle_buffer_size": Rule(low=1, also=(0,), note="or 0: the stream's own order"),
    # TeacherArguments
    "teacher_weight": Rule(**_FRACTION, none=True),
    "silver_pairs": Rule(low=0, none=True),
    "cross_encoder_share": Rule(**_FRACTION),
    "distill_rounds": Rule(low=1),
    "later_rounds_silver_pairs": Rule(low=0),
    "later_rounds_epochs": Rule(kind=float, low=0.0, low_open=True, none=True),
    "later_rounds_dropout": Rule(**_FRACTION, high_open=True, none=True),
    "later_rounds_freeze_layers": Rule(low=0, none=True),
    "teacher_finetune_epochs": Rule(kind=float, low=0.0, none=True),
    "teacher_temperature": Rule(kind=float, low=0.0, low_open=True),
    # CrossEncoderTrainingArguments (transformers' fields and ours)
    "learning_rate": Rule(kind=float, low=0.0, low_open=True),
    "num_train_epochs": Rule(
        kind=float, low=0.0, low_open=True, note="or give --max_steps", when=lambda args: not getattr(args, "max_steps", -1) > 0
    ),
    "max_steps": Rule(low=1, also=(-1,), note="or -1: train --num_train_epochs"),
    "per_device_train_batch_size": Rule(low=1),
    "per_device_eval_batch_size": Rule(low=1),
    "gradient_accumulation_steps": Rule(low=1),
    "eval_accumulation_steps": Rule(low=1, none=True),
    "warmup_steps": Rule(kind=float, low=0.0, note="a ratio of the total steps below 1, else steps"),
    "weight_decay": Rule(kind=float, low=0.0),
    "max_grad_norm": Rule(kind=float, low=0.0, none=True, note="0 = no clipping"),
    "adam_beta1": Rule(**_FRACTION, high_open=True),
    "adam_beta2": Rule(**_FRACTION, high_open=True),
    "adam_epsilon": Rule(kind=float, low=0.0, low_open=True),
    "label_smoothing_factor": Rule(**_FRACTION, high_open=True),
    "logging_steps": Rule(kind=float, low=0.0, low_open=True, when=_steps("logging_strategy")),
    "eval_steps": Rule(kind=float, low=0.0, low_open=True, none=True, when=_steps("eval_strategy")),
    "save_steps": Rule(kind=float, low=0.0, low_open=True, when=_steps("save_strategy")),
    "save_total_limit": Rule(low=1, none=True),
    "seed": Rule(low=0, high=MAX_SEED),
    "data_seed": Rule(low=0, high=MAX_SEED, none=True),
    "dataloader_num_workers": Rule(low=0),
    "torch_empty_cache_steps": Rule(low=1, none=True),
    "train_group_size": Rule(low=2, note="a positive and a negative"),
    "cpu_threads": Rule(low=1, none=True),
    "cpu_kernel_cache": Rule(low=0, note="0 = PyTorch's default"),
    "recompute_above_tokens": Rule(low=0, note="0 = off"),
    "bootstrap_resamples": Rule(low=0, note="0 = no intervals"),
}
"""Field name → its allowed values (names are unique across the four argument groups)."""


def check_values(*groups: Any) -> None:
    """Every `RANGES` field and every field with ``choices`` of the argument dataclasses `groups`: `ConfigError` for
    the first value of the wrong kind or out of range, named as its flag."""
    for group in groups:
        for spec in dataclasses.fields(group):
            value = getattr(group, spec.name, None)
            rule = RANGES.get(spec.name)
            if rule is not None and (rule.when is None or rule.when(group)):
                check_value(spec.name, value, rule)
            choices = spec.metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise ConfigError(f"--{spec.name} must be one of {', '.join(map(str, choices))}, got {value!r}.")


def check_value(name: str, value: Any, rule: Rule) -> None:
    """One value against its rule (`ConfigError` naming ``--name``)."""
    if value is None:
        if rule.none:
            return
        raise ConfigError(f"--{name} must be set, got None.")
    whole = rule.kind is int
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise ConfigError(f"--{name} must be {'a whole number' if whole else 'a number'}, got {value!r}.")
    if not math.isfinite(value):
        raise ConfigError(f"--{name} must be a finite number, got {value}.")
    if not rule.allows(value):
        raise ConfigError(f"--{name} must {rule.describe()}, got {_num(value)}.")


# ---- YAML values against the fields' types ------------------------------------------------------------------------

TRUE_WORDS = ("true", "yes", "y", "t", "on", "1")
FALSE_WORDS = ("false", "no", "n", "f", "off", "0")


class TypeMismatch(Exception):
    """A value that does not fit a type; ``expected`` says what would (e.g. 'a number')."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def coerce_value(value: Any, hint: Any) -> Any:
    """`value` (as YAML gave it) converted to the field type `hint` (int, float, bool, str, Optional/unions, lists,
    Literal, Enum, dict), as the command line would convert its text; `TypeMismatch` when it does not fit."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, get_args(hint))
    if value is None:
        raise TypeMismatch(_expected(hint))
    if origin is Literal:
        if value in get_args(hint):
            return value
        raise TypeMismatch(_expected(hint))
    if origin in (list, tuple):
        item = (get_args(hint) or (Any,))[0]
        return [coerce_value(v, item) for v in (value if isinstance(value, list | tuple) else [value])]
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        raise TypeMismatch("a mapping")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [member.value for member in hint]
        if getattr(value, "value", value) in allowed:
            return getattr(value, "value", value)
        raise TypeMismatch(_expected(hint))
    scalar = _SCALARS.get(hint)
    return value if scalar is None else scalar(value)


def _coerce_union(value: Any, members: tuple[Any, ...]) -> Any:
    if value is None and type(None) in members:
        return None
    members = tuple(m for m in members if m is not type(None))
    for member in members:  # a value that already has one of the types stays as it is
        plain = get_origin(member) is None and isinstance(member, type) and not issubclass(member, enum.Enum)
        if plain and _exactly(value, member):
            return value
    expected = []
    for member in members:
        try:
            return coerce_value(value, member)
        except TypeMismatch as err:
            expected.append(err.expected)
    raise TypeMismatch(" or ".join(dict.fromkeys(expected)))


def _exactly(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeMismatch("a whole number")
    if isinstance(value, int):
        return value
    number = _to_float(value, "a whole number")
    if number.is_integer():
        return int(number)
    raise TypeMismatch("a whole number")


def _to_float(value: Any, expected: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeMismatch(expected)
    try:
        return float(value)  # YAML reads 5e-5 (no dot) as a string
    except ValueError:
        raise TypeMismatch(expected) from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise TypeMismatch("true or false")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # e.g. positive_label: 1
    raise TypeMismatch("a string" + (" (quote it in YAML)" if isinstance(value, bool) else ""))


_SCALARS: dict[Any, Callable[[Any], Any]] = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str}


def _expected(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, get_args(hint)))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(str(member.value) for member in hint)
    if get_origin(hint) in (list, tuple):
        return "a list"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(hint, "a value")


# ---- --max_length against the model's position table -------------------------------------------------------------

OFFSET_POSITIONS = frozenset(
    {"camembert", "data2vec-text", "esm", "ibert", "layoutlmv3", "lilt", "longformer", "luke", "markuplm", "mpnet",
     "roberta", "roberta-prelayernorm", "xlm-roberta", "xlm-roberta-xl", "xmod"}
)  # fmt: skip
"""Model types whose position ids start after the padding index (RoBERTa-style): the first pad_token_id + 1 rows of
their position table are never used by a token."""


def position_limit(config: Any) -> int | None:
    """The most tokens a model of this config can position (None: no absolute position table)."""
    table = getattr(config, "max_position_embeddings", None)
    if not isinstance(table, int) or getattr(config, "position_biased_input", True) is False:
        return None
    if getattr(config, "model_type", None) in OFFSET_POSITIONS:
        table -= (getattr(config, "pad_token_id", None) or 0) + 1
    return table


def check_max_length(model_path: str, max_length: int, flag: str = "--model_name_or_path") -> None:
    """`ConfigError` when --max_length exceeds the model's position table; reads the model's config only."""
    from transformers import AutoConfig

    limit = position_limit(AutoConfig.from_pretrained(model_path))
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"--max_length {max_length} is more than the base model ({flag} {model_path}) can position: its position "
            f"table holds {limit} tokens; use --max_length {limit} or less."
        )
