"""A reranking query with its candidates (`QueryGroup`) and the 0/1 relevance check of one label: what the row reader
(`hf_crossenc.ranking`) and the Arrow reader (`hf_crossenc.arrow_ranking`) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .data import Table
from .errors import DataError


@dataclass
class QueryGroup:
    """One query and its candidate passages with 0/1 relevance labels."""

    query: str
    passages: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    row: int = 0

    @property
    def positives(self) -> list[str]:
        return [p for p, y in zip(self.passages, self.labels) if y == 1]

    @property
    def negatives(self) -> list[str]:
        return [p for p, y in zip(self.passages, self.labels) if y == 0]

    def add(self, passage: str, label: int) -> None:
        if passage in self.passages:  # the same candidate twice: keep the first, relevant wins
            k = self.passages.index(passage)
            self.labels[k] = max(self.labels[k], label)
            return
        self.passages.append(passage)
        self.labels.append(label)


def _relevance(value: Any, table: Table, index: int, column: str, item: int | None = None) -> int:
    where = f" (item {item + 1})" if item is not None else ""
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip() if value is not None else ""
    try:
        number = float(text)
    except ValueError:
        number = None
    if number not in (0.0, 1.0):
        raise DataError(
            f"the relevance label{where} is {value!r}; reranking labels are 0 (not relevant) or 1 (relevant).",
            source=table.source,
            row=table.locate(index),
            column=column,
            hint="Map graded relevance to 0/1 first (e.g. 1 for grade >= 1).",
        )
    return int(number)
