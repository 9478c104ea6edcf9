"""Reranking data: query groups in the three shapes people have, and listwise training groups.

Accepted shapes (detected from the columns):

* **rows** — ``query, passage, label`` with 0/1 labels, one candidate per row, grouped by query
  text (e.g. TREC QA's ``question,answer,label``);
* **positive/negatives** — ``query, positive, negative_1 ... negative_n`` (or one ``negative``
  column, or a ``negatives`` list); empty negative cells are ignored;
* **lists** — ``query, passages, labels`` where both are lists of equal length (JSON, JSONL or
  Parquet).

Every shape becomes a list of `QueryGroup` (query, candidate passages, 0/1 labels). Pointwise
training and all evaluation use the flattened (query, passage, label, group id) pairs; listwise
training uses one example per (query, positive) whose negatives are drawn afresh every epoch by
`ListwiseSampler`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
from transformers import TrainerCallback

from .data import GROUP, LABEL, NEGATIVES, TARGETS, TEXT_A, TEXT_A_CANDIDATES, TEXT_B, Table, check_text
from .errors import DataError
from .query_groups import QueryGroup, _relevance

logger = logging.getLogger(__name__)

INDEX = "example_index"
PASSAGE_CANDIDATES = ("passage", "document", "answer", "text", "sentence", "candidate", "doc")
PASSAGE_LIST_CANDIDATES = ("passages", "documents", "docs", "candidates", "texts", "answers")
LABEL_LIST_CANDIDATES = ("labels", "relevance", "label", "scores")
POSITIVE_CANDIDATES = ("positive", "pos", "positive_passage", "positive_document")
NEGATIVE_PATTERN = re.compile(r"^(neg|negative|hard_negative)(_?(\d+))?$", re.IGNORECASE)
LABEL_CANDIDATES = ("label", "labels", "relevance", "score", "is_relevant")


@dataclass
class RankingSplit:
    """A validated reranking split: its groups and the flattened pair dataset."""

    name: str
    source: str
    shape: str
    groups: list[QueryGroup]
    dataset: datasets.Dataset
    raw_label_stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.dataset)


def _pick(table: Table, explicit: str | None, candidates: tuple[str, ...]) -> str | None:
    if explicit:
        return explicit if explicit in table.columns else None
    lowered = {c.lower(): c for c in table.columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _negative_columns(table: Table) -> list[str]:
    matched = [(c, NEGATIVE_PATTERN.match(c)) for c in table.columns]
    found = [(int(m.group(3) or 0), c) for c, m in matched if m]
    return [c for _, c in sorted(found)]


def _first_row(table: Table) -> dict[str, Any]:
    """The first row (only that row of an Arrow table is read)."""
    arrow = getattr(table, "arrow", None)
    if arrow is not None:
        return arrow.slice(0, 1).to_pylist()[0] if arrow.num_rows else {}
    return table.rows[0] if table.rows else {}


def detect_shape(table: Table, query_column: str | None = None, passage_column: str | None = None, label_column: str | None = None) -> str:
    """'lists', 'positive_negatives' or 'rows' (see the module docstring)."""
    first = _first_row(table)
    lists = _pick(table, passage_column, PASSAGE_LIST_CANDIDATES)
    if lists and isinstance(first.get(lists), list | tuple | np.ndarray):
        return "lists"
    if _pick(table, None, POSITIVE_CANDIDATES) and not (passage_column and label_column):
        return "positive_negatives"
    return "rows"


def _add_list_rows(table: Table, rows: list[dict[str, Any]], group_of: Any, passage_column: str | None, label_column: str | None) -> None:
    """The "lists" shape: each row's query with a list of passages and a list of 0/1 labels of the same length."""
    passages_col = _pick(table, passage_column, PASSAGE_LIST_CANDIDATES)
    labels_col = _pick(table, label_column, LABEL_LIST_CANDIDATES)
    if labels_col is None:
        raise DataError(
            f"a passages list column {passages_col!r} but no labels list column (looked for {', '.join(LABEL_LIST_CANDIDATES)}).",
            source=table.source,
            hint="Add a 'labels' list of 0/1 of the same length, or set --label_column.",
        )
    for i, row in enumerate(rows):
        passages, labels = row.get(passages_col), row.get(labels_col)
        if not isinstance(passages, list | tuple | np.ndarray) or not isinstance(labels, list | tuple | np.ndarray):
            raise DataError(
                f"{passages_col!r} and {labels_col!r} must both be lists.", source=table.source, row=table.locate(i), column=labels_col
            )
        if len(passages) != len(labels):
            raise DataError(
                f"{len(passages)} passages but {len(labels)} labels.", source=table.source, row=table.locate(i), column=labels_col
            )
        group = group_of(i)
        for k, (passage, label) in enumerate(zip(passages, labels)):
            text = check_text(passage, table, i, f"{passages_col}[{k}]")
            group.add(text, _relevance(label, table, i, labels_col, k))


def _arrow_shape_groups(
    table: Table, shape: str, query_col: str, passage_column: str | None, label_column: str | None, max_samples: int | None
) -> Any:
    """The "lists" and "positive_negatives" shapes of an `ArrowTable`, flattened over Arrow (`hf_crossenc.arrow_shapes`);
    None where a query has no candidates (the row path keeps such a query)."""
    from . import arrow_shapes

    if shape == "lists":
        _add_list_rows(table, [], None, passage_column, label_column)  # no rows: only its labels column check
        lists = (_pick(table, passage_column, PASSAGE_LIST_CANDIDATES), _pick(table, label_column, LABEL_LIST_CANDIDATES))
        return arrow_shapes.list_groups(table, query_col, *lists, max_samples)  # type: ignore[arg-type]
    negatives = (_negative_columns(table), _pick(table, None, ("negatives", "hard_negatives")))
    positive = _pick(table, None, POSITIVE_CANDIDATES)
    return arrow_shapes.positive_negative_groups(table, query_col, positive, *negatives, max_samples)  # type: ignore[arg-type]


def read_groups(
    table: Table,
    *,
    query_column: str | None = None,
    passage_column: str | None = None,
    label_column: str | None = None,
    max_samples: int | None = None,
) -> tuple[str, list[QueryGroup]]:
    """Validate a reranking table and group its candidates by query. Returns (shape, groups)."""
    if not _first_row(table):
        raise DataError("the split has no data rows.", source=table.source, hint="Provide at least one row.")
    shape = detect_shape(table, query_column, passage_column, label_column)
    query_col = _pick(table, query_column, TEXT_A_CANDIDATES)
    if query_col is None:
        raise DataError(
            f"no query column found among {table.columns} (looked for {', '.join(TEXT_A_CANDIDATES)}).",
            source=table.source,
            row=1 if table.row_word == "row" else None,
            column=query_column,
            hint="Name it with --text_a_column.",
        )
    arrow_rows = shape == "rows" and getattr(table, "arrow", None) is not None
    if shape != "rows" and getattr(table, "arrow", None) is not None:
        flat = _arrow_shape_groups(table, shape, query_col, passage_column, label_column, max_samples)
        if flat is not None:  # None: a query without candidates, which the rows below keep
            return shape, flat
    rows = [] if arrow_rows else table.rows if max_samples is None else table.rows[:max_samples]
    groups: dict[str, QueryGroup] = {}

    def group_of(i: int) -> QueryGroup:
        query = check_text(rows[i].get(query_col), table, i, query_col)
        if query not in groups:
            groups[query] = QueryGroup(query, row=table.locate(i))
        return groups[query]

    if shape == "lists":
        _add_list_rows(table, rows, group_of, passage_column, label_column)
    elif shape == "positive_negatives":
        pos_col = _pick(table, None, POSITIVE_CANDIDATES)
        neg_cols = _negative_columns(table)
        list_col = _pick(table, None, ("negatives", "hard_negatives"))
        for i, row in enumerate(rows):
            group = group_of(i)
            group.add(check_text(row.get(pos_col), table, i, pos_col), 1)
            for col in neg_cols:
                value = row.get(col)
                if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and np.isnan(value)):
                    continue  # fewer negatives on this row
                group.add(check_text(value, table, i, col), 0)
            if list_col and isinstance(row.get(list_col), list | tuple | np.ndarray):
                for k, value in enumerate(row[list_col]):
                    group.add(check_text(value, table, i, f"{list_col}[{k}]"), 0)
    else:
        passage_col = _pick(table, passage_column, PASSAGE_CANDIDATES + ("sentence2", "text_b", "text2"))
        label_col = _pick(table, label_column, LABEL_CANDIDATES)
        for role, col, flag in (("passage", passage_col, "--text_b_column"), ("label", label_col, "--label_column")):
            if col is None:
                raise DataError(
                    f"no {role} column found among {table.columns}: reranking rows need query, passage and 0/1 label columns "
                    "(or query, positive, negative_1..n; or query, passages, labels lists).",
                    source=table.source,
                    row=1 if table.row_word == "row" else None,
                    hint=f"Name it with {flag}.",
                )
        if arrow_rows:  # query groups as arrays over the Arrow columns (hf_crossenc.arrow_ranking)
            from .arrow_ranking import arrow_groups

            return shape, arrow_groups(table, query_col, passage_col, label_col, max_samples)  # type: ignore[arg-type]
        for i, row in enumerate(rows):
            group = group_of(i)
            group.add(check_text(row.get(passage_col), table, i, passage_col), _relevance(row.get(label_col), table, i, label_col))
    return shape, list(groups.values())


def group_stats(groups: list[QueryGroup]) -> dict[str, Any]:
    """Counts for logs and the model card."""
    if hasattr(groups, "stats"):
        return groups.stats()  # ArrowGroups: from arrays
    positives = sum(sum(g.labels) for g in groups)
    candidates = sum(len(g.labels) for g in groups)
    return {
        "queries": len(groups),
        "candidates": candidates,
        "positives": positives,
        "negatives": candidates - positives,
        "queries_without_positive": sum(1 for g in groups if not any(g.labels)),
        "queries_without_negative": sum(1 for g in groups if all(g.labels)),
    }


def pair_dataset(groups: list[QueryGroup]) -> datasets.Dataset:
    """Flattened (query, passage, 0/1 label, group id) pairs: pointwise training and evaluation."""
    data: dict[str, list[Any]] = {TEXT_A: [], TEXT_B: [], LABEL: [], GROUP: []}
    for gid, group in enumerate(groups):
        for passage, label in zip(group.passages, group.labels):
            data[TEXT_A].append(group.query)
            data[TEXT_B].append(passage)
            data[LABEL].append(float(label))
            data[GROUP].append(gid)
    features = datasets.Features(
        {
            TEXT_A: datasets.Value("string"),
            TEXT_B: datasets.Value("string"),
            LABEL: datasets.Value("float32"),
            GROUP: datasets.Value("int64"),
        }
    )
    return datasets.Dataset.from_dict(data, features=features)


def build_ranking_split(table: Table, *, name: str, max_samples: int | None = None, **columns: str | None) -> RankingSplit:
    shape, groups = read_groups(table, max_samples=max_samples, **columns)
    dataset = groups.pairs if hasattr(groups, "pairs") else pair_dataset(groups)
    stats = group_stats(groups)
    if stats["queries_without_positive"] or stats["queries_without_negative"]:
        logger.warning(
            "%s (%s): %d of %d queries have no relevant candidate and %d no irrelevant one; they cannot be ranked and are "
            "skipped (and counted) by the ranking metrics",
            table.source,
            name,
            stats["queries_without_positive"],
            stats["queries"],
            stats["queries_without_negative"],
        )
    return RankingSplit(name=name, source=table.source, shape=shape, groups=groups, dataset=dataset, raw_label_stats=stats)


def check_pointwise_training(groups: list[QueryGroup], source: str = "training data") -> None:
    """Pointwise reranking training (``--loss bce``) refuses data in which no query has a relevant candidate, as listwise
    training does (`listwise_dataset`): a reranker trained on it would only learn that nothing is relevant."""
    labels = getattr(groups, "labels", None)
    if not (labels.any() if labels is not None else any(any(group.labels) for group in groups)):
        raise DataError(
            f"no training query has a relevant (label 1) candidate: all {len(groups)} queries have none, so a reranker "
            "cannot learn what is relevant.",
            source=source,
            hint="Check the label column (1 = relevant, 0 = not relevant).",
        )


# --------------------------------------------------------------------------------------------
# Listwise training groups
# --------------------------------------------------------------------------------------------


def listwise_dataset(groups: list[QueryGroup], source: str = "training data") -> datasets.Dataset:
    """One example per (query, positive): text_a = query, text_b = the positive, negatives = the query's labelled negatives.

    Queries without a relevant candidate cannot form a group and are skipped (counted in the log);
    if no group at all can be formed the data is unusable for listwise training: an error.
    """
    if hasattr(groups, "pairs"):  # ArrowGroups: the examples as Arrow columns
        from .arrow_ranking import listwise_arrow_dataset

        dataset, skipped = listwise_arrow_dataset(groups)  # type: ignore[arg-type]
        _check_listwise(len(dataset), skipped, len(groups), source)
        return dataset
    data: dict[str, list[Any]] = {TEXT_A: [], TEXT_B: [], NEGATIVES: [], GROUP: []}
    skipped = 0
    for gid, group in enumerate(groups):
        positives = group.positives
        if not positives:
            skipped += 1
            continue
        for positive in positives:
            data[TEXT_A].append(group.query)
            data[TEXT_B].append(positive)
            data[NEGATIVES].append(group.negatives)
            data[GROUP].append(gid)
    _check_listwise(len(data[TEXT_A]), skipped, len(groups), source)
    features = datasets.Features(
        {
            TEXT_A: datasets.Value("string"),
            TEXT_B: datasets.Value("string"),
            NEGATIVES: datasets.Sequence(datasets.Value("string")),
            GROUP: datasets.Value("int64"),
        }
    )
    return datasets.Dataset.from_dict(data, features=features)


def _check_listwise(examples: int, skipped: int, queries: int, source: str) -> None:
    if not examples:
        raise DataError(
            "no training group can be formed: listwise training needs queries with at least one relevant (label 1) candidate, "
            f"and all {queries} queries have none.",
            source=source,
            hint="Check the label column, or train pointwise with --loss bce.",
        )
    if skipped:
        logger.warning("listwise training: %d of %d queries have no relevant candidate and form no group (skipped)", skipped, queries)


class _Positives:
    """Each query's positives, read from `ArrowGroups` when a group needs topping up."""

    def __init__(self, groups: Any) -> None:
        self.groups = groups

    def get(self, group: int, default: Any = None) -> set[str]:
        return self.groups.positives_of(group) if 0 <= group < len(self.groups) else default


class ListwiseSampler(TrainerCallback):
    """Chooses each example's negatives, afresh every epoch: a `datasets` transform driven by a callback.

    Example ``i`` in epoch ``e`` gets ``group_size - 1`` negatives drawn (seed, e, i)-deterministically
    from its query's labelled negatives; if the query has too few, random passages of *other*
    queries (never one of its own positives) top the group up. Resumed runs therefore see the same
    groups as uninterrupted ones. With a bi-encoder ``teacher``, each group's target is
    ``(1 - teacher_weight)·one-hot + teacher_weight·softmax(cosine / temperature)`` instead of the
    one-hot on the positive. With a trained ``reranker`` too (anything with ``logits(pairs)``, e.g.
    :class:`~hf_crossenc.CrossEncoderPredictor`), the teacher's distribution is
    ``(1 - reranker_share)·softmax(cosine / temperature) + reranker_share·softmax(reranker logits)``;
    its logits are computed once per (query, passage) and remembered. Use as
    ``dataset.with_transform(sampler)`` and pass the sampler to the Trainer as a callback so it
    knows the epoch.
    """

    def __init__(
        self,
        groups: list[QueryGroup],
        group_size: int,
        seed: int,
        teacher: Any = None,
        teacher_weight: float = 0.0,
        temperature: float = 0.05,
        reranker: Any = None,
        reranker_share: float = 0.0,
    ) -> None:
        if group_size < 2:
            raise ValueError(f"a listwise group needs a positive and at least one negative: group size {group_size}")
        self.group_size, self.seed = group_size, seed
        self.epoch = 0
        arrow = hasattr(groups, "pairs")  # ArrowGroups: no Python copy of every passage
        if arrow:
            from .arrow_ranking import PassagePool

            self.pool: Any = PassagePool(groups)
        else:
            self.pool = list(dict.fromkeys(p for g in groups for p in g.passages))
        self.positives: Any = _Positives(groups) if arrow else {gid: set(g.positives) for gid, g in enumerate(groups)}
        self.topped_up = 0
        if not (self.pool.has_at_least(group_size) if arrow else len(self.pool) >= group_size):
            raise DataError(
                f"listwise groups of {group_size} passages need at least that many distinct passages; the data has {len(self.pool)}.",
                source="training data",
                hint="Lower --train_group_size.",
            )
        self.teacher_weight, self.temperature = teacher_weight, temperature
        self.embeddings: dict[str, np.ndarray] = {}
        if teacher is not None and teacher_weight > 0:
            texts = list(dict.fromkeys([g.query for g in groups] + list(self.pool)))
            self.embeddings = dict(zip(texts, teacher.encode(texts)))
        self.reranker = reranker if teacher_weight > 0 else None
        self.reranker_share = reranker_share
        self.logits: dict[tuple[str, str], float] = {}
        if self.reranker is not None:
            self.score([(g.query, p) for g in groups for p in g.passages])

    def score(self, pairs: list[tuple[str, str]]) -> None:
        """Remember the reranker's logits of the (query, passage) pairs it has not scored yet."""
        missing = list(dict.fromkeys(pair for pair in pairs if pair not in self.logits))
        if missing:
            self.logits.update(zip(missing, (float(x) for x in self.reranker.logits(missing))))

    def targets(self, query: str, passages: list[str]) -> list[float]:
        """The group's target distribution (positive first): one-hot, mixed with the teacher's softmax if any."""
        from .distillation import group_targets

        if not self.embeddings and self.reranker is None:
            return [1.0] + [0.0] * (len(passages) - 1)
        cosine = None
        if self.embeddings:
            q = self.embeddings[query]
            cosine = np.array([float(q @ self.embeddings[p]) for p in passages])
        logits = None
        if self.reranker is not None:
            self.score([(query, p) for p in passages])
            logits = np.array([self.logits[(query, p)] for p in passages])
        return group_targets(cosine, self.teacher_weight, self.temperature, logits, self.reranker_share).tolist()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.epoch = int(state.epoch or 0)

    def choose(self, index: int, negatives: list[str], group: int, query: str) -> list[str]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        need = self.group_size - 1
        chosen = [negatives[k] for k in rng.permutation(len(negatives))[:need]] if negatives else []
        if len(chosen) < need:
            self.topped_up += 1
            taken = set(chosen) | self.positives.get(group, set()) | {query}
            for _ in range(20 * need):  # rejection sampling: the pool is normally far larger than the group
                candidate = self.pool[int(rng.integers(len(self.pool)))]
                if candidate not in taken:
                    chosen.append(candidate)
                    taken.add(candidate)
                    if len(chosen) == need:
                        return chosen
            for k in rng.permutation(len(self.pool)):  # small pools: scan them
                if len(chosen) == need:
                    break
                if self.pool[k] not in taken:
                    chosen.append(self.pool[k])
                    taken.add(self.pool[k])
            if not chosen:
                raise DataError(f"no negative passage is available for the query {query!r}.", source="training data")
            chosen += [chosen[k % len(chosen)] for k in range(need - len(chosen))]  # tiny data: repeat negatives
        return chosen

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if NEGATIVES not in batch or INDEX not in batch:
            return batch  # a column read such as dataset["length"]
        chosen = [
            self.choose(int(i), list(negs), int(g), q) for i, negs, g, q in zip(batch[INDEX], batch[NEGATIVES], batch[GROUP], batch[TEXT_A])
        ]
        if self.reranker is not None:  # top-up passages of other queries: score the batch's new pairs at once
            self.score([(q, n) for q, negs in zip(batch[TEXT_A], chosen) for n in negs])
        targets = [self.targets(q, [p, *negs]) for q, p, negs in zip(batch[TEXT_A], batch[TEXT_B], chosen)]
        return {**batch, NEGATIVES: chosen, TARGETS: targets}
