"""The validated splits of a job: every split read, checked and normalised for its task before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .arguments import DataArguments
from .arrow_classes import arrow_class_names, build_arrow_class_split
from .arrow_data import ArrowTable, build_arrow_split, open_hub_table, open_table, raw_arrow_labels
from .benchmarks import resolve_data_file
from .data import (
    TEXT_A,
    TEXT_B,
    LabelScale,
    PairColumns,
    PairSplit,
    Table,
    build_split,
    infer_label_scale,
    parse_label_scale,
    raw_labels,
    resolve_columns,
)
from .errors import DataError
from .labels import LabelVocab, build_class_split, build_vocab, class_names
from .ranking import build_ranking_split
from .training_args import split_list


def read_split_tables(data_args: DataArguments) -> dict[str, Table | ArrowTable]:
    """Every split the arguments name, read; a missing benchmark file of the shipped configs (``../shared/data/...``)
    is read from the user cache instead, fetched there first if needed (`hf_crossenc.benchmarks.resolve_data_file`)."""
    tables: dict[str, Table | ArrowTable] = {}
    if data_args.dataset_name:
        names = {"train": data_args.train_split, "validation": data_args.validation_split, "test": data_args.test_split}
        for split, hub_split in names.items():
            if hub_split:
                tables[split] = open_hub_table(data_args.dataset_name, hub_split, data_args.dataset_config)
    else:
        files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
        for split, path in files.items():
            if path:
                tables[split] = open_table(resolve_data_file(path))
    return tables


def load_splits(data_args: DataArguments) -> tuple[dict[str, PairSplit], LabelScale]:
    """Read, validate and normalise every split; the label scale comes from the flag or the training labels."""
    tables = read_split_tables(data_args)
    train = tables["train"]
    columns = resolve_columns(train, data_args.text_a_column, data_args.text_b_column, data_args.label_column)
    scale = parse_label_scale(data_args.label_scale)
    if scale == "auto":
        try:
            scale = infer_label_scale(labels_of(train, columns)) if _has_rows(train) else LabelScale()
        except ValueError as err:
            raise DataError(f"{err}.", source=train.source, column=columns.label) from None
    scale = scale or LabelScale()
    splits: dict[str, PairSplit] = {}
    for name, table in tables.items():
        split_columns = (
            columns
            if table is train
            else resolve_columns(
                table,
                data_args.text_a_column or columns.text_a,
                data_args.text_b_column or columns.text_b,
                data_args.label_column or columns.label,
            )
        )
        limit = data_args.max_train_samples if name == "train" else data_args.max_eval_samples
        splits[name] = pair_split(table, split_columns, name=name, scale=scale, max_samples=limit)
    return splits, scale


def _has_rows(table: Table | ArrowTable) -> bool:
    return bool(len(table)) if isinstance(table, ArrowTable) else bool(table.rows)


def labels_of(table: Table | ArrowTable, columns: PairColumns) -> Any:
    """The parsed raw labels of a table (a list, or a numpy array for an `ArrowTable`)."""
    return raw_arrow_labels(table, columns) if isinstance(table, ArrowTable) else raw_labels(table, columns)


def pair_split(table: Table | ArrowTable, columns: PairColumns, **kwargs: Any) -> PairSplit:
    """`build_split`, over Arrow chunks for an `ArrowTable` (`hf_crossenc.arrow_data.build_arrow_split`)."""
    return build_arrow_split(table, columns, **kwargs) if isinstance(table, ArrowTable) else build_split(table, columns, **kwargs)


def class_split(table: Table | ArrowTable, columns: PairColumns, **kwargs: Any) -> PairSplit:
    """`build_class_split`, over Arrow chunks for an `ArrowTable` (`hf_crossenc.arrow_classes`)."""
    if isinstance(table, ArrowTable):
        return build_arrow_class_split(table, columns, **kwargs)
    return build_class_split(table, columns, **kwargs)


def table_class_names(table: Table | ArrowTable, columns: PairColumns, max_samples: int | None = None) -> tuple[list[str], bool]:
    """The class names `build_vocab` reads (every row's, or for an `ArrowTable` the distinct ones in order of first
    appearance: the same vocabulary) and whether they are numbers."""
    if isinstance(table, ArrowTable):
        return arrow_class_names(table, columns, max_samples)
    return class_names(table, columns, max_samples)


@dataclass
class TaskData:
    """The validated splits of a job, with what the task needs to know about the labels."""

    task: str
    splits: dict[str, Any]  # PairSplit (regression, classification) or RankingSplit (reranking)
    scale: LabelScale = field(default_factory=LabelScale)
    vocab: LabelVocab | None = None
    silver: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


def load_task_data(data_args: DataArguments, task: str, silver_file: str | None = None) -> TaskData:
    """Read and validate every split for the task, and the pairs of every `silver_file` (regression; nothing is written
    before this succeeds)."""
    if task == "regression":
        splits, scale = load_splits(data_args)
        return TaskData(task, dict(splits), scale, silver=read_silver_files(silver_file))
    tables = read_split_tables(data_args)
    limits = {name: data_args.max_train_samples if name == "train" else data_args.max_eval_samples for name in tables}
    if task == "reranking":
        splits = {
            name: build_ranking_split(
                table,
                name=name,
                max_samples=limits[name],
                query_column=data_args.text_a_column,
                passage_column=data_args.text_b_column,
                label_column=data_args.label_column,
            )
            for name, table in tables.items()
        }
        return TaskData(task, splits)
    train = tables["train"]
    columns = resolve_columns(train, data_args.text_a_column, data_args.text_b_column, data_args.label_column)
    names, numeric = table_class_names(train, columns, limits["train"])
    vocab = build_vocab(
        names,
        numeric=numeric,
        positive_label=data_args.positive_label,
        label_names=[n.strip() for n in data_args.class_names.split(",")] if data_args.class_names else None,
        source=train.source,
    )
    splits = {}
    for name, table in tables.items():
        split_columns = columns if table is train else resolve_columns(table, columns.text_a, columns.text_b, columns.label)
        splits[name] = class_split(table, split_columns, name=name, vocab=vocab, max_samples=limits[name])
    return TaskData(task, splits, vocab=vocab)


def read_silver_files(silver_file: str | None) -> dict[str, tuple[list[str], list[str]]]:
    """The validated text pairs of every comma-separated file of --silver_file (labels, if any, are ignored)."""
    out = {}
    for path in split_list(silver_file):
        table = open_table(path)
        columns = resolve_columns(table, require_label=False)
        split = pair_split(table, PairColumns(columns.text_a, columns.text_b, None), name="silver", scale=None)
        out[path] = (split.dataset[TEXT_A], split.dataset[TEXT_B])
    return out
