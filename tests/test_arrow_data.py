"""hf_crossenc.arrow_data: the memory-mapped Arrow path gives the in-memory path's datasets, stats and errors, and a
second run opens its cache; hf_crossenc.length_sampler draws transformers' length-grouped order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import SHARED_DATA
from test_data import BAD_INPUTS, write
from transformers.trainer_pt_utils import get_length_grouped_indices

from hf_crossenc import arrow_data, data_collator
from hf_crossenc.arrow_data import ArrowTable, build_arrow_split, open_table
from hf_crossenc.data import PairColumns, build_split, parse_label_scale, read_table, resolve_columns
from hf_crossenc.data_collator import add_lengths
from hf_crossenc.errors import DataError
from hf_crossenc.length_sampler import CrossEncoderLengthGroupedSampler, column_lengths, length_grouped_indices
from hf_crossenc.task_data import pair_split


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "datasets_cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    return cache


def both(path: Path, scale: str | None = "0,5", max_samples: int | None = None, **columns: str):
    """(in-memory split, Arrow split) of one file, or the DataError each raised."""
    out = []
    for opener, builder in ((read_table, build_split), (open_table, pair_split)):
        try:
            table = opener(path)
            cols = resolve_columns(table, **columns)
            out.append(builder(table, cols, name="train", scale=parse_label_scale(scale), max_samples=max_samples))
        except DataError as err:
            out.append(err)
    return out


TRICKY_CSV = (
    "\ufeffsentence1, sentence2 ,score\r\n"
    '"multi\nline, quoted",plain,4.5\r\n'
    "\r\n"  # a blank line: skipped, yet counted in row numbers
    'caf\u00e9 "x",\u3000padded\u3000,0\r\n'
    '"He said ""hi""",b,1e0\r\n'
    "a,b,.5\r\n"
    "x,y,5\r\n"
)


@pytest.mark.parametrize("max_samples", [None, 2, 100])
def test_same_dataset_and_stats_as_the_in_memory_path(tmp_path, max_samples):
    path = write(tmp_path, "t.csv", TRICKY_CSV)
    old, new = both(path, max_samples=max_samples)
    assert isinstance(open_table(path), ArrowTable)
    assert new.dataset.features == old.dataset.features
    assert new.dataset.to_dict() == old.dataset.to_dict()
    assert new.raw_label_stats == old.raw_label_stats  # the same digits: left-to-right sums
    assert new.dataset.cache_files  # memory-mapped from the cache


def test_stsb_slices_are_identical(stsb_slices):
    for path in stsb_slices.values():
        old, new = both(Path(path))
        assert new.dataset.to_dict() == old.dataset.to_dict() and new.raw_label_stats == old.raw_label_stats


def test_parquet_and_plain_tsv(tmp_path):
    rows = [{"query": "q1", "passage": "p1", "label": 1}, {"query": "q2", "passage": "p2", "label": 0}]
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    tsv = write(tmp_path, "d.tsv", "query\tpassage\tlabel\nq1\tp1\t1\nq2\tp2\t0\n")
    for path in (parquet, tsv):
        old, new = both(path, scale=None)
        assert isinstance(open_table(path), ArrowTable)
        assert new.dataset.to_dict() == old.dataset.to_dict() == {"text_a": ["q1", "q2"], "text_b": ["p1", "p2"], "label": [1.0, 0.0]}


def test_quoted_tsv_is_read_in_memory(tmp_path):
    """Quotes in a TSV may call for the plain reading: the in-memory reader decides, as before."""
    path = write(tmp_path, "glue.tsv", 'sentence1\tsentence2\tscore\n"Hello," he said.\tHe said hello.\t4.5\nx\ty\t0\n')
    assert not isinstance(open_table(path), ArrowTable)


EXTRA_BAD = [
    ("t.csv", "sentence1,sentence2,score\na,b,1\n\n\na,\u2003\u3000,2\n", "0,5", "empty or whitespace", 5, "sentence2"),
    ("t.csv", "sentence1,sentence2,score\na,b,1\na,b,1_0\n", "0,5", "outside the label scale", 3, "score"),
    ("t.csv", "sentence1,sentence2,score\na,b,1\na,b,1e999\n", "0,5", "not a finite number", 3, "score"),
    ("t.csv", "sentence1,sentence2,score\na,b,x\n,b,1\n", "0,5", "empty or whitespace", 3, "sentence1"),  # texts first
]


@pytest.mark.parametrize(("name", "content", "scale", "fragment", "row", "column"), BAD_INPUTS + EXTRA_BAD)
def test_the_same_errors(tmp_path, name, content, scale, fragment, row, column):
    path = write(tmp_path, name, content)
    old, new = both(path, scale=scale)
    assert isinstance(old, DataError) and isinstance(new, DataError)
    assert str(new) == str(old)
    assert (new.row, new.column) == (row, column) and fragment in str(new)


def test_a_bad_file_writes_no_cache(tmp_path, _cache):
    path = write(tmp_path, "t.csv", "sentence1,sentence2,score\na,b,1\na,b,oops\n")
    both(path)
    assert not list(_cache.rglob("split-*"))


def test_second_open_reads_the_cache(tmp_path, monkeypatch):
    path = write(tmp_path, "t.csv", TRICKY_CSV)
    first = both(path)[1]

    def no_conversion(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(arrow_data, "_delimited_to_arrow", no_conversion)
    monkeypatch.setattr(arrow_data, "_write_split", no_conversion)
    again = build_arrow_split(open_table(path), resolve_columns(open_table(path)), name="train", scale=parse_label_scale("0,5"))
    assert again.dataset.to_dict() == first.dataset.to_dict() and again.raw_label_stats == first.raw_label_stats


def test_a_changed_file_is_read_again(tmp_path):
    path = write(tmp_path, "t.csv", "sentence1,sentence2,score\na,b,1\n")
    assert both(path)[1].dataset["text_a"] == ["a"]
    path.write_text("sentence1,sentence2,score\nchanged,b,1\nmore,c,2\n")
    assert both(path)[1].dataset["text_a"] == ["changed", "more"]


def test_lengths_are_cached_beside_the_data(tmp_path, tokenizer, monkeypatch, _cache):
    path = write(tmp_path, "t.csv", TRICKY_CSV)
    old, new = both(path)
    first = add_lengths(new.dataset, tokenizer, 16, "length")
    assert len(list(_cache.rglob("lengths-*.npy"))) == 1
    monkeypatch.setattr(data_collator, "pair_lengths", lambda *a: pytest.fail("lengths computed again"))
    again = add_lengths(both(path)[1].dataset, tokenizer, 16, "length")
    assert again["length"][:] == first["length"][:] == add_lengths(old.dataset, tokenizer, 16, "length")["length"][:]
    assert list(column_lengths(again, "length")) == again["length"][:]


@pytest.mark.benchmark_data("stsb", "trecqa", "msrp")
@pytest.mark.parametrize("max_length", [None, 24, 128])
def test_lengths_from_distinct_texts_are_the_joint_lengths(tokenizer, max_length):
    """The default job's order of batches rests on this: every benchmark file, with and without truncation."""
    for path in ["stsb/train.csv", "stsb/dev.csv", "trecqa/train.csv", "msrp/train.csv"]:
        table = open_table(SHARED_DATA / path)
        columns = resolve_columns(table)
        dataset = build_arrow_split(table, PairColumns(columns.text_a, columns.text_b, None), name="t", scale=None).dataset
        joint = tokenizer(dataset["text_a"][:], dataset["text_b"][:], truncation="longest_first", max_length=max_length)
        assert data_collator.pair_lengths(dataset, tokenizer, max_length).tolist() == [len(x) for x in joint["input_ids"]]


@pytest.mark.parametrize(("size", "batch"), [(1, 4), (37, 4), (1000, 8), (5000, 3)])
def test_length_grouped_order_is_transformers_order(size, batch):
    lengths = np.random.default_rng(size).integers(3, 40, size)
    expected = get_length_grouped_indices(lengths.tolist(), batch, generator=torch.Generator().manual_seed(7))
    assert length_grouped_indices(lengths, batch, torch.Generator().manual_seed(7)).tolist() == expected
    sampler = CrossEncoderLengthGroupedSampler(batch, lengths, torch.Generator().manual_seed(7))
    assert list(sampler) == expected and len(sampler) == size


def test_mapped_dataset_falls_back_to_from_file_without_the_private_table_class(tmp_path, monkeypatch):
    """`datasets.table.MemoryMappedTable` is not public API: where it is gone, the cached file opens with
    `Dataset.from_file`, the same rows and features."""
    import builtins

    import datasets

    path = tmp_path / "split.arrow"
    datasets.Dataset.from_dict({"text_a": ["a", "b"], "label": [0.5, 1.0]}).save_to_disk(tmp_path / "saved")
    source = next((tmp_path / "saved").glob("*.arrow"))
    path.write_bytes(source.read_bytes())
    mapped = arrow_data.mapped_dataset(path)
    real_import = builtins.__import__

    def without_the_class(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "datasets.table" and "MemoryMappedTable" in (fromlist or ()) and (globals or {}).get("__name__") == arrow_data.__name__:
            raise ImportError("cannot import name 'MemoryMappedTable'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", without_the_class)
    maps = len(arrow_data._MAPS)
    fallback = arrow_data.mapped_dataset(path)
    assert len(arrow_data._MAPS) == maps  # opened by from_file: no map of ours to release
    assert fallback.to_dict() == mapped.to_dict() == {"text_a": ["a", "b"], "label": [0.5, 1.0]}
    assert fallback.features == mapped.features


# ---- JSONL and JSON into the cache ------------------------------------------------------------------------------------


def same_rows(path: Path) -> ArrowTable:
    """open_table's ArrowTable of `path` holds read_table's columns, row numbers and values, types included."""
    old, new = read_table(path), open_table(path)
    assert isinstance(new, ArrowTable)
    assert (new.columns, new.row_numbers, new.row_word, len(new)) == (old.columns, old.row_numbers, old.row_word, len(old.rows))
    for mine, theirs in zip(new.rows, old.rows):  # a missing key reads as None in both: rows are read with .get
        assert json.dumps([mine.get(c) for c in new.columns]) == json.dumps([theirs.get(c) for c in new.columns])
    return new


JSON_LINES = (
    "\ufeff"  # a BOM, dropped
    '{"query": "q1", "passage": "p1", "label": 1, "passages": ["a", "b"], "labels": [1, 0], "meta": {"k": 1.5}}\r\n'
    "\n"  # a blank line: skipped, yet counted
    '{"query": "q2\\u2028x\\u0085", "passage": "p\\r2", "label": 0, "passages": [], "labels": [], "meta": null}\n'
    '{"query": "q3", "passage": "caf\u00e9", "label": 1, "passages": ["c"], "labels": [0], "meta": {"k": NaN}}'
)


@pytest.mark.parametrize("batch_rows", [1, 2, 65536])
def test_jsonl_rows_lines_and_nested_values_survive(tmp_path, monkeypatch, batch_rows):
    monkeypatch.setattr(arrow_data, "BATCH_ROWS", batch_rows)
    path = write(tmp_path, "t.jsonl", JSON_LINES)
    table = same_rows(path)
    assert table.row_numbers == [1, 3, 4] and table.row_word == "line"
    assert table.arrow.schema.field("passages").type == pa.list_(pa.string())
    old, new = both(path, scale=None, text_a="query", text_b="passage", label="label")
    assert new.dataset.to_dict() == old.dataset.to_dict() and new.dataset.cache_files


@pytest.mark.parametrize("batch_rows", [1, 2, 65536])
def test_keys_first_seen_late_and_columns_null_at_first(tmp_path, monkeypatch, batch_rows, _cache):
    """A key first seen in a later batch adds a column (null before), a column null in a whole batch takes the type
    of its values; the temporary segments are gone."""
    monkeypatch.setattr(arrow_data, "BATCH_ROWS", batch_rows)
    lines = [{"s1": "a", "n": None}, {"s1": "b", "n": None}, {"s1": "c", "n": 2, "late": ["x"]}, {"s1": "d", "late": None, "n": 3}]
    path = write(tmp_path, "t.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    table = same_rows(path)
    assert table.columns == ["s1", "n", "late"]
    assert table.arrow.schema.types[:3] == [pa.string(), pa.int64(), pa.list_(pa.string())]
    assert [p.name for p in (_cache / "hf_crossenc").iterdir()] == [table.path.name]


def test_json_records_and_columns_are_read_into_the_cache(tmp_path):
    records = [{"sentence1": "a", "sentence2": "b", "score": 4.5}, {"sentence1": "c", "sentence2": "d", "score": 0.5, "x": [1]}]
    for name, content in (("r.json", records), ("c.json", {"sentence1": ["a", "c"], "sentence2": ["b", "d"], "score": [4.5, 0.5]})):
        path = write(tmp_path, name, json.dumps(content))
        assert same_rows(path).row_word == "record"
        old, new = both(path)
        assert new.dataset.to_dict() == old.dataset.to_dict() and new.raw_label_stats == old.raw_label_stats


UNTYPED = [
    '{"s1": "a", "label": 1}\n{"s1": "b", "label": 1.5}\n',  # an int and a float: Arrow would give back 1.0
    '{"s1": "a", "label": 1}\n{"s1": "b", "label": true}\n',
    '{"s1": "a", "label": [1, 2.5]}\n',  # nested, the same
    '{"s1": "a", "m": {"a": 1}}\n{"s1": "b", "m": {"b": 2}}\n',  # structs would give back both keys
    '{"s1": 123456789012345678901234567890}\n',  # beyond int64
    '{"s1": "\\ud800"}\n',  # a lone surrogate: not UTF-8
    '{"s1": "a"}\n{}\n',  # a row without columns
    '{"s1": "a", "__row__": 1}\n',  # the reserved column name
    "\n\n",  # no records
]


@pytest.mark.parametrize("content", UNTYPED)
def test_what_arrow_cannot_give_back_exactly_is_read_in_memory(tmp_path, _cache, content):
    path = write(tmp_path, "t.jsonl", content)
    table = open_table(path)
    assert not isinstance(table, ArrowTable)
    assert table.rows == read_table(path).rows
    assert not list(_cache.rglob("*.arrow*"))  # nothing left behind, no segment either


def test_a_file_left_to_read_table_goes_there_at_once_until_it_changes(tmp_path, monkeypatch, _cache):
    path = write(tmp_path, "t.jsonl", UNTYPED[0])
    assert not isinstance(open_table(path), ArrowTable)
    assert [p.suffix for p in (_cache / "hf_crossenc").iterdir()] == [".rows"]  # the marker, no data
    monkeypatch.setattr(arrow_data, "_records_to_arrow", lambda *a: pytest.fail("tried again"))
    assert open_table(path).rows == read_table(path).rows
    monkeypatch.undo()
    path.write_text('{"s1": "a", "label": 1}\n{"s1": "b", "label": 2}\n')
    assert isinstance(open_table(path), ArrowTable)


def test_mixed_types_after_the_first_batch_fall_back(tmp_path, monkeypatch, _cache):
    monkeypatch.setattr(arrow_data, "BATCH_ROWS", 2)
    path = write(tmp_path, "t.jsonl", '{"s1": "a"}\n{"s1": "b"}\n{"s1": "c"}\n{"s1": 4}\n')
    assert not isinstance(open_table(path), ArrowTable) and not list(_cache.rglob("*.arrow*"))


JSONL_BAD = [
    (
        "t.jsonl",
        '{"sentence1": "a", "sentence2": "b", "score": 1}\n\n{"sentence1": "a", "sentence2": " ", "score": 1}\n',
        "0,5",
        "empty",
        3,
        "sentence2",
    ),
    (
        "t.jsonl",
        '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": "b"}\n',
        "0,5",
        "label is empty",
        2,
        "score",
    ),
    (
        "t.jsonl",
        '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": "b", "score": 9}\n',
        "0,5",
        "outside",
        2,
        "score",
    ),
    ("t.jsonl", '{"sentence1": "a", "sentence2": "b", "score": "x"}\n', "0,5", "is not a number", 1, "score"),
    ("t.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1, "score": 2}\n', "0,5", "more than once", 1, "score"),
    ("t.jsonl", b'{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "caf\xe9"}\n', "0,5", "not valid UTF-8", 2, None),
    ("t.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1}\n[1]\n', "0,5", "must be a JSON object", 2, None),
    (
        "t.jsonl",
        '\ufeff{"sentence1": "a", "sentence2": "b", "score": 1}\n\ufeff{"sentence1": "a"}\n',
        "0,5",
        "Unexpected UTF-8 BOM",
        2,
        None,
    ),
    ("t.json", '[{"sentence1": "a", "sentence2": ["b"], "score": 1}]', "0,5", "expected text", 1, "sentence2"),
    ("t.json", '[{"sentence1": "a", "sentence2": "b", "score": 1}, 2]', "0,5", "must be a JSON object", 2, None),
]


@pytest.mark.parametrize(("name", "content", "scale", "fragment", "row", "column"), JSONL_BAD)
def test_the_same_jsonl_errors(tmp_path, name, content, scale, fragment, row, column):
    test_the_same_errors(tmp_path, name, content, scale, fragment, row, column)


def test_reranking_shapes_of_jsonl_group_alike(tmp_path):
    """The reranking reader gets an ArrowTable for JSONL now: the "rows" and "lists" shapes group alike."""
    from hf_crossenc.ranking import build_ranking_split

    rows = [{"query": q, "passage": f"p{i}", "label": i % 2} for i, q in enumerate("aabbb")]
    lists = [{"query": "a", "passages": ["x", "y"], "labels": [1, 0]}, {"query": "b", "passages": ["z"], "labels": [0]}]
    for name, records in (("rows.jsonl", rows), ("lists.jsonl", lists)):
        path = write(tmp_path, name, "".join(json.dumps(r) + "\n" for r in records))
        old, new = (build_ranking_split(opener(path), name="train") for opener in (read_table, open_table))
        assert isinstance(open_table(path), ArrowTable) and new.shape == old.shape
        assert [(g.query, g.passages, g.labels, g.row) for g in new.groups] == [(g.query, g.passages, g.labels, g.row) for g in old.groups]
        assert new.dataset.to_dict() == old.dataset.to_dict()
