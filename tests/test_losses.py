"""hf_crossenc.losses: pointwise (bce, mse, ce) and listwise losses by hand, and the loss chosen by the label shape."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_crossenc.losses import cross_encoder_loss, listwise_loss, pointwise_loss


def test_loss_choice_by_hand():
    logits, labels = torch.tensor([[0.0], [0.0]]), torch.tensor([1.0, 0.0])
    assert pointwise_loss(logits, labels, "bce").item() == pytest.approx(math.log(2))
    assert pointwise_loss(logits, labels, "mse").item() == pytest.approx(0.25)
    # BCE with a soft target of 0.8 at logit 0 is still log 2; at logit log(4) it is the entropy of 0.8.
    soft = pointwise_loss(torch.tensor([math.log(4.0)]), torch.tensor([0.8]), "bce").item()
    assert soft == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    with pytest.raises(ValueError):
        pointwise_loss(logits, labels, "hinge")


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
