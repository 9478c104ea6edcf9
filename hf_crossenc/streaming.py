"""``--streaming``: train from a `datasets.IterableDataset` read row by row, for training data larger than memory or
the disk cache.

The training pairs are never held in memory or written to a cache: a local file (.csv, .tsv, .jsonl, .parquet) is read
record by record, a ``--dataset_name`` split through ``datasets.load_dataset(..., streaming=True)``. Each row gets the
checks of the in-memory path (`hf_crossenc.data.check_text`, `parse_label`, the label scale, the class names) as it
is read, so a bad row stops training with the same message, naming the file, the row (numbered as there: CSV/TSV
header = row 1, JSON Lines by line, Parquet and Hub rows by record) and the column. The columns are resolved from the
header (the first JSON line, the Parquet schema, the dataset's features) by `hf_crossenc.data.resolve_columns`.

What a stream cannot know up front is a flag error before anything is read (`check_streaming` for the flags of
several groups, `DataArguments.check` for the data flags): the number of steps (``--max_steps`` is required), a label
scale inferred from every label (``--label_scale auto``), the classes (classification needs ``--class_names``), and
whatever needs the whole training set (teachers, silver pairs, distillation rounds, soups, ``--train_pair_order both``,
reranking groups). Validation and test splits are read whole (a dataset's through its stream too, so that no split is
prepared in the `datasets` cache). A bad row met while training removes what the run wrote (`removed_on_data_error`).

Order: rows are shuffled in a buffer of ``--shuffle_buffer_size`` pairs seeded by ``--seed`` (``datasets``'
`IterableDataset.shuffle`; each pass over the stream, an "epoch", reshuffles with seed + epoch), so the same seed gives
the same order. Under several processes every process reads the whole stream, in the same order, and keeps its own
share of each global batch (accelerate's `IterableDatasetShard`: ``dispatch_batches`` is set to False unless given), so
no pair is trained twice in a pass and a bad row stops every process at the same batch, each with the same error (with
batches dispatched from the main process the others would wait for a batch that never comes).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from .arguments import DataArguments, TeacherArguments
from .benchmarks import resolve_data_file
from .data import (
    LABEL,
    TEXT_A,
    TEXT_B,
    LabelScale,
    PairColumns,
    Table,
    build_split,
    check_duplicate_columns,
    check_text,
    parse_label,
    parse_label_scale,
    read_table,
    resolve_columns,
)
from .errors import ConfigError, DataError
from .labels import LabelVocab, build_class_split, build_vocab, class_names_of
from .task_data import TaskData
from .training_args import CrossEncoderTrainingArguments

logger = logging.getLogger(__name__)

STREAM_KINDS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
"""Local files that can be read record by record (a .json document has to be parsed whole: not streamable)."""
FIELD_LIMIT = 2**31 - 1
PARQUET_BATCH = 1024


# ---- flags ---------------------------------------------------------------------------------------------------------


def check_streaming(data_args: DataArguments, teacher_args: TeacherArguments, training_args: CrossEncoderTrainingArguments) -> None:
    """With ``--streaming``: `ConfigError` naming both flags for every setting a stream cannot serve (before anything is
    read or loaded); the training sampling becomes sequential (a stream is read in its own, buffer-shuffled order)."""
    if not data_args.streaming:
        return
    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise ConfigError(
            "--streaming needs --max_steps N (N > 0): a stream has no length, so the number of training steps (and the "
            "learning-rate schedule) cannot be derived from --num_train_epochs."
        )
    refused = {
        "--teacher": teacher_args.active or bool(teacher_args.teacher),
        "--silver_pairs": bool(teacher_args.silver_pairs),
        "--silver_file": bool(teacher_args.silver_file),
        "--cross_encoder_teacher": bool(teacher_args.cross_encoder_teacher),
        "--distill_rounds": teacher_args.distill_rounds > 1,
        "--teacher_finetune_epochs": bool(teacher_args.teacher_finetune_epochs),
        "--soup_seeds": bool(training_args.soup_seeds),
        "--average_checkpoints": bool(training_args.average_checkpoints),
        "--dataloader_num_workers": training_args.dataloader_num_workers > 0,
    }
    for flag, given in refused.items():
        if given:
            raise ConfigError(
                f"--streaming cannot be combined with {flag}: "
                + (
                    "a bad row found in a data-loader worker could not be reported by file, row and column; use 0 workers."
                    if flag == "--dataloader_num_workers"
                    else "it needs the whole training set (or its epochs) up front; train without --streaming."
                )
            )
    config = training_args.accelerator_config
    if config is not None and getattr(config, "dispatch_batches", None) is None:
        config.dispatch_batches = False  # every process reads the stream and keeps its share of each batch (see above)
    strategy = str(training_args.train_sampling_strategy)
    if strategy != "sequential":
        order = f"shuffled in a buffer of {data_args.shuffle_buffer_size}" if data_args.shuffle_buffer_size else "unshuffled"
        logger.info(
            "--streaming: pairs are drawn in the stream's order, %s (--train_sampling_strategy %s is for in-memory data)", order, strategy
        )
        training_args.train_sampling_strategy = "sequential"


# ---- the job's data ------------------------------------------------------------------------------------------------


@dataclass
class StreamSplit:
    """The training split as a stream: ``dataset`` yields validated text_a, text_b, label rows. Its length is the
    number of rows read from the stream so far (read-ahead of the shuffle buffer included; the stream's length is
    unknown)."""

    name: str
    source: str
    dataset: datasets.IterableDataset
    columns: PairColumns
    rows: PairRows
    raw_label_stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.rows.rows_read


def load_streaming_task_data(data_args: DataArguments, task: str, seed: int) -> TaskData:
    """The training stream and the in-memory validation/test splits; nothing of the stream but its header (or first
    row) is read here."""
    opened = open_stream(data_args)
    columns = resolve_columns(opened.header, data_args.text_a_column, data_args.text_b_column, data_args.label_column)
    scale = parse_label_scale(data_args.label_scale) or LabelScale()
    assert isinstance(scale, LabelScale)
    vocab = stream_vocab(data_args, opened.source) if task == "classification" else None
    rows = PairRows(opened, columns, scale, vocab, swap_seed=seed if data_args.train_pair_order == "swap" else None)
    rows.limit = data_args.max_train_samples
    label_type = "float32" if vocab is None or vocab.binary else "int64"
    features = datasets.Features({TEXT_A: datasets.Value("string"), TEXT_B: datasets.Value("string"), LABEL: datasets.Value(label_type)})
    dataset = datasets.IterableDataset.from_generator(rows, features=features)
    if data_args.shuffle_buffer_size > 0:
        dataset = dataset.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer_size)
    rows.epoch_of = dataset  # Trainer.set_epoch reaches this one: it reshuffles, and the generator swaps, per pass
    splits: dict[str, Any] = {"train": StreamSplit("train", opened.source, dataset, columns, rows)}
    for name, table in eval_tables(data_args).items():
        split_columns = resolve_columns(
            table,
            data_args.text_a_column or columns.text_a,
            data_args.text_b_column or columns.text_b,
            data_args.label_column or columns.label,
        )
        if vocab is None:
            splits[name] = build_split(table, split_columns, name=name, scale=scale, max_samples=data_args.max_eval_samples)
        else:
            splits[name] = build_class_split(table, split_columns, name=name, vocab=vocab, max_samples=data_args.max_eval_samples)
    return TaskData(task, splits, scale, vocab=vocab)


def eval_tables(data_args: DataArguments) -> dict[str, Table]:
    """The validation and test splits the arguments name, read whole (they are small)."""
    if data_args.dataset_name:
        names = {"validation": data_args.validation_split, "test": data_args.test_split}
        return {split: hub_table(data_args.dataset_name, data_args.dataset_config, hub) for split, hub in names.items() if hub}
    files = {"validation": data_args.validation_file, "test": data_args.test_file}
    return {split: read_table(resolve_data_file(path)) for split, path in files.items() if path}


def hub_table(name: str, config: str | None, split: str) -> Table:
    """One small split of a dataset, read through its stream: `hf_crossenc.data.load_hub_table` would prepare (download
    and cache) every split of the dataset first, the large training split included."""
    source = f"{name}{'/' + config if config else ''} [{split}]"
    rows = list(hub_stream(name, config, split, source))
    return Table(source, hub_columns_of(rows), rows, list(range(1, len(rows) + 1)), "record")


def hub_columns_of(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def stream_vocab(data_args: DataArguments, source: str) -> LabelVocab:
    """The classes of a streamed classification split, from --class_names (0,1 alone: one sigmoid logit, as in memory)."""
    assert data_args.class_names
    names = [name.strip() for name in data_args.class_names.split(",")]
    numeric = all(name.lstrip("-").isdigit() for name in names)
    binary_numbers = numeric and sorted(names) == ["0", "1"] and not data_args.positive_label
    label_names = None if binary_numbers else names
    return build_vocab(names, numeric=numeric, positive_label=data_args.positive_label, label_names=label_names, source=source)


# ---- reading a stream ----------------------------------------------------------------------------------------------


@dataclass
class OpenedStream:
    """A stream's source and header: ``header`` is a `Table` without rows, for `resolve_columns`."""

    source: str
    kind: str  # csv, tsv, jsonl, parquet or hub
    header: Table
    path: str | None = None
    hub: tuple[str, str | None, str] | None = None  # name, config, split


def open_stream(data_args: DataArguments) -> OpenedStream:
    """The training stream's source and columns (the header, the first JSON line, the schema or the features)."""
    if data_args.dataset_name:
        name, config, split = data_args.dataset_name, data_args.dataset_config, data_args.train_split
        source = f"{name}{'/' + config if config else ''} [{split}]"
        columns = hub_columns(hub_stream(name, config, split, source), source)
        return OpenedStream(source, "hub", Table(source, columns, [], [], "record"), hub=(name, config, split))
    assert data_args.train_file
    path = Path(resolve_data_file(data_args.train_file))
    source = str(path)
    kind = STREAM_KINDS.get(path.suffix.lower())
    if kind is None:
        hint = "Convert it to JSON Lines (.jsonl) to stream it." if path.suffix.lower() == ".json" else ""
        raise DataError(
            f"cannot be streamed: {path.suffix or '(no suffix)'!r} files are not read record by record.",
            source=source,
            hint=f"--streaming reads {', '.join(STREAM_KINDS)}. {hint}".strip(),
        )
    if not path.is_file():
        raise DataError("file not found.", source=source, hint="Check the path (it is read relative to the current directory).")
    row_word = {"jsonl": "line", "parquet": "record"}.get(kind, "row")
    columns = next(iter(local_records(source, kind, header_only=True)))[1]
    return OpenedStream(source, kind, Table(source, list(columns), [], [], row_word), path=source)


def hub_stream(name: str, config: str | None, split: str, source: str) -> datasets.IterableDataset:
    try:
        return datasets.load_dataset(name, config, split=split, streaming=True)
    except (FileNotFoundError, ValueError, ConnectionError) as err:  # offline, a Hub id not found: ConnectionError
        raise DataError(f"cannot be loaded: {err}", source=source) from None


def hub_columns(stream: datasets.IterableDataset, source: str) -> list[str]:
    if stream.features is not None:
        return list(stream.features)
    first = next(iter(stream), None)
    if first is None:
        raise DataError("the train split has no data rows.", source=source, hint="Provide at least one row.")
    return list(first)


def local_records(source: str, kind: str, header_only: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, record) of a local file, one at a time; with `header_only` a single (1, {column: None}) first."""
    if kind in ("csv", "tsv"):
        return delimited_records(source, "\t" if kind == "tsv" else ",", header_only)
    if kind == "jsonl":
        return jsonl_records(source, header_only)
    return parquet_records(source, header_only)


class InvalidUtf8(Exception):
    """A byte that is not UTF-8, at a byte offset of the file (`Utf8Lines`)."""

    def __init__(self, byte: str, offset: int) -> None:
        super().__init__(byte, offset)
        self.byte, self.offset = byte, offset

    def error(self, source: str, row: int) -> DataError:
        return DataError(
            f"is not valid UTF-8 (byte 0x{self.byte} at offset {self.offset}).",
            source=source,
            row=row,
            hint="Re-save the file as UTF-8 (for example `iconv -f latin1 -t utf-8`).",
        )


class Utf8Lines:
    """The lines of a file opened in binary, decoded one at a time (a leading UTF-8 byte-order mark dropped): an invalid
    byte is met in the line, so the row, that holds it (a text-mode file decodes whole chunks ahead of the reader)."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.offset = handle, 0

    def __iter__(self) -> Utf8Lines:
        return self

    def __next__(self) -> str:
        raw = next(self.handle)
        start, self.offset = self.offset, self.offset + len(raw)
        if start == 0 and raw.startswith(codecs.BOM_UTF8):
            raw, start = raw[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidUtf8(raw[err.start : err.start + 1].hex(), start + err.start) from None


def delimited_records(source: str, delimiter: str, header_only: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV/TSV records as `hf_crossenc.data.read_table` numbers them (header = row 1; a record is a row even when a
    quoted field spans lines), every field a string."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    name = "TSV" if delimiter == "\t" else "CSV"
    number = 1
    try:
        with open(source, "rb") as handle:
            reader = csv.reader(Utf8Lines(handle), delimiter=delimiter, strict=True)
            header = [column.strip() for column in next(reader, [])]
            if not header:
                raise DataError("is empty: expected a header row and at least one data row.", source=source)
            check_duplicate_columns(header, source)
            if header_only:
                yield 1, dict.fromkeys(header)
                return
            for fields in reader:
                number += 1
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise DataError(
                        f"has {len(fields)} fields but the header has {len(header)} ({', '.join(header)}).",
                        source=source,
                        row=number,
                        hint="Quote fields that contain the separator.",
                    )
                yield number, dict(zip(header, fields))
    except csv.Error as err:
        raise DataError(f"cannot be parsed as {name}: {err}.", source=source, row=number + 1) from None
    except InvalidUtf8 as err:
        raise err.error(source, number + 1) from None


def jsonl_records(source: str, header_only: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """JSON Lines records numbered by line (blank lines skipped, counted)."""
    number = 0
    try:
        with open(source, "rb") as handle:
            for number, line in enumerate(Utf8Lines(handle), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line, object_pairs_hook=unique_keys(source, number))
                except json.JSONDecodeError as err:
                    raise DataError(f"is not valid JSON: {err.msg}.", source=source, row=number) from None
                if not isinstance(record, dict):
                    raise DataError("must be a JSON object with one key per column.", source=source, row=number)
                yield number, (dict.fromkeys(record) if header_only else record)
                if header_only:
                    return
    except InvalidUtf8 as err:
        raise err.error(source, number + 1) from None
    if header_only:
        raise DataError("is empty: expected at least one JSON object.", source=source)


def parquet_records(source: str, header_only: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parquet records numbered from 1, read a batch at a time."""
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(source)
    except Exception as err:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"cannot be read as Parquet: {err}.", source=source) from None
    columns = handle.schema_arrow.names
    check_duplicate_columns(columns, source)
    if header_only:
        yield 1, dict.fromkeys(columns)
        return
    number = 0
    for batch in handle.iter_batches(batch_size=PARQUET_BATCH):
        for record in batch.to_pylist():
            number += 1
            yield number, record


def unique_keys(source: str, number: int) -> Any:
    """`object_pairs_hook` refusing a key that occurs twice in a JSON object (json would keep the last value)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        record = dict(pairs)
        if len(record) != len(pairs):
            seen: set[str] = set()
            key = next(key for key, _ in pairs if key in seen or seen.add(key))
            raise DataError(
                f"the key {key!r} appears more than once in the record (JSON would silently keep its last value).",
                source=source,
                row=number,
                column=key,
                hint="Give every key a distinct name.",
            )
        return record

    return hook


class PairRows:
    """The generator of a training stream (for `datasets.IterableDataset.from_generator`): each record checked and
    turned into a text_a, text_b, label row, or a `DataError` naming its file, row and column. With ``swap_seed`` (the
    pair order ``swap``) the texts of a row are exchanged with probability 0.5, decided afresh in each pass over the
    stream by (seed, pass, row number): the pass is the ``epoch`` of ``epoch_of`` (the dataset the Trainer sets it on),
    so a resumed run swaps as the uninterrupted one did."""

    def __init__(
        self, opened: OpenedStream, columns: PairColumns, scale: LabelScale, vocab: LabelVocab | None, swap_seed: int | None
    ) -> None:
        self.opened, self.columns, self.scale, self.vocab, self.swap_seed = opened, columns, scale, vocab, swap_seed
        self.limit: int | None = None
        self.rows_read = 0
        self.epoch_of: datasets.IterableDataset | None = None
        self.epoch = 0

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        opened = self.opened
        if opened.hub is None:
            assert opened.path is not None
            yield from local_records(opened.path, opened.kind)
            return
        for index, record in enumerate(hub_stream(*opened.hub, opened.source)):
            yield index + 1, record

    def __call__(self) -> Iterator[dict[str, Any]]:
        count = 0
        self.epoch = int(self.epoch_of.epoch) if self.epoch_of is not None else 0
        for number, record in self.records():
            if self.limit is not None and count >= self.limit:
                return
            count += 1
            self.rows_read = max(self.rows_read, count)
            yield self.pair(number, record)
        if count == 0:
            raise DataError("the train split has no data rows.", source=self.opened.source, hint="Provide at least one row.")

    def pair(self, number: int, record: dict[str, Any]) -> dict[str, Any]:
        columns = self.columns
        table = Table(self.opened.source, self.opened.header.columns, [record], [number], self.opened.header.row_word)
        text_a = check_text(record.get(columns.text_a), table, 0, columns.text_a)
        text_b = check_text(record.get(columns.text_b), table, 0, columns.text_b)
        if self.swap_seed is not None and np.random.default_rng([self.swap_seed, self.epoch, number]).random() < 0.5:
            text_a, text_b = text_b, text_a
        assert columns.label is not None
        label = self.class_label(record, table) if self.vocab is not None else self.score(record, table)
        return {TEXT_A: text_a, TEXT_B: text_b, LABEL: label}

    def score(self, record: dict[str, Any], table: Table) -> float:
        column, scale = self.columns.label, self.scale
        assert column is not None
        value = parse_label(record.get(column), table, 0, column)
        if not scale.low - 1e-9 <= value <= scale.high + 1e-9:
            hint = (
                "Declare the scale the labels use, e.g. --label_scale 0,5 for STS scores."
                if scale.is_identity
                else f"Fix the row or widen --label_scale (now {scale.low:g},{scale.high:g})."
            )
            raise DataError(
                f"the label {value:g} lies outside the label scale [{scale.low:g}, {scale.high:g}].",
                source=table.source,
                row=table.locate(0),
                column=column,
                hint=hint,
            )
        return min(1.0, max(0.0, scale.normalise(value)))

    def class_label(self, record: dict[str, Any], table: Table) -> float | int:
        column, vocab = self.columns.label, self.vocab
        assert column is not None and vocab is not None
        name = class_names_of([record], column, table.source, table.locate)[0]
        index = vocab.index(name)
        if index is None:
            raise DataError(
                f"the label {name!r} is not one of the classes of --class_names ({', '.join(vocab.names)}).",
                source=table.source,
                row=table.locate(0),
                column=column,
                hint="Add the class to --class_names or fix the row.",
            )
        return float(index) if vocab.binary else index


# ---- nothing half-written ------------------------------------------------------------------------------------------


def output_entries(output_dir: str) -> set[str] | None:
    """The names in `output_dir` now (None: it does not exist), for `removed_on_data_error`."""
    folder = Path(output_dir)
    return {entry.name for entry in folder.iterdir()} if folder.is_dir() else None


@contextmanager
def removed_on_data_error(output_dir: str, before: set[str] | None, main_process: bool = True) -> Iterator[None]:
    """A bad row read mid-training (`DataError`) removes what the run wrote since `before` (`output_entries`; the whole
    folder when it did not exist), then the error goes on: the exit is 2 and nothing is half-written."""
    try:
        yield
    except DataError:
        folder = Path(output_dir)
        if main_process and folder.is_dir():
            if before is None:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                for entry in folder.iterdir():
                    if entry.name not in before:
                        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            logger.error("a bad training row stopped the run: what it wrote to %s is removed", output_dir)
        raise
