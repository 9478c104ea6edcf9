"""Load sentence pairs from local files or a Hub dataset, validate them and normalise the labels.

Everything here runs before training starts, so a bad file fails in seconds with one error that
names the file, the row (1-based, as a spreadsheet shows it: the CSV header is row 1) and the
column, and nothing has been written yet.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from .errors import ConfigError, DataError

logger = logging.getLogger(__name__)

TEXT_A, TEXT_B, LABEL = "text_a", "text_b", "label"
"""Column names of the normalised pair datasets that the collator and trainer consume."""
GROUP, NEGATIVES, TARGETS = "group_id", "negatives", "targets"
"""Reranking examples' further columns: a query's group id, a listwise group's negatives and its target distribution
(see hf_crossenc.ranking)."""

TEXT_A_CANDIDATES = ("sentence1", "sentence_1", "text1", "text_a", "query", "question", "anchor", "premise", "s1")
TEXT_B_CANDIDATES = (
    "sentence2",
    "sentence_2",
    "text2",
    "text_b",
    "passage",
    "answer",
    "document",
    "hypothesis",
    "s2",
)
LABEL_CANDIDATES = ("label", "labels", "score", "similarity_score", "relevance", "gold_label")

SUPPORTED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass
class Table:
    """Raw rows of one split, with the row numbers a user would look up in the source."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    row_numbers: list[int]
    row_word: str = "row"

    def locate(self, index: int) -> int:
        return self.row_numbers[index]


@dataclass(frozen=True)
class PairColumns:
    text_a: str
    text_b: str
    label: str | None


@dataclass(frozen=True)
class LabelScale:
    """Maps raw labels in [low, high] onto [0, 1]: ``(y - low) / (high - low)``."""

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high <= self.low:
            raise ValueError(f"label scale needs two finite numbers low < high, got {self.low}, {self.high}")

    @property
    def is_identity(self) -> bool:
        return self.low == 0.0 and self.high == 1.0

    def normalise(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low)

    def denormalise(self, value: Any) -> Any:
        return value * (self.high - self.low) + self.low

    def as_list(self) -> list[float]:
        return [self.low, self.high]


@dataclass
class PairSplit:
    """One validated split: a `datasets.Dataset` with columns text_a, text_b and (optionally) label."""

    name: str
    source: str
    dataset: datasets.Dataset
    columns: PairColumns
    raw_label_stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.dataset)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_table(path: str | Path) -> Table:
    """Read a CSV/TSV/JSON/JSONL/Parquet file into rows, with precise errors for malformed files."""
    path = Path(path)
    source = str(path)
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"unsupported file type {path.suffix or '(none)'!r}.",
            source=source,
            hint=f"Use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}.",
        )
    if not path.is_file():
        raise DataError("file not found.", source=source, hint="Check the path (it is read relative to the current directory).")
    if kind == "parquet":
        return _read_parquet(path)
    raw = path.read_bytes()
    text = _decode_utf8(raw, source, kind)
    if kind == "tsv":
        return _read_tsv(text, source)
    if kind == "csv":
        return _read_delimited(text, source, ",")
    if kind == "jsonl":
        return _read_jsonl(text, source)
    return _read_json(text, source)


def _decode_utf8(raw: bytes, source: str, kind: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = raw[err.start : err.start + 1].hex()
        row = raw[: err.start].count(b"\n") + 1  # the line; for CSV/TSV the record (a quoted field may span lines)
        column = None
        if kind in ("csv", "tsv"):
            row, column = _locate_replacement(raw.decode("utf-8", errors="replace"), source, kind, row)
        raise DataError(
            f"is not valid UTF-8 (byte 0x{bad} at offset {err.start}).",
            source=source,
            row=row,
            column=column,
            hint="Re-save the file as UTF-8 (for example `iconv -f latin1 -t utf-8`).",
        ) from None


def _locate_replacement(text: str, source: str, kind: str, line: int) -> tuple[int, str | None]:
    """Row (header = 1) and column of the first field holding U+FFFD, read the way the file would be read;
    the line number if the file does not parse."""
    try:
        table = _read_tsv(text, source, warn=False) if kind == "tsv" else _read_delimited(text, source, ",")
    except DataError:  # malformed as well: the line number of the bad byte is the best pointer left
        return line, None
    if any("\ufffd" in name for name in table.columns):
        return 1, None
    for number, row in zip(table.row_numbers, table.rows):
        for name, value in row.items():
            if "\ufffd" in value:
                return number, name
    return line, None


FIELD_LIMIT = 2**31 - 1  # csv's default cap (131072 characters) would reject long passages


class _ParseError(DataError):
    """The delimited text does not split into records of the header's width (as opposed to, say, a duplicate column)."""


def _read_tsv(text: str, source: str, warn: bool = True) -> Table:
    """Tab-separated values: CSV-style quoting first (what pandas and spreadsheets write), or plain tab-separated
    values without quoting (the IANA format, and GLUE's files, whose texts hold stray quote characters such as
    `"Hello," he said.`) when the quoted reading fails, or when it only works by swallowing tabs and line breaks
    into quoted fields while every line has the header's width without quoting (an opening quote in one row
    closed in a later one would otherwise merge rows silently)."""
    try:
        table = _read_delimited(text, source, "\t")
    except _ParseError as quoted:
        try:
            plain = _read_delimited(text, source, "\t", quoting=csv.QUOTE_NONE)
        except _ParseError as unquoted:
            raise DataError(
                f"{quoted.message} (read with CSV quoting); read as plain tab-separated values instead, row "
                f"{unquoted.row}: {unquoted.message}",
                source=source,
                row=quoted.row,
                hint=quoted.hint,
            ) from None
        reason = f"at row {quoted.row}: {quoted.message}"
    else:
        if not any(("\t" in v or "\n" in v or "\r" in v) for row in table.rows for v in row.values()):
            return table
        try:
            plain = _read_delimited(text, source, "\t", quoting=csv.QUOTE_NONE)
        except _ParseError:
            return table  # the quoted tabs and line breaks are real: without quoting the rows do not fit
        reason = "quoted fields would hold tabs or line breaks, yet every line has the header's fields without quoting"
    if warn:
        logger.warning("%s: %s; read as plain tab-separated values, quote characters kept as text.", source, reason)
    return plain


def _read_delimited(text: str, source: str, delimiter: str, quoting: int = csv.QUOTE_MINIMAL) -> Table:
    header, records = delimited_records(io.StringIO(text, newline=""), source, delimiter, quoting)
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for row_number, fields in records:
        rows.append(dict(zip(header, fields)))
        numbers.append(row_number)
    return Table(source=source, columns=header, rows=rows, row_numbers=numbers)


def delimited_records(
    stream: Any, source: str, delimiter: str, quoting: int = csv.QUOTE_MINIMAL
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The checked header of a delimited text stream and its records as (row number, fields), one at a time, with
    the errors (file, row) of a malformed file: the one reading of CSV/TSV, in memory (`read_table`) or streamed into
    an Arrow file (`hf_crossenc.arrow_data`)."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    reader = csv.reader(stream, delimiter=delimiter, strict=True, quoting=quoting)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("is empty: expected a header row and at least one data row.", source=source) from None
    except csv.Error as err:
        raise _ParseError(f"cannot be parsed as {'TSV' if delimiter == chr(9) else 'CSV'}: {err}.", source=source, row=1) from None
    header = [name.strip() for name in header]
    if len(header) == 1:
        for other, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes"), (",", "commas")):
            if other != delimiter and other in header[0]:
                raise DataError(
                    f"the header has a single column {header[0]!r}: the file seems to be separated by {label}, "
                    f"not {'tabs' if delimiter == chr(9) else 'commas'}.",
                    source=source,
                    row=1,
                    hint="Save it with the separator its extension implies (.csv: comma, .tsv: tab).",
                )
    check_duplicate_columns(header, source)

    def records() -> Iterator[tuple[int, list[str]]]:
        row_number = 1
        try:
            for index, fields in enumerate(reader):
                row_number = index + 2
                if not fields:
                    continue  # blank line
                if len(fields) != len(header):
                    raise _ParseError(
                        f"has {len(fields)} fields but the header has {len(header)} ({', '.join(header)}).",
                        source=source,
                        row=row_number,
                        hint="Quote fields that contain the separator.",
                    )
                yield row_number, fields
        except csv.Error as err:
            # The record after the last one read (rows count records, header = 1, as everywhere else).
            raise _ParseError(f"cannot be parsed: {err}.", source=source, row=row_number + 1) from None

    return header, records()


def check_duplicate_columns(columns: list[str], source: str) -> None:
    """The error (file, row 1, column) of a column name that occurs twice in a header (in memory or streamed)."""
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise DataError(
                f"the column name {name!r} appears more than once in the header.",
                source=source,
                row=1,
                column=name,
                hint="Give every column a distinct name.",
            )
        seen.add(name)


class _JsonObject(dict):
    """A JSON object as read, with the keys that occurred in it more than once (`json` would keep the last value)."""

    duplicates: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` of every JSON read: records the duplicate keys so that `_check_duplicate_keys` refuses them."""
    record = dict(pairs)
    if len(record) != len(pairs):
        record = _JsonObject(pairs)
        seen: set[str] = set()
        record.duplicates = tuple(key for key, _ in pairs if key in seen or seen.add(key))
    return record


_DECODER = json.JSONDecoder(object_pairs_hook=_json_object)


def _loads(text: str) -> Any:
    """`json.loads(text, object_pairs_hook=_json_object)`, the same checks and errors, with one decoder for every line
    (`json.loads` builds one per call)."""
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def _check_duplicate_keys(record: Any, source: str, row: int | None) -> None:
    duplicates = getattr(record, "duplicates", ())
    if duplicates:
        raise DataError(
            f"the key {duplicates[0]!r} appears more than once in the record (JSON would silently keep its last value).",
            source=source,
            row=row,
            column=duplicates[0],
            hint="Give every key a distinct name.",
        )


def _read_jsonl(text: str, source: str) -> Table:
    rows, numbers, columns = [], [], []
    for line_number, record in jsonl_records(text.split("\n"), source):
        columns.extend(key for key in record if key not in columns)
        rows.append(record)
        numbers.append(line_number)
    return Table(source=source, columns=columns, rows=rows, row_numbers=numbers, row_word="line")


def jsonl_records(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of JSON Lines split on newlines only (str.splitlines() also breaks at U+2028/U+2029/U+0085, which
    JSON strings may hold), as (line number, record), blank lines skipped yet counted: the one reading of JSONL, in
    memory (`read_table`) or streamed into an Arrow file (`hf_crossenc.arrow_data`)."""
    for line_number, line in enumerate((line.removesuffix("\r") for line in lines), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"is not valid JSON: {err.msg}.", source=source, row=line_number) from None
        if not isinstance(record, dict):
            raise DataError("must be a JSON object with one key per column.", source=source, row=line_number)
        _check_duplicate_keys(record, source, line_number)
        yield line_number, record


def _read_json(text: str, source: str) -> Table:
    try:
        data = _loads(text) if text.strip() else []
    except json.JSONDecodeError as err:
        raise DataError(f"is not valid JSON: {err.msg} (line {err.lineno}).", source=source) from None
    if isinstance(data, dict):
        # Column-oriented: {"sentence1": [...], "sentence2": [...], "label": [...]}
        _check_duplicate_keys(data, source, None)
        lengths = {len(v) for v in data.values() if isinstance(v, list)}
        if len(lengths) != 1 or not all(isinstance(v, list) for v in data.values()):
            raise DataError("a JSON object must map every column name to a list of equal length.", source=source)
        columns = list(data)
        n = lengths.pop()
        rows = [{c: data[c][i] for c in columns} for i in range(n)]
    elif isinstance(data, list):
        columns = []
        for i, record in enumerate(data, start=1):
            if not isinstance(record, dict):
                raise DataError("must be a JSON object with one key per column.", source=source, row=i)
            _check_duplicate_keys(record, source, i)
            columns.extend(k for k in record if k not in columns)
        rows = data
    else:
        raise DataError("must hold a list of records or an object of columns.", source=source)
    return Table(source=source, columns=columns, rows=rows, row_numbers=list(range(1, len(rows) + 1)), row_word="record")


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        check_duplicate_columns(parquet.schema_arrow.names, str(path))  # before pyarrow refuses to read them
        table = parquet.read()
    except DataError:
        raise
    except Exception as err:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"cannot be read as Parquet: {err}.", source=str(path)) from None
    columns = table.column_names
    rows = table.to_pylist()
    return Table(source=str(path), columns=columns, rows=rows, row_numbers=list(range(1, len(rows) + 1)), row_word="record")


def load_hub_table(name: str, split: str, config: str | None = None) -> Table:
    """Read one split of a Hub (or local script/folder) dataset through `datasets.load_dataset`."""
    source = f"{name}{'/' + config if config else ''} [{split}]"
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"cannot be loaded: {err}", source=source) from None
    rows = ds.to_list()
    return Table(source=source, columns=list(ds.column_names), rows=rows, row_numbers=list(range(1, len(rows) + 1)))


# --------------------------------------------------------------------------------------------
# Columns, labels and validation
# --------------------------------------------------------------------------------------------


def resolve_columns(
    table: Table,
    text_a: str | None = None,
    text_b: str | None = None,
    label: str | None = None,
    require_label: bool = True,
) -> PairColumns:
    """Pick the two text columns and the label column: explicit names first, then common names."""

    def pick(explicit: str | None, candidates: tuple[str, ...], role: str, flag: str, required: bool) -> str | None:
        if explicit:
            if explicit not in table.columns:
                raise DataError(
                    f"the {role} column {explicit!r} does not exist; the file has columns {table.columns}.",
                    source=table.source,
                    row=1 if table.row_word == "row" else None,
                    column=explicit,
                    hint=f"Fix {flag}.",
                )
            return explicit
        lowered = {c.lower(): c for c in table.columns}
        for candidate in candidates:
            if candidate in lowered:
                return lowered[candidate]
        if not required:
            return None
        raise DataError(
            f"no {role} column found among {table.columns} (looked for {', '.join(candidates)}).",
            source=table.source,
            row=1 if table.row_word == "row" else None,
            column=None,
            hint=f"Name it with {flag}.",
        )

    a = pick(text_a, TEXT_A_CANDIDATES, "first text", "--text_a_column", True)
    b = pick(text_b, TEXT_B_CANDIDATES, "second text", "--text_b_column", True)
    lab = pick(label, LABEL_CANDIDATES, "label", "--label_column", require_label)
    if a == b:
        raise DataError(
            f"both text columns resolve to {a!r}.", source=table.source, column=a, hint="Set --text_a_column and --text_b_column."
        )
    return PairColumns(a, b, lab)


def parse_label_scale(value: str | None) -> LabelScale | str | None:
    """``None`` (labels must already lie in [0, 1]), ``"auto"``, or ``"low,high"`` such as ``"0,5"``."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if text.lower() == "auto":
        return "auto"
    parts = text.replace(":", ",").split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--label_scale {value!r} is not 'low,high' (e.g. '0,5') or 'auto'.") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"--label_scale {value!r}: low and high must be finite numbers (e.g. '0,5').")
    if low >= high:
        raise ConfigError(f"--label_scale {value!r}: low ({low:g}) must be below high ({high:g}), e.g. '0,5'.")
    return LabelScale(low, high)


def parse_label(value: Any, table: Table, index: int, column: str) -> float:
    row = table.locate(index)
    if isinstance(value, bool):
        return float(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError("the label is empty.", source=table.source, row=row, column=column, hint="Every row needs a numeric label.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"the label {value!r} is not a number.", source=table.source, row=row, column=column, hint="Labels must be numeric."
        ) from None
    if not math.isfinite(number):
        raise DataError(
            f"the label is {value!r}, not a finite number.", source=table.source, row=row, column=column, hint="Fix or drop the row."
        )
    return number


def text_problem(value: Any) -> str | None:
    """Why `value` is not a usable text (missing, not a string, empty or whitespace only); None if it is. The one
    validation of every text: data files (`check_text`) and the command line (`hf_crossenc.text_inputs`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "the text is missing (empty/NaN)."
    if not isinstance(value, str):
        return f"expected text, found {type(value).__name__} {value!r}."
    if not value.strip():
        return "the text is empty or whitespace only."
    return None


def check_text(value: Any, table: Table, index: int, column: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        hint = None if problem.startswith("expected") else "Fill it in or drop the row."
        raise DataError(problem, source=table.source, row=table.locate(index), column=column, hint=hint)
    return value


def raw_labels(table: Table, columns: PairColumns) -> list[float]:
    """Parse and validate the label column of a table (before scaling)."""
    assert columns.label is not None
    return [parse_label(row.get(columns.label), table, i, columns.label) for i, row in enumerate(table.rows)]


def infer_label_scale(labels: list[float]) -> LabelScale:
    """`--label_scale auto`: [0, 1] if the labels fit, else the integer range around them (e.g. 0–5 for STS-B)."""
    low, high = float(min(labels)), float(max(labels))
    if low >= 0.0 and high <= 1.0:
        return LabelScale(0.0, 1.0)
    if math.floor(low) == math.ceil(high):
        raise ValueError(f"every training label is {low:g}: no range to infer; pass --label_scale LOW,HIGH")
    scale = LabelScale(float(math.floor(low)), float(math.ceil(high)))
    logger.warning("label scale detected from the training labels: %s..%s (normalised to 0..1)", scale.low, scale.high)
    return scale


def outside_scale_error(value: float, scale: LabelScale, table: Any, index: int, column: str) -> DataError:
    """The error of a label outside the label scale (row `index` of `table`)."""
    hint = (
        "Declare the scale the labels use, e.g. --label_scale 0,5 for STS scores (or --label_scale auto)."
        if scale.is_identity
        else f"Fix the row or widen --label_scale (now {scale.low:g},{scale.high:g})."
    )
    return DataError(
        f"the label {value:g} lies outside the label scale [{scale.low:g}, {scale.high:g}].",
        source=table.source,
        row=table.locate(index),
        column=column,
        hint=hint,
    )


def build_split(
    table: Table,
    columns: PairColumns,
    *,
    name: str,
    scale: LabelScale | None,
    max_samples: int | None = None,
) -> PairSplit:
    """Validate every row and return the normalised dataset (labels mapped onto [0, 1] by `scale`)."""
    if not table.rows:
        raise DataError(f"the {name} split has no data rows.", source=table.source, hint="Provide at least one row.")
    rows = table.rows if max_samples is None else table.rows[:max_samples]
    texts_a = [check_text(r.get(columns.text_a), table, i, columns.text_a) for i, r in enumerate(rows)]
    texts_b = [check_text(r.get(columns.text_b), table, i, columns.text_b) for i, r in enumerate(rows)]
    data: dict[str, list[Any]] = {TEXT_A: texts_a, TEXT_B: texts_b}
    stats: dict[str, float] = {}
    if columns.label is not None:
        labels = [parse_label(r.get(columns.label), table, i, columns.label) for i, r in enumerate(rows)]
        scale = scale or LabelScale()
        for i, value in enumerate(labels):
            if not scale.low - 1e-9 <= value <= scale.high + 1e-9:
                raise outside_scale_error(value, scale, table, i, columns.label)
        data[LABEL] = [min(1.0, max(0.0, scale.normalise(v))) for v in labels]
        mean = sum(labels) / len(labels)
        stats = {
            "min": min(labels),
            "max": max(labels),
            "mean": mean,
            "std": math.sqrt(sum((v - mean) ** 2 for v in labels) / len(labels)),
        }
    features = datasets.Features(
        {
            TEXT_A: datasets.Value("string"),
            TEXT_B: datasets.Value("string"),
            **({LABEL: datasets.Value("float32")} if LABEL in data else {}),
        }
    )
    dataset = datasets.Dataset.from_dict(data, features=features)
    return PairSplit(name=name, source=table.source, dataset=dataset, columns=columns, raw_label_stats=stats)
