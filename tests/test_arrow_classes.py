"""hf_crossenc.arrow_classes: classification splits over Arrow give the row path's vocabulary, datasets, counts and
errors, and a second run opens the cached split."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_data import BAD_INPUTS, write

from hf_crossenc import arrow_classes
from hf_crossenc.arguments import DataArguments
from hf_crossenc.arrow_data import ArrowTable, open_table
from hf_crossenc.data import Table, read_table, resolve_columns
from hf_crossenc.errors import ConfigError, DataError
from hf_crossenc.labels import build_class_split, build_vocab, class_names
from hf_crossenc.task_data import class_split, load_task_data, table_class_names


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "datasets_cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    return cache


def run(train: Path, dev: Path | None, arrow: bool, max_samples: int | None = None, **vocab_args):
    """(vocab, train split, dev split) of the row path (read_table, class_names, build_class_split) or the Arrow
    path (open_table and task_data's dispatch), or the error raised."""
    opener, names_of, split_of = (open_table, table_class_names, class_split) if arrow else (read_table, class_names, build_class_split)
    try:
        table = opener(train)
        columns = resolve_columns(table)
        names, numeric = names_of(table, columns, max_samples)
        vocab = build_vocab(names, numeric=numeric, source=str(train), **vocab_args)
        splits = [split_of(table, columns, name="train", vocab=vocab, max_samples=max_samples)]
        if dev is not None:
            dev_table = opener(dev)
            splits.append(split_of(dev_table, resolve_columns(dev_table), name="validation", vocab=vocab, max_samples=max_samples))
        return vocab, *splits
    except (DataError, ConfigError) as err:
        return err


def assert_same(train: Path, dev: Path | None = None, max_samples: int | None = None, arrow: bool = True, **vocab_args):
    old, new = run(train, dev, False, max_samples, **vocab_args), run(train, dev, True, max_samples, **vocab_args)
    assert isinstance(read_table(train), Table) and (not arrow or isinstance(open_table(train), ArrowTable))
    return compare(old, new)


def compare(old, new):
    """The two paths' results are equal: the same error, or the same vocabulary, datasets and counts."""
    if isinstance(old, Exception):
        assert type(new) is type(old) and str(new) == str(old)
        if isinstance(old, DataError):
            assert (new.row, new.column, new.source) == (old.row, old.column, old.source)
        return old
    assert not isinstance(new, Exception), new
    assert new[0] == old[0]
    for mine, theirs in zip(new[1:], old[1:]):
        assert mine.dataset.features == theirs.dataset.features
        assert mine.dataset.to_dict() == theirs.dataset.to_dict()
        assert mine.raw_label_stats == theirs.raw_label_stats
        assert list(mine.raw_label_stats["counts"]) == list(theirs.raw_label_stats["counts"])
        assert mine.dataset.cache_files  # memory-mapped from the cache
    return old


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


GOOD = [
    ("t.csv", "sentence1,sentence2,label\na,b,1\nc,d,0\n\ne,f,true\ng,h, 1.0 \n", {}),
    ("t.csv", "premise,hypothesis,label\na,b,neutral\nc,d,entailment\ne,f,contradiction\ng,h,neutral\n", {}),
    (
        "t.csv",
        "premise,hypothesis,label\na,b,neutral\nc,d,entailment\ne,f,contradiction\n",
        {"label_names": ["neutral", "entailment", "contradiction"]},
    ),
    ("t.csv", "s1,s2,label\na,b,dup\nc,d,other\ne,f,dup\n", {"positive_label": "dup"}),
    ("t.csv", "s1,s2,label\na,b,2\nc,d,-1\ne,f,10\ng,h,2.0\n", {}),  # numbers sort numerically
    ("t.jsonl", jsonl([{"s1": "a", "s2": "b", "label": 1}, {"s1": "c", "s2": "d", "label": 0}, {"s1": "e", "s2": "f", "label": 1}]), {}),
    ("t.jsonl", jsonl([{"s1": "a", "s2": "b", "label": True}, {"s1": "c", "s2": "d", "label": False}]), {}),
    (
        "t.jsonl",
        jsonl([{"s1": "a", "s2": "b", "label": 2.0}, {"s1": "c", "s2": "d", "label": 0.0}, {"s1": "e", "s2": "f", "label": 1.0}]),
        {},
    ),
    ("t.jsonl", jsonl([{"s1": "a", "s2": "b", "label": "yes"}, {"s1": "c", "s2": "d", "label": "no"}]), {}),
]


@pytest.mark.parametrize(("name", "content", "vocab_args"), GOOD)
@pytest.mark.parametrize("max_samples", [None, 2, 100])
def test_same_vocab_datasets_and_counts(tmp_path, name, content, vocab_args, max_samples):
    train = write(tmp_path, name, content)
    dev = write(tmp_path, f"dev{Path(name).suffix}", content)
    result = assert_same(train, dev, max_samples, **vocab_args)
    assert not isinstance(result, Exception) or isinstance(result, ConfigError)  # e.g. one class left by max_samples


def test_parquet_class_ids_and_hub_like_int_labels(tmp_path):
    rows = [{"sentence1": f"a{i}", "sentence2": f"b{i}", "label": i % 3} for i in range(10)]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    vocab, split = assert_same(path)
    assert vocab.names == ("0", "1", "2") and split.dataset["label"] == [i % 3 for i in range(10)]


def test_a_categorical_column_with_unused_categories(tmp_path):
    """Only the classes that occur count, in order of appearance (a dictionary's values may hold more, in any order)."""
    labels = pa.DictionaryArray.from_arrays(pa.array([1, 2, 1]), pa.array(["unused", "neutral", "entailment"]))
    path = tmp_path / "cat.parquet"
    pq.write_table(pa.table({"premise": ["x", "y", "z"], "hypothesis": ["p", "q", "r"], "label": labels}), path)
    assert pa.types.is_dictionary(open_table(path).arrow.schema.field("label").type)
    vocab, split = assert_same(path)
    assert vocab.names == ("entailment", "neutral") and split.dataset["label"] == [1, 0, 1]
    assert table_class_names(open_table(path), resolve_columns(open_table(path))) == (["neutral", "entailment"], False)


@pytest.mark.parametrize(("name", "content", "scale", "fragment", "row", "column"), BAD_INPUTS)
def test_the_bad_input_matrix_of_test_data(tmp_path, name, content, scale, fragment, row, column):
    """test_data's matrix as classification data: file-level errors alike, and whatever its labels make (classes,
    an error) alike."""
    path = write(tmp_path, name, content)
    compare(run(path, None, False), run(path, None, True))


CSV = "sentence1,sentence2,label\n"
BAD = [
    (CSV + "a,b,1\nc,d,0\ne,f,paraphrase\n", None, "mixed label types"),
    (CSV + "a,b,paraphrase\nc,d,1\n", None, "mixed label types"),
    (CSV + "a,b,1\nc,d,0.5\n", None, "not a class"),
    (CSV + "a,b,1\nc,d,nan\n", None, "not a class"),
    (CSV + "a,b,1\nc,d,\n", None, "label is empty"),
    (CSV + "a,b, \nc,d,1\n", None, "label is empty"),
    (CSV, None, "no data rows"),
    (CSV + "a,b,1\n,d,0\n", None, "empty or whitespace"),
    (CSV + "a,b,1\nc,  ,0\n", None, "empty or whitespace"),
    (CSV + "a,b,1\nc,,x\n", None, "mixed label types"),  # labels are checked before texts
    (CSV + "a,b,cat\nc,d,dog\n", CSV + "a,b,cat\nc,d,cow\n", "not a class of the training split"),
    (CSV + "a,b,cat\nc,d,dog\n", CSV + "a,,cow\n", "empty or whitespace"),  # texts before unseen classes
    (CSV + "a,b,cat\nc,d,dog\n", CSV + "a,b,1\n", "not a class of the training split"),
    (CSV + "a,b,cat\nc,d,cat\n", None, "single class"),
]


@pytest.mark.parametrize(("train", "dev", "fragment"), BAD)
def test_the_same_errors(tmp_path, train, dev, fragment):
    error = assert_same(write(tmp_path, "t.csv", train), write(tmp_path, "d.csv", dev) if dev else None)
    assert isinstance(error, DataError | ConfigError) and fragment in str(error)


JSONL_BAD = [  # (records, message fragment, read into the Arrow cache)
    ([{"s1": "a", "s2": "b", "label": 2}, {"s1": "c", "s2": "d", "label": "entailment"}], "mixed label types", False),
    ([{"s1": "a", "s2": "b", "label": 1}, {"s1": "c", "s2": "d"}], "label is empty", True),
    ([{"s1": "a", "s2": "b", "label": 1.0}, {"s1": "c", "s2": "d", "label": 0.5}], "not a class", True),
    ([{"s1": "a", "s2": "b", "label": 1.0}, {"s1": "c", "s2": "d", "label": float("nan")}], "label is empty", True),
    ([{"s1": "a", "s2": "b", "label": 1}, {"s1": "c", "s2": "d", "label": 2**40}], None, True),  # no error: a big class number
    ([{"s1": "a", "s2": "b", "label": 1}, {"s1": "c", "s2": 7, "label": 0}], "expected text", False),
    ([{"s1": "a", "s2": "b", "label": 1}, {"s1": "c", "s2": ["d"], "label": 0}], "expected text", False),
    ([{"s1": "a", "s2": "b", "label": 1}, {"s1": "c", "s2": None, "label": 0}], "text is missing", True),
    ([{"s1": "a", "s2": "b", "label": [1]}, {"s1": "c", "s2": "d", "label": [0]}], None, True),  # lists: as the row path says
]


@pytest.mark.parametrize(("records", "fragment", "arrow"), JSONL_BAD)
def test_the_same_jsonl_errors(tmp_path, records, fragment, arrow):
    result = assert_same(write(tmp_path, "t.jsonl", jsonl(records)), arrow=arrow)
    assert fragment is None or fragment in str(result)


def test_a_late_bad_label_in_a_later_chunk(tmp_path, monkeypatch):
    """The first bad row is found across chunks (the Arrow file holds one per 2 rows here)."""
    from hf_crossenc import arrow_data

    monkeypatch.setattr(arrow_data, "BATCH_ROWS", 2)
    rows = [f"t{i},u{i},{i % 2}" for i in range(7)] + ["x,y,maybe"]
    error = assert_same(write(tmp_path, "t.csv", CSV + "\n".join(rows) + "\n"))
    assert isinstance(error, DataError) and error.row == 9 and "mixed label types" in str(error)


def test_load_task_data_dispatches_and_a_second_run_reads_the_cache(tmp_path, monkeypatch, _cache):
    train = write(tmp_path, "t.csv", "premise,hypothesis,label\na,b,neutral\nc,d,entailment\ne,f,contradiction\n")
    dev = write(tmp_path, "d.csv", "premise,hypothesis,label\na,b,neutral\n")
    args = DataArguments(train_file=str(train), validation_file=str(dev))
    first = load_task_data(args, "classification")
    assert first.vocab.names == ("contradiction", "entailment", "neutral")
    assert first.splits["train"].dataset["label"] == [2, 1, 0] and first.splits["validation"].dataset["label"] == [2]
    assert len(list(_cache.rglob("classes-*.arrow"))) == 2
    monkeypatch.setattr(arrow_classes, "_write_class_split", lambda *a: pytest.fail("written again"))
    again = load_task_data(args, "classification")
    assert again.splits["train"].dataset.to_dict() == first.splits["train"].dataset.to_dict()
    assert again.splits["train"].raw_label_stats == first.splits["train"].raw_label_stats


def test_a_bad_split_writes_no_cache(tmp_path, _cache):
    train = write(tmp_path, "t.csv", CSV + "a,b,1\nc,d,0\n")
    dev = write(tmp_path, "d.csv", CSV + "a,b,1\nc,d,2\n")
    with pytest.raises(DataError, match="not a class of the training split"):
        load_task_data(DataArguments(train_file=str(train), validation_file=str(dev)), "classification")
    assert len(list(_cache.rglob("classes-*"))) == 1  # the training split's (valid) only, nothing half-written
