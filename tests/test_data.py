"""hf_crossenc.data: reading, column detection, label scales, the bad-input matrix, and the class labels of a table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hf_crossenc.data import (
    LabelScale,
    build_split,
    infer_label_scale,
    parse_label_scale,
    raw_labels,
    read_table,
    resolve_columns,
)
from hf_crossenc.errors import DataError
from hf_crossenc.labels import class_names

GOOD_CSV = "sentence1,sentence2,similarity_score\nA cat sits.,A cat is sitting.,4.5\nA man runs.,A woman cooks.,0.5\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def load(path: Path, scale: str | None = "0,5", **columns: str):
    table = read_table(path)
    cols = resolve_columns(table, **columns)
    return build_split(table, cols, name="train", scale=parse_label_scale(scale))


def test_csv_auto_columns_and_scale(tmp_path):
    split = load(write(tmp_path, "t.csv", GOOD_CSV))
    assert split.columns.text_a == "sentence1" and split.columns.label == "similarity_score"
    assert split.dataset["label"] == pytest.approx([0.9, 0.1])
    assert split.raw_label_stats["max"] == 4.5


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".tsv", ".parquet"])
def test_other_formats(tmp_path, suffix):
    rows = [{"query": "q1", "passage": "p1", "label": 1}, {"query": "q2", "passage": "p2", "label": 0}]
    path = tmp_path / f"d{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    elif suffix == ".tsv":
        path.write_text("query\tpassage\tlabel\nq1\tp1\t1\nq2\tp2\t0\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    split = load(path, scale=None)
    assert split.dataset["text_a"] == ["q1", "q2"]
    assert split.dataset["label"] == [1.0, 0.0]


def test_tsv_with_stray_quotes_reads_as_plain_tab_separated_values(tmp_path, caplog):
    """GLUE's TSVs are tab-separated without quoting: texts start with or hold unpaired quote characters."""
    path = write(
        tmp_path,
        "glue.tsv",
        'sentence1\tsentence2\tscore\n"Hello," he said.\tHe said hello.\t4.5\n"Unclosed quote\tplain\t1.0\nx\ty\t0\n',
    )
    with caplog.at_level("WARNING", logger="hf_crossenc.data"):
        split = load(path, scale="0,5")
    assert split.dataset["text_a"] == ['"Hello," he said.', '"Unclosed quote', "x"]
    assert split.dataset["label"] == pytest.approx([0.9, 0.2, 0.0])
    assert "read as plain tab-separated values" in caplog.text and str(path) in caplog.text


def test_tsv_with_csv_quoting_is_unquoted(tmp_path, caplog):
    """What pandas' to_csv(sep="\\t") writes: fields holding quotes are quoted, inner quotes doubled."""
    path = write(tmp_path, "pandas.tsv", 'sentence1\tsentence2\tlabel\n"He said ""hi"""\tb\t1\nc\t"tab\there"\t0\n')
    with caplog.at_level("WARNING", logger="hf_crossenc.data"):
        split = load(path, scale=None)
    assert split.dataset["text_a"] == ['He said "hi"', "c"] and split.dataset["text_b"] == ["b", "tab\there"]
    assert caplog.text == ""


def test_tsv_broken_either_way_names_both_readings(tmp_path):
    # With quoting the unclosed quote runs to the end of the file; without it, row 3 is one field short.
    path = write(tmp_path, "bad.tsv", 'sentence1\tsentence2\tlabel\n"a\tb\t1\nc\td\n')
    with pytest.raises(DataError, match=r"row 2: .*read with CSV quoting.*plain tab-separated values instead, row 3: has 2 fields"):
        load(path, scale=None)


def test_tsv_quote_opened_in_one_row_and_closed_in_another_does_not_merge_rows(tmp_path, caplog):
    """A quotation split over two sentences (common in MSRP/GLUE): CSV quoting would read rows 2-3 as one row
    whose first field swallows tabs and a line break, and still find the header's width."""
    path = write(
        tmp_path,
        "split.tsv",
        'sentence1\tsentence2\tscore\n"We will not go,\tHe refused.\t4.0\nand we will not leave."\tThey stay.\t3.0\n',
    )
    with caplog.at_level("WARNING", logger="hf_crossenc.data"):
        split = load(path, scale="0,5")
    assert split.dataset["text_a"] == ['"We will not go,', 'and we will not leave."']
    assert split.dataset["label"] == pytest.approx([0.8, 0.6])
    assert "tabs or line breaks" in caplog.text


def test_tsv_fallback_only_for_quoting_problems(tmp_path):
    """A duplicate column under CSV quoting is reported, not worked around by reading the quotes as text."""
    path = write(tmp_path, "dup.tsv", '"a"\ta\tlabel\nx\ty\t1\n')
    with pytest.raises(DataError, match="row 1, column .a.: the column name .a. appears more than once"):
        load(path, scale=None, text_a="a", text_b="a", label="label")


def test_tsv_utf8_error_located_as_the_file_is_read(tmp_path):
    path = write(tmp_path, "enc.tsv", b'sentence1\tsentence2\tlabel\n"Unclosed\tb\t1\nx\tb\t0\ny\t\xff\t0\n')
    with pytest.raises(DataError, match=r"row 4, column 'sentence2': is not valid UTF-8"):
        load(path, scale=None)


def test_explicit_columns(tmp_path):
    path = write(tmp_path, "t.csv", "a,b,y\nx1,y1,0.2\n")
    split = load(path, scale=None, text_a="a", text_b="b", label="y")
    assert split.dataset[0] == {"text_a": "x1", "text_b": "y1", "label": pytest.approx(0.2)}


def test_auto_label_scale():
    assert infer_label_scale([0.0, 0.3, 1.0]) == LabelScale(0, 1)
    assert infer_label_scale([0.2, 3.8, 4.6]) == LabelScale(0, 5)
    assert parse_label_scale("auto") == "auto"
    assert parse_label_scale("1:5") == LabelScale(1, 5)


# The bad-input matrix: (file name, content, scale, expected message fragment, row, column).
BAD_INPUTS = [
    ("t.txt", "a,b\n", "0,5", "unsupported file type", None, None),
    ("t.csv", "sentence1;sentence2;score\na;b;1\n", "0,5", "separated by semicolons", 1, None),
    ("t.csv", "foo,sentence2,score\na,b,1\n", "0,5", "no first text column", 1, None),
    ("t.csv", "sentence1,sentence2,comment\na,b,c\n", "0,5", "no label column", 1, None),
    ("t.csv", "", "0,5", "is empty", None, None),
    ("t.csv", "sentence1,sentence2,score\n", "0,5", "has no data rows", None, None),
    ("t.csv", "sentence1,sentence2,score\na,b,1\n,b,2\n", "0,5", "empty or whitespace", 3, "sentence1"),
    ("t.csv", "sentence1,sentence2,score\na,b,1\na,   ,2\n", "0,5", "empty or whitespace", 3, "sentence2"),
    ("t.csv", "sentence1,sentence2,score\na,b,1\na,b,nan\n", "0,5", "not a finite number", 3, "score"),
    ("t.csv", "sentence1,sentence2,score\na,b,high\n", "0,5", "is not a number", 2, "score"),
    ("t.csv", "sentence1,sentence2,score\na,b,\n", "0,5", "label is empty", 2, "score"),
    ("t.csv", "sentence1,sentence2,score\na,b,1\na,b,3.8\n", None, "outside the label scale [0, 1]", 3, "score"),
    ("t.csv", "sentence1,sentence2,score\na,b,5.5\n", "0,5", "outside the label scale [0, 5]", 2, "score"),
    ("t.csv", "sentence1,sentence2,sentence2,score\na,b,c,1\n", "0,5", "appears more than once", 1, "sentence2"),
    ("t.csv", "sentence1,sentence2,score\na,b,1,extra\n", "0,5", "has 4 fields", 2, None),
    ("t.csv", b"sentence1,sentence2,score\na,b,1\ncaf\xe9,b,1\n", "0,5", "not valid UTF-8", 3, "sentence1"),
    # Rows count records (header = 1), also when a quoted field above spans several lines.
    ("t.csv", b'sentence1,sentence2,score\n"a\nb\nc",b,1\ncaf\xe9,b,1\n', "0,5", "not valid UTF-8", 3, "sentence1"),
    ("t.csv", 'sentence1,sentence2,score\n"a\nb\nc",b,1\n"bad"x,b,1\n', "0,5", "cannot be parsed", 3, None),
    (
        "t.jsonl",
        '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": 7, "score": 1}\n',
        "0,5",
        "expected text",
        2,
        "sentence2",
    ),
    ("t.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1}\nnot json\n', "0,5", "not valid JSON", 2, None),
]


@pytest.mark.parametrize(("name", "content", "scale", "fragment", "row", "column"), BAD_INPUTS)
def test_bad_input_names_file_row_column(tmp_path, name, content, scale, fragment, row, column):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        load(path, scale=scale)
    err = info.value
    assert fragment in str(err)
    assert err.source == str(path)
    assert str(path) in str(err)
    assert err.row == row
    assert err.column == column
    if row is not None:
        assert f"row {row}" in str(err)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv")


def test_explicit_missing_column(tmp_path):
    table = read_table(write(tmp_path, "t.csv", GOOD_CSV))
    with pytest.raises(DataError, match="'premise' does not exist") as info:
        resolve_columns(table, text_a="premise")
    assert info.value.column == "premise"


def test_raw_labels_and_nan_math(tmp_path):
    table = read_table(write(tmp_path, "t.csv", GOOD_CSV))
    labels = raw_labels(table, resolve_columns(table))
    assert labels == [4.5, 0.5] and all(math.isfinite(v) for v in labels)


def test_dataset_loaded_through_datasets_library(tmp_path):
    """--dataset_name goes through datasets.load_dataset (a Hub id, or here a local folder: no network)."""
    from hf_crossenc.data import load_hub_table

    folder = tmp_path / "my_pairs"
    folder.mkdir()
    (folder / "train.csv").write_text(GOOD_CSV)
    (folder / "test.csv").write_text(GOOD_CSV)
    table = load_hub_table(str(folder), "train")
    assert table.columns == ["sentence1", "sentence2", "similarity_score"]
    split = build_split(table, resolve_columns(table), name="train", scale=LabelScale(0, 5))
    assert split.dataset["label"] == pytest.approx([0.9, 0.1])
    with pytest.raises(DataError, match="cannot be loaded"):
        load_hub_table(str(folder), "validation")


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    rows = [{"sentence1": "a\u2028b", "sentence2": "c\u0085d", "score": 1}, {"sentence1": "e", "sentence2": "f\u2029", "score": 2}]
    path = write(tmp_path, "t.jsonl", "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n")
    table = read_table(path)
    assert [r["sentence1"] for r in table.rows] == ["a\u2028b", "e"] and table.row_numbers == [1, 2]


def test_csv_fields_longer_than_csvs_default_limit(tmp_path):
    long = "word " * 40_000  # 200k characters: csv's default field limit is 131072
    table = read_table(write(tmp_path, "t.csv", f'sentence1,sentence2,score\nshort,"{long}",1\n'))
    assert table.rows[0]["sentence2"] == long


def test_auto_label_scale_with_constant_labels_names_the_file(tmp_path):
    from hf_crossenc.arguments import DataArguments
    from hf_crossenc.task_data import load_splits

    path = write(tmp_path, "t.csv", "sentence1,sentence2,score\na,b,3\nc,d,3\n")
    with pytest.raises(DataError, match="every training label is 3") as info:
        load_splits(DataArguments(train_file=str(path), label_scale="auto"))
    assert info.value.source == str(path) and info.value.column == "score"


@pytest.mark.parametrize("flag", ["--max_train_samples", "--max_eval_samples"])
def test_sample_limits_below_one_are_refused(tmp_path, flag, capsys):
    from hf_crossenc.commands.train import main

    path = write(tmp_path, "t.csv", GOOD_CSV)
    assert main(["--train_file", str(path), "--label_scale", "0,5", "--output_dir", str(tmp_path / "out"), flag, "0"]) == 2
    assert f"{flag} must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- classification labels of a table ---------------------------------------------------


def test_mixed_label_types_name_file_row_and_column(tmp_path):
    path = write(tmp_path, "mixed.csv", "sentence1,sentence2,label\na,b,1\nc,d,0\ne,f,paraphrase\n")
    table = read_table(path)
    with pytest.raises(DataError) as err:
        class_names(table, resolve_columns(table))
    message = str(err.value)
    assert f"file {path}, row 4, column 'label'" in message
    assert "mixed label types" in message and "row 2" in message


def test_mixed_label_types_in_json(tmp_path):
    path = write(tmp_path, "mixed.jsonl", '{"s1": "a", "s2": "b", "label": 2}\n{"s1": "c", "s2": "d", "label": "entailment"}\n')
    table = read_table(path)
    with pytest.raises(DataError, match=r"row 2, column 'label'.*mixed label types"):
        class_names(table, resolve_columns(table))


def test_fractional_label_is_not_a_class(tmp_path):
    path = write(tmp_path, "f.csv", "sentence1,sentence2,label\na,b,1\nc,d,0.5\n")
    table = read_table(path)
    with pytest.raises(DataError, match=r"row 3, column 'label'.*not a class.*--task regression"):
        class_names(table, resolve_columns(table))
