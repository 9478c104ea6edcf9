"""hf_crossenc.labels: the label vocabulary of classification (binary or multi-class, class order, --positive_label)
and classes outside it."""

from __future__ import annotations

import pytest

from hf_crossenc.data import read_table, resolve_columns
from hf_crossenc.errors import ConfigError, DataError
from hf_crossenc.labels import LabelVocab, build_class_split, build_vocab, class_names


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


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


def test_unseen_validation_class_names_its_row(tmp_path):
    vocab, _ = vocab_of(write(tmp_path / "t.csv", "premise,hypothesis,label\na,b,neutral\nc,d,entailment\n"))
    dev = read_table(write(tmp_path / "d.csv", "premise,hypothesis,label\na,b,neutral\nc,d,contradiction\n"))
    with pytest.raises(DataError, match=r"d.csv, row 3, column 'label'.*'contradiction' is not a class"):
        build_class_split(dev, resolve_columns(dev), name="validation", vocab=vocab)


def test_single_named_class_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="single class"):
        vocab_of(write(tmp_path / "t.csv", "premise,hypothesis,label\na,b,neutral\nc,d,neutral\n"))
