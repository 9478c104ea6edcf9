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
