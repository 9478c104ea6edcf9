"""hf_crossenc.arrow_shapes: the "positive_negatives" and "lists" reranking shapes read from Arrow give the row path's
groups (query and candidate order, labels, repeats kept once, QueryGroup.row), pairs, stats and first error."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_arrow_ranking import both

from hf_crossenc import arrow_data
from hf_crossenc.arrow_data import ArrowTable, open_table
from hf_crossenc.arrow_ranking import ArrowGroups
from hf_crossenc.errors import DataError
from hf_crossenc.ranking import listwise_dataset, read_groups


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def cached(tmp_path: Path, prefix: str = "shape-") -> list[Path]:
    return sorted((tmp_path / "datasets_cache").rglob(f"{prefix}*"))


def assert_same(old, new, arrow: bool = True) -> None:
    assert not isinstance(old, DataError) and not isinstance(new, DataError), (old, new)
    assert isinstance(new.groups, ArrowGroups) == arrow
    assert list(new.groups) == old.groups and [g.row for g in new.groups] == [g.row for g in old.groups]
    assert new.shape == old.shape and new.raw_label_stats == old.raw_label_stats
    assert new.dataset.features == old.dataset.features and new.dataset.to_dict() == old.dataset.to_dict()
    assert listwise_dataset(new.groups).to_dict() == listwise_dataset(old.groups).to_dict()


POSITIVE_NEGATIVES = (
    "query,positive,negative_2,negative_1,negative_10\n"  # negative columns are read in number order
    "q1,p1,n2,n1,n10\n"
    "q2,p2,,n3,\n"  # empty cells: fewer negatives on this row
    "\n"
    "q1,p3,  ,n1,p1\n"  # whitespace cell; n1 again; p1 again as a negative: kept once, relevant
    '"q 3",p4,"n,5",,n6\n'
    "q2,n3,n7,,\n"  # a negative of q2 comes back as its positive: relevant at its first place
    "q4,p5,,,\n"
)


@pytest.mark.parametrize("max_samples", [None, 1, 3, 5])
def test_positive_negatives_csv_is_identical(tmp_path, max_samples):
    path = write(tmp_path, "pn.csv", POSITIVE_NEGATIVES)
    old, new = both(path, max_samples)
    assert isinstance(open_table(path), ArrowTable) and new.shape == "positive_negatives"
    assert_same(old, new)
    if max_samples is None:
        assert [g.row for g in new.groups] == [2, 3, 6, 8]  # file rows, past the blank line


def test_positive_negatives_csv_in_batches_of_two_rows(tmp_path, monkeypatch):
    """The source file read two rows at a time: groups spanning batches, row numbers from every batch."""
    monkeypatch.setattr(arrow_data, "BATCH_ROWS", 2)
    old, new = both(write(tmp_path, "pn.csv", POSITIVE_NEGATIVES))
    assert_same(old, new)


def parquet(tmp_path: Path, name: str, table: pa.Table) -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


def pn_table() -> pa.Table:
    return pa.table(
        {
            "query": ["q1", "q2", "q1", "q3", "q2"],
            "pos": ["p1", "p2", "p3", "p4", "a"],
            "neg": ["n1", None, "p3", "  ", "n9"],
            "negatives": [["a", "b", "n1"], None, [], ["p4", "c"], ["b", "a"]],
        }
    )


def test_positive_negatives_parquet_with_a_negatives_list(tmp_path):
    old, new = both(parquet(tmp_path, "pn.parquet", pn_table()))
    assert new.shape == "positive_negatives"
    assert_same(old, new)
    assert new.groups[0].passages == ["p1", "n1", "a", "b", "p3"] and new.groups[0].labels == [1, 0, 0, 0, 1]


LISTS = pa.table(
    {
        "query": ["q1", "q2", "q1", "q3"],
        "passages": [["a", "b", "c"], ["d"], ["c", "e", "a"], ["f", "g"]],
        "labels": [[0, 1, 0], [1], [1, 0, 0], [0, 0]],
    }
)


@pytest.mark.parametrize("max_samples", [None, 2])
@pytest.mark.parametrize(
    "labels",
    [
        [[0, 1, 0], [1], [1, 0, 0], [0, 0]],
        [[False, True, False], [True], [True, False, False], [False, False]],
        [["0", " 1 ", "0.0"], ["1"], ["1", "0", "0"], ["0", "0"]],
        [[0.0, 1.0, 0.0], [1.0], [1.0, 0.0, 0.0], [0.0, 0.0]],
    ],
)
def test_lists_parquet_is_identical(tmp_path, labels, max_samples):
    old, new = both(parquet(tmp_path, "l.parquet", LISTS.set_column(2, "labels", pa.array(labels))), max_samples)
    assert new.shape == "lists"
    assert_same(old, new)
    if max_samples is None:  # c is relevant in its second copy: kept at its first place, relevant
        assert new.groups[0].passages == ["a", "b", "c", "e"] and new.groups[0].labels == [0, 1, 1, 0]


def test_jsonl_shapes_are_identical(tmp_path):
    """JSONL: over Arrow when `open_table` reads it so, else through `read_table` (the row path) - the same groups."""
    records = [{"query": r["query"], "passages": r["passages"], "labels": r["labels"]} for r in LISTS.to_pylist()]
    old, new = both(write(tmp_path, "l.jsonl", "\n".join(json.dumps(r) for r in records) + "\n"))
    assert_same(old, new, arrow=isinstance(open_table(tmp_path / "l.jsonl"), ArrowTable))
    old, new = both(write(tmp_path, "pn.jsonl", "\n".join(json.dumps(r) for r in pn_table().to_pylist()) + "\n"))
    assert_same(old, new, arrow=isinstance(open_table(tmp_path / "pn.jsonl"), ArrowTable))


def test_the_cached_long_form_is_reused(tmp_path):
    path = parquet(tmp_path, "l.parquet", LISTS)
    first = read_groups(open_table(path))[1]
    files = cached(tmp_path)
    assert len(files) == 1 and files[0].stat().st_size > 0
    files[0].write_bytes(b"")  # a second run opens the cached file (and does not read the source again)
    with pytest.raises(Exception):  # noqa: B017 - the emptied cache file is what it reads
        list(read_groups(open_table(path))[1])
    assert list(first)  # the first groups stay readable


def test_empty_lists_leave_the_table_to_the_row_path(tmp_path):
    """A row with empty lists makes a query without candidates: read row by row, as before (no cached long form)."""
    table = LISTS.set_column(1, "passages", pa.array([["a"], [], ["c"], ["f"]])).set_column(2, "labels", pa.array([[1], [], [0], [0]]))
    old, new = both(parquet(tmp_path, "l.parquet", table))
    assert_same(old, new, arrow=False)
    assert [g.query for g in new.groups] == ["q1", "q2", "q3"] and new.groups[1].passages == []
    assert not [p for p in cached(tmp_path) if p.suffix == ".arrow"]


PN_BAD = [
    # (csv, row, column, fragment)
    ("query,positive,negative_1\nq1,p1,n1\n ,p2,n2\n", 3, "query", "empty or whitespace"),
    ("query,positive,negative_1\nq1,p1,n1\nq2,,n2\nq3, ,\n", 3, "positive", "empty or whitespace"),
    ("query,positive,negative_1\nq1,p1,n1\n\nq2,p2,\n ,p3,n3\n", 5, "query", "empty or whitespace"),
]


@pytest.mark.parametrize(("content", "row", "column", "fragment"), PN_BAD)
@pytest.mark.parametrize("batch_rows", [65536, 1])
def test_positive_negatives_csv_errors(tmp_path, monkeypatch, content, row, column, fragment, batch_rows):
    monkeypatch.setattr(arrow_data, "BATCH_ROWS", batch_rows)
    assert_same_error(tmp_path, write(tmp_path, "pn.csv", content), row, column, fragment)


def assert_same_error(tmp_path: Path, path: Path, row: int | None, column: str | None, fragment: str) -> None:
    old, new = both(path)
    assert isinstance(old, DataError) and isinstance(new, DataError), (old, new)
    assert str(new) == str(old) and (new.row, new.column) == (row, column) and fragment in str(new)
    assert not [p for p in cached(tmp_path) if p.suffix == ".arrow"]  # nothing half-written
    assert not cached(tmp_path, "pairs-")


def pn(**columns) -> pa.Table:
    base = {"query": ["q1", "q2", "q3"], "positive": ["p1", "p2", "p3"], "negative_1": ["n1", "n2", None]}
    return pa.table({**base, **columns})


PARQUET_BAD = [
    # positive / negatives
    ("pn", pn(negatives=[["a"], ["b", "c", "d", " "], ["e"]]), 2, "negatives[3]", "empty or whitespace"),
    ("pn", pn(negatives=[["a"], ["b", None], [""]]), 2, "negatives[1]", "missing"),
    ("pn", pn(negative_1=[1, 2, None]), 1, "negative_1", "expected text, found int"),
    ("pn", pn(negative_1=[None, float("nan"), 2.5]), 3, "negative_1", "expected text, found float"),
    ("pn", pn(query=["q1", None, "q3"], negatives=[["a"], [""], ["e"]]), 2, "query", "missing"),  # query before the list
    ("pn", pn(positive=["p1", "p2", ""], negatives=[["a"], ["b"], [""]]), 3, "positive", "empty"),
    ("pn", pn(negative_1=["n1", "  ", ""], negatives=[["a"], ["b"], [None]]), 3, "negatives[0]", "missing"),  # blank cells skipped
    # lists
    ("lists", LISTS.set_column(2, "labels", pa.array([[0, 1, 0], [2], [1, 0, 0], [0, 0]])), 2, "labels", "item 1"),
    ("lists", LISTS.set_column(2, "labels", pa.array([[0, 1, 0], [1], [1, 0, None], [0, 0]])), 3, "labels", "item 3"),
    ("lists", LISTS.set_column(2, "labels", pa.array([[0, 1, 0], [1], [1, 0], [0, 0]])), 3, "labels", "3 passages but 2 labels"),
    ("lists", LISTS.set_column(2, "labels", pa.array([[0, 1, 0], None, [1, 0, 0], [0, 0]])), 2, "labels", "must both be lists"),
    ("lists", LISTS.set_column(1, "passages", pa.array([["a", "b", "c"], ["d"], None, ["f", "g"]])), 3, "labels", "must both be lists"),
    ("lists", LISTS.set_column(1, "passages", pa.array([["a", "b", "c"], ["d"], ["c", " ", "a"], ["f", ""]])), 3, "passages[1]", "empty"),
    ("lists", LISTS.set_column(2, "labels", pa.array([["0", "1", "0"], ["1"], ["1", "0", "x"], ["0", "0"]])), 3, "labels", "'x'"),
    # within a row: passage k before label k, label k before passage k + 1, the lengths before the query
    (
        "lists",
        LISTS.set_column(2, "labels", pa.array([[0, 5, 0], [1], [1, 0, 0], [0, 0]])).set_column(
            1, "passages", pa.array([["a", "b", ""], ["d"], ["c", "e", "a"], ["f", "g"]])
        ),
        1,
        "labels",
        "item 2",
    ),
    (
        "lists",
        LISTS.set_column(2, "labels", pa.array([[0, 1, 0], [1], [1, 0, 0], [0, 0]])).set_column(
            1, "passages", pa.array([["a", "", "c"], ["d"], ["c", "e", "a"], ["f", "g"]])
        ),
        1,
        "passages[1]",
        "empty",
    ),
    (
        "lists",
        LISTS.set_column(0, "query", pa.array(["q1", " ", "q1", "q3"])).set_column(
            2, "labels", pa.array([[0, 1, 0], [1, 0], [1, 0, 0], [0, 0]])
        ),
        2,
        "labels",
        "1 passages but 2 labels",
    ),
    (
        "lists",
        LISTS.set_column(0, "query", pa.array(["q1", " ", "q1", "q3"])).set_column(
            2, "labels", pa.array([[0, 1, 0], [7], [1, 0, 0], [0, 0]])
        ),
        2,
        "query",
        "empty",
    ),
    ("lists", LISTS.rename_columns(["query", "passages", "grades"]), None, None, "no labels list column"),
]


@pytest.mark.parametrize("batch_rows", [65536, 2])
@pytest.mark.parametrize(
    ("kind", "table", "row", "column", "fragment"), PARQUET_BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(PARQUET_BAD)]
)
def test_parquet_errors(tmp_path, monkeypatch, kind, table, row, column, fragment, batch_rows):
    monkeypatch.setattr(arrow_data, "BATCH_ROWS", batch_rows)
    path = parquet(tmp_path, f"{kind}.parquet", table)
    assert isinstance(open_table(path), ArrowTable)
    assert_same_error(tmp_path, path, row, column, fragment)
