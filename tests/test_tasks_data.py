"""Classification labels and reranking data shapes: parsing, validation, grouping and listwise groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_crossenc.data import build_class_split, class_names, read_table, resolve_columns
from hf_crossenc.data_collator import CrossEncoderDataCollator
from hf_crossenc.errors import ConfigError, DataError
from hf_crossenc.labels import LabelVocab, build_vocab
from hf_crossenc.losses import cross_encoder_loss, listwise_loss
from hf_crossenc.ranking import INDEX, ListwiseSampler, build_ranking_split, listwise_dataset, read_groups


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ---- classification labels -------------------------------------------------------------


def vocab_of(path, **kwargs):
    table = read_table(path)
    names, numeric = class_names(table, resolve_columns(table))
    return build_vocab(names, numeric=numeric, source=str(path), **kwargs), table


def test_binary_numbers_and_booleans(tmp_path):
    vocab, _ = vocab_of(write(tmp_path / "a.csv", "sentence1,sentence2,label\na,b,1\nc,d,0\ne,f,true\n"))
    assert vocab == LabelVocab(("0", "1"), binary=True)
    assert vocab.num_labels == 1 and vocab.id2label() == {0: "1"}


def test_named_classes_are_multiclass_sorted(tmp_path):
    path = write(tmp_path / "nli.csv", "premise,hypothesis,label\na,b,neutral\nc,d,entailment\ne,f,contradiction\n")
    vocab, table = vocab_of(path)
    assert vocab.names == ("contradiction", "entailment", "neutral") and not vocab.binary and vocab.num_labels == 3
    split = build_class_split(table, resolve_columns(table), name="train", vocab=vocab)
    assert split.dataset["label"] == [2, 1, 0]
    assert split.raw_label_stats == {"counts": {"contradiction": 1, "entailment": 1, "neutral": 1}}


def test_positive_label_makes_named_pair_binary(tmp_path):
    vocab, _ = vocab_of(write(tmp_path / "p.csv", "s1,s2,label\na,b,dup\nc,d,other\n"), positive_label="dup")
    assert vocab == LabelVocab(("other", "dup"), binary=True)
    with pytest.raises(ConfigError, match="not a class"):
        vocab_of(write(tmp_path / "q.csv", "s1,s2,label\na,b,dup\nc,d,other\n"), positive_label="yes")


def test_class_names_fix_the_order(tmp_path):
    path = write(tmp_path / "nli.csv", "premise,hypothesis,label\na,b,neutral\nc,d,entailment\ne,f,contradiction\n")
    vocab, _ = vocab_of(path, label_names=["entailment", "neutral", "contradiction"])
    assert vocab.names == ("entailment", "neutral", "contradiction")
    with pytest.raises(ConfigError, match="lacks the class"):
        vocab_of(path, label_names=["entailment", "neutral"])


def test_mixed_label_types_name_file_row_and_column(tmp_path):
    path = write(tmp_path / "mixed.csv", "sentence1,sentence2,label\na,b,1\nc,d,0\ne,f,paraphrase\n")
    table = read_table(path)
    with pytest.raises(DataError) as err:
        class_names(table, resolve_columns(table))
    message = str(err.value)
    assert f"file {path}, row 4, column 'label'" in message
    assert "mixed label types" in message and "row 2" in message


def test_mixed_label_types_in_json(tmp_path):
    path = write(tmp_path / "mixed.jsonl", '{"s1": "a", "s2": "b", "label": 2}\n{"s1": "c", "s2": "d", "label": "entailment"}\n')
    table = read_table(path)
    with pytest.raises(DataError, match=r"row 2, column 'label'.*mixed label types"):
        class_names(table, resolve_columns(table))


def test_fractional_label_is_not_a_class(tmp_path):
    path = write(tmp_path / "f.csv", "sentence1,sentence2,label\na,b,1\nc,d,0.5\n")
    table = read_table(path)
    with pytest.raises(DataError, match=r"row 3, column 'label'.*not a class.*--task regression"):
        class_names(table, resolve_columns(table))


def test_unseen_validation_class_names_its_row(tmp_path):
    vocab, _ = vocab_of(write(tmp_path / "t.csv", "premise,hypothesis,label\na,b,neutral\nc,d,entailment\n"))
    dev = read_table(write(tmp_path / "d.csv", "premise,hypothesis,label\na,b,neutral\nc,d,contradiction\n"))
    with pytest.raises(DataError, match=r"d.csv, row 3, column 'label'.*'contradiction' is not a class"):
        build_class_split(dev, resolve_columns(dev), name="validation", vocab=vocab)


def test_single_named_class_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="single class"):
        vocab_of(write(tmp_path / "t.csv", "premise,hypothesis,label\na,b,neutral\nc,d,neutral\n"))


# ---- reranking shapes ------------------------------------------------------------------


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


# ---- listwise sampling ----------------------------------------------------------------


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


def test_collator_flattens_groups_in_order(tiny_model_dir):
    from transformers import AutoTokenizer

    collator = CrossEncoderDataCollator(AutoTokenizer.from_pretrained(tiny_model_dir), max_length=32)
    batch = collator(
        [{"text_a": "q one", "text_b": "pos", "negatives": ["n a", "n b"]}, {"text_a": "q two", "text_b": "pos 2", "negatives": ["c", "d"]}]
    )
    assert batch["input_ids"].shape[0] == 6
    assert batch["labels"].tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    tokenizer = collator.tokenizer
    second = tokenizer.decode(batch["input_ids"][1], skip_special_tokens=True)
    assert second.startswith("q one") and second.endswith("n a")


def test_collator_keeps_group_ids_with_eval_labels(tiny_model_dir):
    from transformers import AutoTokenizer

    collator = CrossEncoderDataCollator(AutoTokenizer.from_pretrained(tiny_model_dir))
    batch = collator(
        [{"text_a": "q", "text_b": "a", "label": 1.0, "group_id": 3}, {"text_a": "q", "text_b": "b", "label": 0.0, "group_id": 3}]
    )
    assert batch["labels"].tolist() == [[1.0, 3.0], [0.0, 3.0]]
    classes = collator([{"text_a": "a", "text_b": "b", "label": 2}])
    assert classes["labels"].dtype == torch.int64


# ---- losses ------------------------------------------------------------------------------


def test_listwise_loss_is_minus_log_softmax_of_the_positive():
    logits = torch.tensor([[2.0], [0.0], [1.0], [0.5], [0.5], [3.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    expected = -(np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(1))) + np.log(np.exp(0.5) / (np.exp(0.5) * 2 + np.exp(3)))) / 2
    assert listwise_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    assert cross_encoder_loss(logits, targets, "listwise").item() == pytest.approx(expected, rel=1e-6)


def test_listwise_loss_mean_over_equal_micro_batches_equals_full_batch():
    """Gradient accumulation (and DDP) average per-batch means: equal to the full-batch loss for equal group counts."""
    torch.manual_seed(0)
    logits = torch.randn(4 * 5, 1)
    targets = torch.zeros(4, 5)
    targets[:, 0] = 1
    full = listwise_loss(logits, targets)
    halves = (listwise_loss(logits[:10], targets[:2]) + listwise_loss(logits[10:], targets[2:])) / 2
    assert halves.item() == pytest.approx(full.item(), rel=1e-6)


def test_loss_by_label_shape():
    logits = torch.tensor([[0.3], [-1.0]])
    ranking_eval = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), torch.tensor([1.0, 0.0]))
    assert cross_encoder_loss(logits, ranking_eval, "listwise").item() == pytest.approx(bce.item())
    three = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    ce = torch.nn.functional.cross_entropy(three, torch.tensor([1, 2]))
    assert cross_encoder_loss(three, torch.tensor([1, 2]), "ce").item() == pytest.approx(ce.item())
    with pytest.raises(ValueError, match="listwise groups"):
        cross_encoder_loss(torch.zeros(6, 1), torch.zeros(2, 3), "bce")


# ---- teacher for 0/1 labels and listwise groups ----------------------------------------------


def test_logistic_calibration_recovers_known_parameters():
    from hf_crossenc.distillation import calibrate_logistic, teacher_probabilities

    rng = np.random.default_rng(0)
    cosine = rng.uniform(-1, 1, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-(6.0 * cosine - 1.0)))).astype(float)
    a, b = calibrate_logistic(cosine, labels)
    assert a == pytest.approx(6.0, rel=0.1) and b == pytest.approx(-1.0, abs=0.15)
    assert teacher_probabilities(np.array([1 / 6]), 6.0, -1.0)[0] == pytest.approx(0.5)


def test_group_targets_mix_one_hot_and_teacher_softmax():
    from hf_crossenc.distillation import group_targets

    cosine = np.array([0.5, 0.4, 0.1])
    soft = np.exp(cosine / 0.1) / np.exp(cosine / 0.1).sum()
    got = group_targets(cosine, weight=0.25, temperature=0.1)
    np.testing.assert_allclose(got, 0.75 * np.array([1.0, 0, 0]) + 0.25 * soft)
    assert got.sum() == pytest.approx(1.0)


def test_group_targets_mix_a_rerankers_softmax_into_the_teacher():
    from hf_crossenc.distillation import group_targets

    # cosines [0.5, 0.4] at temperature 0.1 -> softmax([5, 4]) = [0.731059, 0.268941];
    # logits [0, ln 3] -> softmax = [0.25, 0.75]; teacher = 0.5 * each = [0.490529, 0.509471];
    # targets = 0.5 * one-hot + 0.5 * teacher = [0.745265, 0.254735].
    got = group_targets(np.array([0.5, 0.4]), weight=0.5, temperature=0.1, logits=np.array([0.0, np.log(3.0)]), logits_share=0.5)
    np.testing.assert_allclose(got, [0.745265, 0.254735], atol=1e-6)
    alone = group_targets(None, weight=1.0, temperature=0.1, logits=np.array([0.0, np.log(3.0)]))
    np.testing.assert_allclose(alone, [0.25, 0.75])
    with pytest.raises(ValueError):
        group_targets(None, weight=0.5, temperature=0.1)


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
