"""hf_crossenc.arrow_ranking: reranking rows read from Arrow give the in-memory reader's groups, pairs, listwise
examples, sampler draws and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_data import write

from hf_crossenc import arrow_data, arrow_ranking
from hf_crossenc.arrow_data import ArrowTable, open_table
from hf_crossenc.arrow_ranking import ArrowGroups
from hf_crossenc.data import read_table
from hf_crossenc.errors import DataError
from hf_crossenc.ranking import INDEX, ListwiseSampler, build_ranking_split, check_pointwise_training, listwise_dataset


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))


ROWS = (
    "question,answer,label\n"
    "q1,p1,0\n"
    "q2,p2,1\n"
    "q1,p3,1\n"
    "\n"
    "q1,p1,1\n"  # a repeated candidate: kept at its first place, relevant since one copy is
    "q3,p4,0\n"
    "q2,p1,0.0\n"
    '"q 4",p5, 1 \n'
    "q4,p6,0\n"
    "q3,p2,0\n"
)


def both(path: Path, max_samples: int | None = None):
    out = []
    for opener in (read_table, open_table):
        try:
            out.append(build_ranking_split(opener(path), name="train", max_samples=max_samples))
        except DataError as err:
            out.append(err)
    return out


@pytest.mark.parametrize("max_samples", [None, 3, 6])
def test_same_groups_pairs_and_stats(tmp_path, max_samples):
    path = write(tmp_path, "r.csv", ROWS)
    old, new = both(path, max_samples)
    assert isinstance(open_table(path), ArrowTable) and isinstance(new.groups, ArrowGroups)
    assert new.dataset.features == old.dataset.features and new.dataset.to_dict() == old.dataset.to_dict()
    assert list(new.groups) == old.groups and new.raw_label_stats == old.raw_label_stats and new.shape == old.shape
    assert [g.row for g in new.groups] == [g.row for g in old.groups]


@pytest.mark.parametrize(("write_rows", "batch_rows"), [(65536, 65536), (2, 3), (1, 2), (3, 1)])
def test_same_listwise_examples_and_draws(tmp_path, monkeypatch, write_rows, batch_rows):
    """Also when the source file is read a few rows at a time (query numbers unified over chunks) and the cached
    pairs and listwise files are built and written a few groups or rows at a time (as at 10^7 pairs)."""
    monkeypatch.setattr(arrow_ranking, "WRITE_ROWS", write_rows)
    monkeypatch.setattr(arrow_data, "BATCH_ROWS", batch_rows)
    path = write(tmp_path, "r.csv", ROWS)
    old, new = both(path)
    assert new.dataset.features == old.dataset.features and new.dataset.to_dict() == old.dataset.to_dict()
    check_pointwise_training(new.groups)
    examples = [listwise_dataset(split.groups) for split in (old, new)]
    assert examples[0].features == examples[1].features and examples[0].to_dict() == examples[1].to_dict()
    batches = []
    for split, dataset in zip((old, new), examples):
        sampler = ListwiseSampler(split.groups, 4, seed=3)  # groups of 4: most queries are topped up from the pool
        assert list(sampler.pool) == list(dict.fromkeys(p for g in old.groups for p in g.passages))
        batches.append(dataset.add_column(INDEX, np.arange(len(dataset))).with_transform(sampler)[:])
    assert batches[0] == batches[1]
    assert [g.row for g in new.groups] == [g.row for g in old.groups]


def test_an_incomplete_cache_is_built_again(tmp_path):
    """The offsets are written last: without them the pairs file is not trusted, and is built again."""
    path = write(tmp_path, "r.csv", ROWS)
    first = build_ranking_split(open_table(path), name="train")
    offsets = sorted((tmp_path / "datasets_cache").rglob("pairs-*.offsets.npy"))
    assert len(offsets) == 1
    offsets[0].unlink()
    again = build_ranking_split(open_table(path), name="train")
    assert offsets[0].is_file() and list(again.groups) == list(first.groups)


BAD = [
    ("question,answer,label\nq1,p1,1\nq1,p2,2\n", 3, "label", "reranking labels are 0"),
    ("question,answer,label\nq1,p1,1\n\n , p2,1\n", 4, "question", "empty or whitespace"),
    ("question,answer,label\nq1,p1,yes\nq1,,1\n", 2, "label", "reranking labels are 0"),  # rows in order
    ("question,answer,label\nq1,,x\n", 2, "answer", "empty or whitespace"),  # query, passage, label within a row
    ("question,answer,label\n", None, None, "no data rows"),
]


@pytest.mark.parametrize(("content", "row", "column", "fragment"), BAD)
def test_the_same_errors(tmp_path, content, row, column, fragment):
    old, new = both(write(tmp_path, "r.csv", content))
    assert isinstance(old, DataError) and isinstance(new, DataError)
    assert str(new) == str(old) and (new.row, new.column) == (row, column) and fragment in str(new)


def test_trecqa_is_identical(tmp_path):
    from conftest import SHARED_DATA, require_benchmark_data

    for name in ("train.csv", "dev.csv"):
        old, new = both(require_benchmark_data(SHARED_DATA / "trecqa" / name))
        assert new.dataset.to_dict() == old.dataset.to_dict() and list(new.groups) == old.groups
        assert listwise_dataset(new.groups).to_dict() == listwise_dataset(old.groups).to_dict()


def test_no_positive_at_all_is_the_same_error(tmp_path):
    path = write(tmp_path, "r.csv", "question,answer,label\nq1,a,0\nq1,b,0\nq2,c,0\n")
    errors = []
    for split in both(path):
        with pytest.raises(DataError) as info:
            listwise_dataset(split.groups, source=str(path))
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "no training group can be formed" in errors[1]


@pytest.mark.parametrize("group_size", [6, 7])
def test_the_passage_pool_needs_as_many_passages_as_a_group(tmp_path, group_size):
    """ROWS has 6 distinct passages: groups of 6 can be drawn, of 7 neither reader allows."""
    old, new = both(write(tmp_path, "r.csv", ROWS))
    outcomes = []
    for split in (old, new):
        try:
            outcomes.append(len(ListwiseSampler(split.groups, group_size, seed=0).pool))
        except DataError as err:
            outcomes.append(str(err))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1] == 6 if group_size == 6 else "need at least that many distinct passages; the data has 6" in outcomes[1]


def test_the_passage_pool_is_read_only_when_a_group_is_topped_up(tmp_path):
    rows = "question,answer,label\n" + "".join(f"q{q},p{q}-{k},{int(k == 0)}\n" for q in range(3) for k in range(4))
    split = build_ranking_split(open_table(write(tmp_path, "r.csv", rows)), name="train")
    dataset = listwise_dataset(split.groups)
    enough = ListwiseSampler(split.groups, 4, seed=0)  # every query has 3 negatives: no top-up
    dataset.add_column(INDEX, np.arange(len(dataset))).with_transform(enough)[:]
    assert enough.pool._texts is None and enough.topped_up == 0
    short = ListwiseSampler(split.groups, 5, seed=0)
    drawn = dataset.add_column(INDEX, np.arange(len(dataset))).with_transform(short)[:]
    assert short.topped_up == 3 and len(short.pool) == 12 and all(len(negs) == 4 for negs in drawn["negatives"])
