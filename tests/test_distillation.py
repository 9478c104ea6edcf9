"""hf_crossenc.distillation: the teacher's target arithmetic (calibration, label mixing, group targets) and silver pairs."""

from __future__ import annotations

import numpy as np
import pytest

from hf_crossenc.bi_encoder import BiEncoder
from hf_crossenc.distillation import calibrate, mix_labels, teacher_targets


def test_calibration_and_mixing_by_hand():
    cosine = np.array([0.2, 0.5, 0.8])
    gold = np.array([0.1, 0.4, 0.7])  # exactly gold = cos - 0.1
    slope, intercept = calibrate(cosine, gold)
    assert slope == pytest.approx(1.0) and intercept == pytest.approx(-0.1)
    assert teacher_targets(np.array([0.05, 0.5, 1.5]), slope, intercept).tolist() == pytest.approx([0.0, 0.4, 1.0])
    assert mix_labels(np.array([1.0, 0.0]), np.array([0.5, 0.5]), 0.2).tolist() == pytest.approx([0.9, 0.1])
    with pytest.raises(ValueError):
        mix_labels(gold, gold, 1.5)


def test_silver_pairs_pair_first_texts_with_other_pairs(tiny_model_dir):
    from hf_crossenc.distillation import silver_pairs

    encoder = BiEncoder(str(tiny_model_dir), precision="fp32")
    texts_a = [f"first sentence number {i}" for i in range(12)]
    texts_b = [f"second sentence about topic {i}" for i in range(12)]
    new_a, new_b, cos = silver_pairs(texts_a, texts_b, encoder, per_pair=2, seed=1)
    assert len(new_a) == len(new_b) == len(cos) and 12 <= len(new_a) <= 24
    own = dict(zip(texts_a, texts_b))
    assert all(b != own[a] for a, b in zip(new_a, new_b))
    np.testing.assert_allclose(cos, encoder.cosine(new_a, new_b), atol=1e-5)
    assert silver_pairs(texts_a, texts_b, encoder, per_pair=0)[0] == []


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


def silver_pairs_before(texts_a, texts_b, encoder, per_pair, seed=0):
    """`silver_pairs` as it was before it worked over Arrow (commit 9051c61), kept to pin its output."""
    if per_pair <= 0:
        return [], [], np.zeros(0, dtype=np.float32)
    texts_a, texts_b = list(texts_a), list(texts_b)
    rng = np.random.default_rng(seed)
    unique_b = list(dict.fromkeys(texts_b))
    emb_b = encoder.encode(unique_b)
    emb_a = encoder.encode(texts_a)
    index_b = {t: i for i, t in enumerate(unique_b)}
    near = max(1, per_pair - per_pair // 2)
    new_a, new_b, cosines = [], [], []
    for start in range(0, len(texts_a), 512):
        rows = range(start, min(start + 512, len(texts_a)))
        sims = emb_b[[index_b[texts_b[i]] for i in rows]] @ emb_b.T
        for k, i in enumerate(rows):
            sims[k, index_b[texts_b[i]]] = -np.inf
            partners = list(np.argpartition(-sims[k], near)[:near]) if len(unique_b) > near else []
            partners += list(rng.integers(0, len(unique_b), size=per_pair - len(partners)))
            for j in partners:
                if unique_b[j] in (texts_b[i], texts_a[i]):
                    continue
                new_a.append(texts_a[i])
                new_b.append(unique_b[j])
                cosines.append(float(emb_a[i] @ emb_b[j]))
    return new_a, new_b, np.asarray(cosines, dtype=np.float32)


def silver_texts():
    """Repeated first and second texts, first texts that are also second texts, 600 pairs (two blocks of 512)."""
    texts_a = [f"first sentence number {i % 37}" if i % 5 else f"second sentence on topic {i % 11}" for i in range(600)]
    texts_b = [f"second sentence on topic {i % 53}" for i in range(600)]
    return texts_a, texts_b


@pytest.mark.parametrize(("per_pair", "seed"), [(1, 0), (2, 1), (3, 7), (5, 2)])
def test_silver_pairs_are_the_same_as_before(tiny_model_dir, tmp_path, monkeypatch, per_pair, seed):
    """The same pairs and cosines for the same seed as the implementation over Python lists, from lists and from a
    memory-mapped dataset's columns (with and without an indices mapping); fresh encoders, so the embeddings too."""
    import datasets

    from hf_crossenc import distillation
    from hf_crossenc.distillation import silver_pair_table, silver_pairs

    texts_a, texts_b = silver_texts()
    expected = silver_pairs_before(texts_a, texts_b, BiEncoder(str(tiny_model_dir), precision="fp32"), per_pair, seed)
    assert len(expected[0]) > 600 * per_pair // 2
    got = silver_pairs(texts_a, texts_b, BiEncoder(str(tiny_model_dir), precision="fp32"), per_pair, seed)
    assert got[0] == expected[0] and got[1] == expected[1] and np.array_equal(got[2], expected[2])
    datasets.Dataset.from_dict({"text_a": texts_a, "text_b": texts_b}).save_to_disk(str(tmp_path / "d"))
    mapped = datasets.load_from_disk(str(tmp_path / "d"))
    table, cosine = silver_pair_table(mapped["text_a"], mapped["text_b"], BiEncoder(str(tiny_model_dir), precision="fp32"), per_pair, seed)
    assert table.column("text_a").to_pylist() == expected[0] and table.column("text_b").to_pylist() == expected[1]
    assert np.array_equal(cosine, expected[2])
    order = list(range(599, -1, -1))
    reversed_ = silver_pairs_before(
        [texts_a[i] for i in order], [texts_b[i] for i in order], BiEncoder(str(tiny_model_dir), precision="fp32"), per_pair, seed
    )
    selected = mapped.select(order)
    assert selected._indices is not None
    monkeypatch.setattr(distillation, "TAKE_ROWS", 7)  # the new pairs' texts taken a few at a time
    got = silver_pairs(selected["text_a"], selected["text_b"], BiEncoder(str(tiny_model_dir), precision="fp32"), per_pair, seed)
    assert got[0] == reversed_[0] and got[1] == reversed_[1] and np.array_equal(got[2], reversed_[2])
