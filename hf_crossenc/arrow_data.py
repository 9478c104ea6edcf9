"""Pair files as memory-mapped Arrow: read once into the `datasets` cache, validated over chunks, reused at once.

A CSV/TSV or JSONL file is streamed through the very reader `hf_crossenc.data.read_table` uses (same parse, same
errors, same row/line numbers) into an Arrow file in the cache (``$HF_DATASETS_CACHE/hf_crossenc``, named after the
file's path, size and modification time); a JSON document is parsed whole by `read_table` and its records written
there; a Parquet file is copied there batch by batch; a Hub dataset is the Arrow table `datasets` already keeps. The
validated, normalised split (text_a, text_b, label) is written there too, named after the source and everything
that shapes it (columns, label scale, sample limit), so a second run opens both and starts at once; the token lengths
of length-grouped batches are cached beside it by `datasets` (`hf_crossenc.data_collator.add_lengths`).

Nothing holds all texts in Python lists: the checks run over Arrow chunks with `pyarrow.compute`, and the first bad
value is handed to the row-by-row checker of `hf_crossenc.data`, which raises the same error (file, row, column) as the
in-memory path. Whatever the fast path does not reproduce exactly (a malformed or non-UTF-8 file, a TSV whose quotes
need the plain reading, JSON values that Arrow would not give back as read, such as a column of ints and floats) goes
through `read_table` as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import mmap
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .data import (
    LABEL,
    SUPPORTED_SUFFIXES,
    TEXT_A,
    TEXT_B,
    DataError,
    LabelScale,
    PairColumns,
    PairSplit,
    Table,
    check_text,
    delimited_records,
    jsonl_records,
    outside_scale_error,
    parse_label,
    read_table,
)

logger = logging.getLogger(__name__)

ROW = "__row__"
"""Column of the cached source files: each record's row number in the file (header = 1), for error messages."""
FORMAT = "hf_crossenc-arrow-1"
"""Part of every cache key: a new reading or layout gets new files."""
BATCH_ROWS = 65536
STATS_KEY = b"hf_crossenc"
_SPACE = "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x110000)) if c.isspace())
BLANK = f"^[{_SPACE}]*$"
"""A text that `str.strip()` empties (Python's whitespace, exactly), as an RE2 pattern."""
PLAIN_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
"""Decimal numbers that Arrow's cast and `float()` read alike (correctly rounded); any other label goes to `float()`."""


def cache_dir() -> Path:
    """The `datasets` cache as the environment names it now (HF_DATASETS_CACHE, else HF_HOME/datasets)."""
    if os.environ.get("HF_DATASETS_CACHE"):
        base = Path(os.environ["HF_DATASETS_CACHE"])
    else:
        home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
        base = Path(home) / "datasets"
    return base / "hf_crossenc"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([FORMAT, *parts], default=str).encode()).hexdigest()[:32]


@dataclass
class ArrowTable:
    """`hf_crossenc.data.Table`'s counterpart over an Arrow table: the same source, columns and row numbers, without
    the rows in Python (`rows` builds them on demand, for the tasks that still read rows)."""

    source: str
    columns: list[str]
    arrow: pa.Table
    key: str
    row_word: str = "row"
    path: Path | None = None
    """The cached Arrow file: full passes stream it batch by batch (a scan of the memory map would keep every page
    it touched resident, i.e. count the whole file in the process's RSS)."""
    _rows: list[dict[str, Any]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.arrow.num_rows

    def locate(self, index: int) -> int:
        if ROW in self.arrow.column_names:
            return int(self.arrow.column(ROW)[index].as_py())
        return index + 1

    def column(self, name: str, limit: int | None = None) -> pa.ChunkedArray:
        column = self.arrow.column(name)
        return column if limit is None else column.slice(0, limit)

    def batches(self, limit: int | None = None) -> Iterator[pa.RecordBatch]:
        """The first `limit` rows (all: None) as record batches, read from the file when there is one."""
        remaining = len(self) if limit is None else min(limit, len(self))
        if self.path is None:
            yield from self.arrow.slice(0, remaining).to_batches(max_chunksize=BATCH_ROWS)
            return
        with pa.OSFile(str(self.path)) as stream:
            for batch in pa.ipc.open_stream(stream):
                if remaining <= 0:
                    break
                batch = batch.slice(0, remaining) if batch.num_rows > remaining else batch
                remaining -= batch.num_rows
                yield batch

    def chunks(self, name: str, limit: int | None = None) -> Iterator[pa.Array]:
        return (batch.column(name) for batch in self.batches(limit))

    @property
    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            data = self.arrow.drop_columns([ROW]) if ROW in self.arrow.column_names else self.arrow
            self._rows = data.to_pylist()
        return self._rows

    @property
    def row_numbers(self) -> list[int]:
        return [self.locate(i) for i in range(len(self))]


# --------------------------------------------------------------------------------------------
# Reading into the cache
# --------------------------------------------------------------------------------------------


ROW_WORDS = {"parquet": "record", "json": "record", "jsonl": "line"}
"""How each kind of file numbers its records in errors (as `read_table` does); CSV/TSV: "row"."""


def open_table(path: str | Path) -> ArrowTable | Table:
    """A data file as an `ArrowTable` (CSV, TSV, Parquet, JSONL, JSON), else as `read_table` reads it (files the Arrow
    reading does not take exactly: `read_table` then raises their error or reads them as before; a marker in the cache
    sends the next runs there at once, until the file changes)."""
    path = Path(path)
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None or not path.is_file():
        return read_table(path)
    stat = path.stat()
    key = _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns, kind)
    target = cache_dir() / f"source-{key}.arrow"
    rows_only = target.with_suffix(".rows")
    if not target.is_file():
        if rows_only.is_file():
            return read_table(path)
        table = read_table(path) if kind == "json" else None  # a JSON document is parsed whole: its errors are read_table's
        if not _to_arrow(path, kind, target, table):
            with contextlib.suppress(OSError):  # a read-only cache: the next run tries again
                rows_only.parent.mkdir(parents=True, exist_ok=True)
                rows_only.touch()
            return table if table is not None else read_table(path)
    arrow = memory_mapped(target)
    columns = [name for name in arrow.column_names if name != ROW]
    return ArrowTable(str(path), columns, arrow, key, row_word=ROW_WORDS.get(kind, "row"), path=target)


def _to_arrow(path: Path, kind: str, target: Path, table: Table | None) -> bool:
    """Write a data file (a JSON file: its `table`, as read) into `target`; False if the Arrow reading does not take it."""
    if table is not None:
        return _records_to_arrow(zip(table.row_numbers, table.rows), target)
    if kind == "jsonl":
        return _records_to_arrow(jsonl_records(_utf8_lines(path), str(path)), target)
    if kind == "parquet":
        return _parquet_to_arrow(path, target)
    return _delimited_to_arrow(path, target, kind)


_MAPS: list[mmap.mmap] = []
"""The memory maps of the datasets opened by `mapped_dataset`, for `release_mapped_pages`."""


def mapped_dataset(path: Path) -> datasets.Dataset:
    """`datasets.Dataset.from_file(path)` (the same table, features and fingerprint) over a memory map that
    `release_mapped_pages` can unmap the touched pages of. `MemoryMappedTable`'s constructor is not public API: where it
    has changed, the file is opened by `Dataset.from_file` (the same data; its touched pages are not released)."""
    try:
        from datasets.table import MemoryMappedTable
    except ImportError:
        return datasets.Dataset.from_file(str(path))
    return datasets.Dataset(MemoryMappedTable(memory_mapped(path), str(path)))


def release_mapped_pages() -> None:
    """Drop this process's mappings of the cached files' pages it has read (they stay in the page cache, and are
    mapped again when read again). Training reads rows at random, and grouping reads a source file in a scattered
    order: without this, every page touched once stays in the process's RSS, up to the whole file."""
    for mapped in _MAPS:
        if not mapped.closed:
            mapped.madvise(mmap.MADV_DONTNEED)


def memory_mapped(path: Path) -> pa.Table:
    """The Arrow table of a cached file, zero-copy over a memory map that `release_mapped_pages` releases."""
    with path.open("rb") as stream:
        mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    _MAPS.append(mapped)
    return pa.ipc.open_stream(pa.BufferReader(pa.py_buffer(mapped))).read_all()


def _write_batches(target: Path, batches: Any, schema: pa.Schema | None = None) -> bool:
    """Write record batches into `target` (Arrow stream format, as `datasets` keeps its files), atomically; False
    (nothing written) if the batches stop with a `DataError`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pa.ipc.new_stream(str(partial), schema or batch.schema)
            writer.write_batch(batch)
        if writer is None:
            if schema is None:
                return False
            writer = pa.ipc.new_stream(str(partial), schema)  # no rows: an empty file of the schema
        writer.close()
        writer = None
        os.replace(partial, target)
        return True
    except (DataError, UnicodeDecodeError):
        return False
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)


def _delimited_to_arrow(path: Path, target: Path, kind: str) -> bool:
    """Stream a CSV/TSV file into `target`. False for anything the in-memory reader must judge: a malformed or
    non-UTF-8 file (its error names the row as the whole-file reading does), a TSV with quoted tabs or line breaks
    (the plain reading may apply), an empty file, a column named like the row-number column."""
    delimiter = "\t" if kind == "tsv" else ","

    def batches() -> Any:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            header, records = delimited_records(stream, str(path), delimiter)
            if ROW in header:
                raise DataError("reserved column name", source=str(path))
            columns: list[list[str]] = [[] for _ in header]
            numbers: list[int] = []

            def flush() -> pa.RecordBatch:
                arrays = [pa.array(values, pa.string()) for values in columns] + [pa.array(numbers, pa.int64())]
                batch = pa.record_batch(arrays, names=[*header, ROW])
                for values in columns:
                    values.clear()
                numbers.clear()
                return batch

            for number, fields in records:
                if kind == "tsv" and any(("\t" in v or "\n" in v or "\r" in v) for v in fields):
                    raise DataError("quoted tabs or line breaks", source=str(path))
                for values, value in zip(columns, fields):
                    values.append(value)
                numbers.append(number)
                if len(numbers) == BATCH_ROWS:
                    yield flush()
            yield flush()

    return _write_batches(target, batches())


def _utf8_lines(path: Path) -> Iterator[str]:
    """A file's lines split on newlines only, decoded as `read_table` decodes the whole file (UTF-8, a leading BOM
    dropped); a `UnicodeDecodeError` leaves the file to `read_table`, whose error locates the byte."""
    with path.open("rb") as stream:
        for number, line in enumerate(stream):
            yield line.removesuffix(b"\n").decode("utf-8-sig" if number == 0 else "utf-8")


class _Untyped(Exception):
    """The records do not fit Arrow types that give back the very values read (mixed types in a column, ...)."""


def _records_to_arrow(records: Iterable[tuple[int, dict[str, Any]]], target: Path) -> bool:
    """Write JSON records (row number, record) into `target`, `BATCH_ROWS` at a time, columns in order of first
    appearance (as `read_table` lists them), a missing key as null. Every value must come back from Arrow as read:
    one Python type per column (an int and a float would both come back as floats), the same nested values (compared
    as JSON) and one Arrow type per column over all batches; else False (nothing written), and `read_table` it is.
    Batches go to temporary segment files as read (a key first seen late adds a column), then to the final schema."""
    columns: dict[str, None] = {}
    types: dict[str, pa.DataType] = {}
    vague: dict[str, pa.DataType] = {}
    segments = _Segments(target)
    try:
        pending: list[tuple[int, dict[str, Any]]] = []
        for number, record in records:
            if not record or ROW in record:
                raise _Untyped  # `{}` (a row without columns) and the reserved name: read_table judges them
            columns.update(dict.fromkeys(record))
            pending.append((number, record))
            if len(pending) == BATCH_ROWS:
                segments.write(_typed_batch(pending, list(columns), types, vague))
                pending.clear()
        if pending:
            segments.write(_typed_batch(pending, list(columns), types, vague))
        segments.close()
        if not segments.paths:
            return False  # no records: read_table says what the file lacks
        final = {name: types.get(name) or vague.get(name, pa.null()) for name in columns}
        schema = pa.schema([(name, pa.string() if pa.types.is_null(t) else t) for name, t in final.items()] + [(ROW, pa.int64())])
        if len(segments.paths) == 1 and segments.schemas[0].equals(schema):
            os.replace(segments.paths[0], target)
            return True
        return _write_batches(target, (_conform(batch, schema) for batch in segments.batches()), schema)
    except (_Untyped, DataError, UnicodeDecodeError):
        return False
    finally:
        segments.remove()


def _typed_batch(
    records: list[tuple[int, dict[str, Any]]], columns: list[str], types: dict[str, pa.DataType], vague: dict[str, pa.DataType]
) -> pa.RecordBatch:
    """One batch of records. `types` (column -> the Arrow type of its values) is checked and extended; a type with a
    null part (all values null, or empty lists: `list<null>`) says nothing yet, and goes to `vague`."""
    arrays = []
    for name in columns:
        values = [record.get(name) for _, record in records]
        kinds = {type(value) for value in values} - {type(None)}
        if len(kinds) > 1:
            raise _Untyped
        try:
            array = pa.array(values)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            raise _Untyped from None
        if not isinstance(array, pa.Array):
            raise _Untyped  # more than one array holds (chunked)
        if not kinds <= {str, int, float, bool} and json.dumps(array.to_pylist()) != json.dumps(values):
            raise _Untyped  # e.g. [1, 2.5] would come back as [1.0, 2.5], {"a": 1} beside {"b": 2} with both keys
        if not _has_null(array.type) and types.setdefault(name, array.type) != array.type:
            raise _Untyped
        vague.setdefault(name, array.type)  # the type if no batch tells more (e.g. only empty lists)
        arrays.append(array)
    arrays.append(pa.array([number for number, _ in records], pa.int64()))
    return pa.record_batch(arrays, names=[*columns, ROW])


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with `schema`'s columns: the missing ones null, the others cast to the column's type (from a type with
    a null part) where their values come back the same (compared as JSON)."""
    arrays = []
    for column in schema:
        if column.name not in batch.schema.names:
            arrays.append(pa.nulls(batch.num_rows, column.type))
            continue
        array = batch.column(column.name)
        if array.type != column.type:
            try:
                cast = array.cast(column.type)
            except (pa.ArrowException, ValueError):
                raise _Untyped from None
            if not pa.types.is_null(array.type) and json.dumps(cast.to_pylist()) != json.dumps(array.to_pylist()):
                raise _Untyped
            array = cast
        arrays.append(array)
    return pa.record_batch(arrays, schema=schema)


def _has_null(type_: pa.DataType) -> bool:
    """Whether a type is null or holds null (`list<null>`, a struct with a null field)."""
    return pa.types.is_null(type_) or any(_has_null(type_.field(i).type) for i in range(type_.num_fields))


class _Segments:
    """Record batches written to temporary stream files beside `target`, a new file whenever the schema changes."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.paths: list[Path] = []
        self.schemas: list[pa.Schema] = []
        self._writer: Any = None

    def write(self, batch: pa.RecordBatch) -> None:
        if not self.schemas or not self.schemas[-1].equals(batch.schema):
            self.close()
            self.target.parent.mkdir(parents=True, exist_ok=True)
            path = self.target.with_name(f"{self.target.name}.{os.getpid()}.{len(self.paths)}.part")
            self.paths.append(path)
            self.schemas.append(batch.schema)
            self._writer = pa.ipc.new_stream(str(path), batch.schema)
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        for path in self.paths:
            with pa.OSFile(str(path)) as stream:
                yield from pa.ipc.open_stream(stream)

    def remove(self) -> None:
        self.close()
        for path in self.paths:
            path.unlink(missing_ok=True)


def _parquet_to_arrow(path: Path, target: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        if len(set(names)) != len(names) or ROW in names:
            return False  # read_table names the duplicate column
        batches = parquet.iter_batches(batch_size=BATCH_ROWS)
        return _write_batches(target, batches, parquet.schema_arrow)
    except Exception:  # noqa: BLE001 - a corrupt file: read_table raises its error
        return False


def open_hub_table(name: str, split: str, config: str | None = None) -> ArrowTable | Table:
    """One split of a Hub (or local script/folder) dataset: the memory-mapped table `datasets` keeps."""
    from .data import load_hub_table

    source = f"{name}{'/' + config if config else ''} [{split}]"
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"cannot be loaded: {err}", source=source) from None
    if ds._indices is not None or ROW in ds.column_names:
        return load_hub_table(name, split, config)
    return ArrowTable(source, list(ds.column_names), ds.data.table, _digest("hub", ds._fingerprint))


# --------------------------------------------------------------------------------------------
# Validation over chunks
# --------------------------------------------------------------------------------------------


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _first(mask: Any) -> int | None:
    hits = np.flatnonzero(np.asarray(mask))
    return int(hits[0]) if len(hits) else None


def check_texts(table: ArrowTable, column: str, limit: int | None = None) -> None:
    """Raise `check_text`'s error for the first value of `column` that is not a usable text."""
    offset = 0
    for chunk in table.chunks(column, limit):
        if _is_text(chunk.type):
            bad = pc.fill_null(pc.match_substring_regex(chunk, BLANK), True)
            index = _first(bad.to_numpy(zero_copy_only=False))
        else:
            from .data import text_problem

            index = next((i for i, value in enumerate(chunk.to_pylist()) if text_problem(value) is not None), None)
        if index is not None:
            check_text(chunk[index].as_py(), table, offset + index, column)  # type: ignore[arg-type]
            raise AssertionError("check_text accepted a value the chunk check refused")
        offset += len(chunk)


def parse_labels(table: ArrowTable, column: str, limit: int | None = None) -> np.ndarray:
    """`parse_label` of every value of `column`, as float64; raises its error for the first bad one."""
    parts = []
    offset = 0
    for chunk in table.chunks(column, limit):
        values = _fast_labels(chunk)
        if values is None:
            values = np.array([parse_label(v, table, offset + i, column) for i, v in enumerate(chunk.to_pylist())], dtype=np.float64)  # type: ignore[arg-type]
        parts.append(values)
        offset += len(chunk)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def _fast_labels(chunk: pa.Array) -> np.ndarray | None:
    """The chunk's labels when Arrow reads them exactly as `parse_label` does and all are finite; else None."""
    if chunk.null_count:
        return None
    if _is_text(chunk.type):
        if not pc.all(pc.match_substring_regex(chunk, PLAIN_NUMBER)).as_py():
            return None
    elif not (pa.types.is_boolean(chunk.type) or pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type)):
        return None
    try:
        values = pc.cast(chunk, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return values if np.isfinite(values).all() else None


def label_stats(labels: np.ndarray) -> dict[str, float]:
    """min, max, mean and std as `hf_crossenc.data.build_split` computes them (Python's left-to-right sums, so the
    same digits)."""
    total, step = 0.0, 1 << 20
    for start in range(0, len(labels), step):
        total = sum(labels[start : start + step].tolist(), total)
    mean = total / len(labels)
    squares = 0.0
    for start in range(0, len(labels), step):
        squares = sum([(v - mean) ** 2 for v in labels[start : start + step].tolist()], squares)
    return {"min": float(labels.min()), "max": float(labels.max()), "mean": mean, "std": math.sqrt(squares / len(labels))}


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def build_arrow_split(
    table: ArrowTable, columns: PairColumns, *, name: str, scale: LabelScale | None, max_samples: int | None = None
) -> PairSplit:
    """`hf_crossenc.data.build_split` over an `ArrowTable`: the same checks, errors and values, in a memory-mapped
    dataset that the cache keeps for the next run."""
    if not len(table):
        raise DataError(f"the {name} split has no data rows.", source=table.source, hint="Provide at least one row.")
    scale = (scale or LabelScale()) if columns.label is not None else None
    key = _digest(table.key, columns.text_a, columns.text_b, columns.label, scale and scale.as_list(), max_samples)
    target = cache_dir() / f"split-{key}.arrow"
    if not target.is_file():
        _write_split(table, columns, scale, max_samples, target)
    dataset = mapped_dataset(target)
    metadata = pa.ipc.open_stream(pa.memory_map(str(target))).schema.metadata or {}
    stats = json.loads(metadata.get(STATS_KEY, b"{}"))
    return PairSplit(name=name, source=table.source, dataset=dataset, columns=columns, raw_label_stats=stats)


def _write_split(table: ArrowTable, columns: PairColumns, scale: LabelScale | None, limit: int | None, target: Path) -> None:
    limit = None if limit is None or limit >= len(table) else limit
    check_texts(table, columns.text_a, limit)
    check_texts(table, columns.text_b, limit)
    features = {TEXT_A: datasets.Value("string"), TEXT_B: datasets.Value("string")}
    stats: dict[str, float] = {}
    normalised = None
    if columns.label is not None and scale is not None:
        labels = parse_labels(table, columns.label, limit)
        bad = _first(~((scale.low - 1e-9 <= labels) & (labels <= scale.high + 1e-9)))
        if bad is not None:
            raise outside_scale_error(float(labels[bad]), scale, table, bad, columns.label)
        normalised = np.minimum(1.0, np.maximum(0.0, (labels - scale.low) / (scale.high - scale.low))).astype(np.float32)
        features[LABEL] = datasets.Value("float32")
        stats = label_stats(labels)
    schema = datasets.Features(features).arrow_schema
    schema = schema.with_metadata({**(schema.metadata or {}), STATS_KEY: json.dumps(stats).encode()})

    def batches() -> Iterator[pa.RecordBatch]:
        start = 0
        for batch in table.batches(limit):
            arrays = [batch.column(columns.text_a).cast(pa.string()), batch.column(columns.text_b).cast(pa.string())]
            if normalised is not None:
                arrays.append(pa.array(normalised[start : start + batch.num_rows]))
            start += batch.num_rows
            yield pa.record_batch(arrays, schema=schema)

    if not _write_batches(target, batches(), schema):
        raise DataError("cannot be written to the Arrow cache.", source=table.source, hint=f"Check that {target.parent} is writable.")


def raw_arrow_labels(table: ArrowTable, columns: PairColumns) -> np.ndarray:
    """`hf_crossenc.data.raw_labels` over an `ArrowTable`."""
    assert columns.label is not None
    return parse_labels(table, columns.label)
