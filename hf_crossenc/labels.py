"""Class labels of pair-classification data: the label vocabulary and its validation.

A label column holds either class numbers (``0``/``1``, ``0``/``1``/``2``, ``true``/``false``) or
class names (``entailment``, ``neutral``, ...). The vocabulary is read from the training split:

* numbers ⊆ {0, 1} (or booleans) → **binary**: one logit, sigmoid, BCE; class 1 is the positive class;
* names with ``--positive_label NAME`` and exactly two classes → binary with that class positive;
* anything else → **multi-class**: one logit per class, softmax, cross-entropy; ids in sorted order
  (numbers numerically, names alphabetically) unless ``--class_names`` fixes the order.

A column that mixes numbers and names, a fractional label, or a validation/test label that the
training split never had is an error naming the file, row and column. `class_names` and `build_class_split` read a
table's rows; `hf_crossenc.arrow_classes` does the same over Arrow chunks.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import datasets

from .data import LABEL, TEXT_A, TEXT_B, PairColumns, PairSplit, Table, check_text
from .errors import ConfigError, DataError

logger = logging.getLogger(__name__)

TRUE_WORDS = {"true": 1, "false": 0}


@dataclass(frozen=True)
class LabelVocab:
    """Class names in id order; ``binary`` means one logit whose sigmoid is P(names[1])."""

    names: tuple[str, ...]
    binary: bool

    @property
    def num_labels(self) -> int:
        """Number of logits the model needs (1 for binary)."""
        return 1 if self.binary else len(self.names)

    @property
    def positive(self) -> str | None:
        return self.names[1] if self.binary else None

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names)) if not self.binary else {0: self.names[1]}

    def index(self, name: str) -> int | None:
        try:
            return self.names.index(name)
        except ValueError:
            return None


def kind_and_name(value: Any) -> tuple[str, str] | None:
    """('number', '1') / ('name', 'entailment'); None for an empty cell. Raises ValueError for fractions."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "number", str(int(value))
    if isinstance(value, int | float):
        if not float(value).is_integer():
            raise ValueError(value)
        return "number", str(int(value))
    text = str(value).strip()
    if not text:
        return None
    if text.lower() in TRUE_WORDS:
        return "number", str(TRUE_WORDS[text.lower()])
    try:
        number = float(text)
    except ValueError:
        return "name", text
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(text)
    return "number", str(int(number))


def class_names_of(rows: list[dict[str, Any]], column: str, source: str, locate: Any) -> list[str]:
    """The class name of every row, checking that all labels are of one kind (numbers or names)."""
    names: list[str] = []
    first: tuple[str, int, Any] | None = None  # kind, row, raw value of the first label
    for i, row in enumerate(rows):
        raw = row.get(column)
        try:
            parsed = kind_and_name(raw)
        except ValueError:
            raise DataError(
                f"the label {raw!r} is not a class: classification labels are class numbers (0, 1, 2, ...) or class names.",
                source=source,
                row=locate(i),
                column=column,
                hint="For similarity scores use --task regression.",
            ) from None
        if parsed is None:
            raise DataError("the label is empty.", source=source, row=locate(i), column=column, hint="Every row needs a class label.")
        kind, name = parsed
        if first is None:
            first = (kind, locate(i), raw)
        elif kind != first[0]:
            raise DataError(
                f"mixed label types: {raw!r} is a class {kind} but row {first[1]} has the class {first[0]} {first[2]!r}.",
                source=source,
                row=locate(i),
                column=column,
                hint="A label column holds either class numbers (0, 1, ...) or class names (e.g. entailment), not both.",
            )
        names.append(name)
    return names


def build_vocab(
    names: list[str],
    *,
    numeric: bool,
    positive_label: str | None = None,
    label_names: list[str] | None = None,
    source: str = "training split",
) -> LabelVocab:
    """The label vocabulary of the training labels (see the module docstring for the rules)."""
    seen = Counter(names)
    if label_names:
        missing = [n for n in seen if n not in label_names]
        if missing:
            raise ConfigError(f"--class_names {','.join(label_names)} lacks the class(es) {missing} found in {source}.")
        ordered = tuple(label_names)
    else:
        ordered = tuple(sorted(seen, key=lambda n: (int(n), n) if numeric else (0, n)))
    if positive_label is not None:
        if positive_label not in ordered:
            raise ConfigError(f"--positive_label {positive_label!r} is not a class of {source} (classes: {', '.join(ordered)}).")
        if len(ordered) != 2:
            raise ConfigError(f"--positive_label needs exactly two classes; {source} has {len(ordered)}: {', '.join(ordered)}.")
        negative = next(n for n in ordered if n != positive_label)
        return LabelVocab((negative, positive_label), binary=True)
    if numeric and set(ordered) <= {"0", "1"} and not label_names:
        if len(ordered) < 2:
            logger.warning("the training labels of %s hold one class only (%s)", source, ordered[0])
        return LabelVocab(("0", "1"), binary=True)
    if len(ordered) < 2:
        raise ConfigError(f"{source} has a single class ({ordered[0]!r}): a classifier needs at least two.")
    if len(ordered) == 2 and not numeric:
        logger.info("two named classes %s: training a 2-way softmax; pass --positive_label to train one sigmoid logit instead", ordered)
    return LabelVocab(ordered, binary=False)


def encode_labels(names: list[str], vocab: LabelVocab, source: str, column: str, locate: Any) -> list[float] | list[int]:
    """Class ids (multi-class) or 0/1 floats (binary); a class outside the vocabulary names its row."""
    ids = []
    for i, name in enumerate(names):
        index = vocab.index(name)
        if index is None:
            raise DataError(
                f"the label {name!r} is not a class of the training split (classes: {', '.join(vocab.names)}).",
                source=source,
                row=locate(i),
                column=column,
                hint="Every validation/test class must occur in the training data.",
            )
        ids.append(index)
    return [float(i) for i in ids] if vocab.binary else ids


# --------------------------------------------------------------------------------------------
# Pair classification splits (rows)
# --------------------------------------------------------------------------------------------


def class_names(table: Table, columns: PairColumns, max_samples: int | None = None) -> tuple[list[str], bool]:
    """Class name of every row (validated: one kind of label per column) and whether they are numbers."""
    assert columns.label is not None
    rows = table.rows if max_samples is None else table.rows[:max_samples]
    if not rows:
        raise DataError("the split has no data rows.", source=table.source, hint="Provide at least one row.")
    names = class_names_of(rows, columns.label, table.source, table.locate)
    return names, all(is_integer_text(n) for n in names)


def is_integer_text(name: str) -> bool:
    return name.lstrip("-").isdigit()


def build_class_split(table: Table, columns: PairColumns, *, name: str, vocab: LabelVocab, max_samples: int | None = None) -> PairSplit:
    """Validated classification split: labels are 0/1 floats (binary) or class ids (multi-class)."""
    names, _ = class_names(table, columns, max_samples)
    rows = table.rows[: len(names)]
    texts_a = [check_text(r.get(columns.text_a), table, i, columns.text_a) for i, r in enumerate(rows)]
    texts_b = [check_text(r.get(columns.text_b), table, i, columns.text_b) for i, r in enumerate(rows)]
    assert columns.label is not None
    labels = encode_labels(names, vocab, table.source, columns.label, table.locate)
    dataset = datasets.Dataset.from_dict({TEXT_A: texts_a, TEXT_B: texts_b, LABEL: labels}, features=class_features(vocab))
    counts = dict.fromkeys(vocab.names, 0)
    for n in names:
        counts[n] += 1
    return PairSplit(name=name, source=table.source, dataset=dataset, columns=columns, raw_label_stats={"counts": counts})


def class_features(vocab: LabelVocab) -> datasets.Features:
    """The features of a classification split: labels are float32 0/1 (binary) or int64 class ids."""
    label = datasets.Value("float32") if vocab.binary else datasets.Value("int64")
    return datasets.Features({TEXT_A: datasets.Value("string"), TEXT_B: datasets.Value("string"), LABEL: label})
