"""hf_crossenc.ranking: reranking data shapes (rows, positive/negative columns, lists), query groups,
listwise groups and ListwiseSampler (negatives per epoch, teacher targets)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_crossenc.data import read_table
from hf_crossenc.errors import DataError
from hf_crossenc.ranking import INDEX, ListwiseSampler, build_ranking_split, listwise_dataset, read_groups


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_shape_groups_by_query(tmp_path):
    path = write(tmp_path / "r.csv", "question,answer,label\nq1,a,1\nq1,b,0\nq2,c,0\nq1,d,0\nq2,e,1\n")
    split = build_ranking_split(read_table(path), name="train")
    assert split.shape == "rows"
    assert [(g.query, g.passages, g.labels) for g in split.groups] == [("q1", ["a", "b", "d"], [1, 0, 0]), ("q2", ["c", "e"], [0, 1])]
    assert split.dataset["group_id"] == [0, 0, 0, 1, 1]
    assert split.raw_label_stats["positives"] == 2 and split.raw_label_stats["queries"] == 2


def test_positive_negative_columns_shape(tmp_path):
    path = write(tmp_path / "pn.csv", "query,positive,negative_1,negative_2\nq1,p1,n1,n2\nq2,p2,n3,\nq1,p3,n1,n4\n")
    shape, groups = read_groups(read_table(path))
    assert shape == "positive_negatives"
    assert groups[0].passages == ["p1", "n1", "n2", "p3", "n4"] and groups[0].labels == [1, 0, 0, 1, 0]
    assert groups[1].passages == ["p2", "n3"]  # the empty negative cell is no candidate


def test_lists_shape(tmp_path):
    records = [{"query": "q1", "passages": ["a", "b", "c"], "labels": [0, 1, 0]}, {"query": "q2", "passages": ["d"], "labels": [1]}]
    path = write(tmp_path / "l.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    shape, groups = read_groups(read_table(path))
    assert shape == "lists" and groups[0].positives == ["b"] and groups[1].negatives == []


def test_lists_shape_length_mismatch(tmp_path):
    path = write(tmp_path / "l.jsonl", json.dumps({"query": "q", "passages": ["a", "b"], "labels": [1]}) + "\n")
    with pytest.raises(DataError, match=r"row 1, column 'labels'.*2 passages but 1 labels"):
        read_groups(read_table(path))


def test_graded_relevance_is_refused_with_row(tmp_path):
    path = write(tmp_path / "r.csv", "question,answer,label\nq1,a,1\nq1,b,2\n")
    with pytest.raises(DataError, match=r"row 3, column 'label'.*0 \(not relevant\) or 1"):
        read_groups(read_table(path))


def test_query_without_positive_warns_in_eval_and_is_counted(tmp_path, caplog):
    path = write(tmp_path / "dev.csv", "question,answer,label\nq1,a,1\nq1,b,0\nq2,c,0\nq2,d,0\n")
    split = build_ranking_split(read_table(path), name="validation")
    assert split.raw_label_stats["queries_without_positive"] == 1
    assert "1 of 2 queries have no relevant candidate" in caplog.text


def test_listwise_without_any_positive_is_an_error(tmp_path):
    path = write(tmp_path / "t.csv", "question,answer,label\nq1,a,0\nq2,b,0\n")
    split = build_ranking_split(read_table(path), name="train")
    with pytest.raises(DataError, match="no training group can be formed"):
        listwise_dataset(split.groups, source=split.source)


def test_listwise_skips_queries_without_positive(tmp_path, caplog):
    path = write(tmp_path / "t.csv", "question,answer,label\nq1,a,1\nq1,b,0\nq2,c,0\nq3,d,1\nq3,e,1\n")
    dataset = listwise_dataset(build_ranking_split(read_table(path), name="train").groups)
    assert dataset["text_b"] == ["a", "d", "e"]  # one example per (query, positive)
    assert "1 of 3 queries have no relevant candidate and form no group" in caplog.text


def sampler_setup(tmp_path, group_size=3, seed=0):
    path = write(
        tmp_path / "t.csv", "question,answer,label\nq1,p1,1\nq1,n1,0\nq1,n2,0\nq1,n3,0\nq2,p2,1\nq2,m1,0\nq3,p3,1\nq3,o1,0\nq3,o2,0\n"
    )
    groups = build_ranking_split(read_table(path), name="train").groups
    dataset = listwise_dataset(groups)
    sampler = ListwiseSampler(groups, group_size=group_size, seed=seed)
    return groups, dataset.add_column(INDEX, list(range(len(dataset)))).with_transform(sampler), sampler


def test_listwise_negatives_come_from_the_query_and_are_topped_up(tmp_path):
    groups, dataset, sampler = sampler_setup(tmp_path, group_size=4)
    rows = [dataset[i] for i in range(len(dataset))]
    assert all(len(r["negatives"]) == 3 for r in rows)
    assert set(rows[0]["negatives"]) == {"n1", "n2", "n3"}  # q1 has exactly three labelled negatives
    q2 = rows[1]["negatives"]
    assert "m1" in q2 and "p2" not in q2 and len(set(q2)) == 3  # topped up from other queries, never its own positive
    assert sampler.topped_up >= 1


def test_listwise_sampling_is_deterministic_per_epoch(tmp_path):
    _, dataset, sampler = sampler_setup(tmp_path, group_size=3, seed=7)
    first = [dataset[i]["negatives"] for i in range(len(dataset))]
    assert first == [dataset[i]["negatives"] for i in range(len(dataset))]
    epochs = []
    for epoch in range(6):
        sampler.epoch = epoch
        epochs.append(dataset[0]["negatives"])
    assert len({tuple(e) for e in epochs}) > 1  # fresh negatives in other epochs


class StubReranker:
    """Logit 2 for (q1, p1), 0 for every other pair; remembers what it was asked to score."""

    def __init__(self):
        self.calls = []

    def logits(self, pairs):
        self.calls.append(list(pairs))
        return np.array([2.0 if pair == ("q1", "p1") else 0.0 for pair in pairs])


def test_listwise_sampler_mixes_a_reranker_teacher(tmp_path):
    path = write(tmp_path / "t.csv", "question,answer,label\nq1,p1,1\nq1,n1,0\nq1,n2,0\nq2,p2,1\n")
    groups = build_ranking_split(read_table(path), name="train").groups
    reranker = StubReranker()
    sampler = ListwiseSampler(
        groups, group_size=3, seed=0, teacher=StubEncoder(), teacher_weight=0.5, temperature=1.0, reranker=reranker, reranker_share=0.6
    )
    # The labelled pairs are scored once, up front.
    assert sorted(reranker.calls[0]) == [("q1", "n1"), ("q1", "n2"), ("q1", "p1"), ("q2", "p2")]
    dataset = listwise_dataset(groups).add_column(INDEX, [0, 1]).with_transform(sampler)
    row = dataset[0]
    bi = np.exp([1.0, 0.0, 0.0]) / np.exp([1.0, 0.0, 0.0]).sum()  # cosine(q1, p1) = 1, others 0
    ce = np.exp([2.0, 0.0, 0.0]) / np.exp([2.0, 0.0, 0.0]).sum()
    np.testing.assert_allclose(row["targets"], 0.5 * np.array([1.0, 0, 0]) + 0.5 * (0.4 * bi + 0.6 * ce))
    # q2 has no labelled negative: its group is topped up with other queries' passages, scored when first drawn.
    before = len(reranker.calls)
    q2 = dataset[1]
    assert len(reranker.calls) == before + 1 and all(pair[0] == "q2" for pair in reranker.calls[-1])
    assert all(("q2", n) in sampler.logits for n in q2["negatives"])
    dataset[1]  # same epoch, same negatives: nothing new to score
    assert len(reranker.calls) == before + 1


class StubEncoder:
    """Embeddings chosen by hand: cosine(q1, p1) = 1, cosine(q1, anything else) = 0."""

    def encode(self, texts):
        return np.array([[1.0, 0.0] if t in ("q1", "p1") else [0.0, 1.0] for t in texts])


def test_listwise_sampler_emits_teacher_targets(tmp_path):
    path = write(tmp_path / "t.csv", "question,answer,label\nq1,p1,1\nq1,n1,0\nq1,n2,0\n")
    groups = build_ranking_split(read_table(path), name="train").groups
    dataset = listwise_dataset(groups)
    sampler = ListwiseSampler(groups, group_size=3, seed=0, teacher=StubEncoder(), teacher_weight=0.5, temperature=1.0)
    row = dataset.add_column(INDEX, [0]).with_transform(sampler)[0]
    soft = np.exp([1.0, 0.0, 0.0]) / np.exp([1.0, 0.0, 0.0]).sum()
    np.testing.assert_allclose(row["targets"], 0.5 * np.array([1.0, 0, 0]) + 0.5 * soft)
    plain = dataset.add_column(INDEX, [0]).with_transform(ListwiseSampler(groups, group_size=3, seed=0))[0]
    assert plain["targets"] == [1.0, 0.0, 0.0]
