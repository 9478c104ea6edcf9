"""The losses of the three tasks, on the logits of one batch: pointwise (BCE / MSE), cross-entropy over classes and
listwise softmax cross-entropy over a query's passages. `cross_encoder_loss` picks one by the shape of the labels."""

from __future__ import annotations

import torch
from torch import nn


def pointwise_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss of one logit per pair against 0–1 targets ('bce' on logits or 'mse' on sigmoid)."""
    logits = logits.float().reshape(-1)
    labels = labels.float().reshape(-1)
    if loss == "bce":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)
    if loss == "mse":
        return nn.functional.mse_loss(torch.sigmoid(logits), labels)
    raise ValueError(f"unknown loss {loss!r}")


def listwise_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over each group's passages, averaged over groups.

    ``logits`` holds ``groups * group_size`` scores in group order; ``targets`` is the
    ``(groups, group_size)`` target distribution (one-hot on the positive: ``-log softmax(positive)``).
    """
    scores = logits.float().reshape(targets.shape)
    return -(targets.float() * torch.log_softmax(scores, dim=-1)).sum(-1).mean()


def cross_encoder_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """The loss of one batch, by the shape of the labels the collator produced.

    * ``(groups, group_size)`` targets for ``groups * group_size`` logits → listwise;
    * ``(pairs, 2)`` (relevance, group id) of reranking evaluation pairs → pointwise BCE on the relevance;
    * class ids with several logits per pair ('ce') → softmax cross-entropy;
    * 0–1 targets → `pointwise_loss`.
    """
    if labels.dim() == 2 and labels.shape[0] != logits.shape[0]:
        if loss != "listwise":
            raise ValueError(f"listwise groups in the batch but --loss {loss}")
        return listwise_loss(logits, labels)
    if labels.dim() == 2:
        labels = labels[:, 0]
    if loss == "ce":
        return nn.functional.cross_entropy(logits.float(), labels.long())
    return pointwise_loss(logits, labels, "bce" if loss == "listwise" else loss)
