"""The model card's plots: the training curve, and predicted against gold scores on the validation split."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

CURVE_PNG = "training_curve.png"
SCATTER_PNG = "eval_scatter.png"
SCORES_PNG = "eval_scores.png"

logger = logging.getLogger(__name__)


def save_plots(card: Any, folder: Path, scores: Any = None, labels: Any = None) -> list[str]:
    """Write the card's PNGs into `folder` and return their file names.

    * ``training_curve.png``: training loss and the validation best metric by step;
    * ``eval_scatter.png`` (regression): predicted vs gold scores on the label scale;
    * ``eval_scores.png`` (binary classification, reranking): score histograms of the gold positive
      and negative pairs, with the decision threshold of a binary classifier.

    `scores` and `labels` are the validation predictions, shape (N,) (labels 0–1; 0/1 for binary
    classification and reranking). Multi-class classification gets no prediction plot. Without matplotlib (the
    ``plots`` extra) nothing is written and the card has no images.
    """
    plt = pyplot()
    if plt is None:
        return []
    written = [CURVE_PNG] if plot_curve(card, folder, plt) else []
    if scores is None or labels is None or len(scores) == 0:
        return written
    variant = card.task_variant()
    if variant == "regression":
        plot_scatter(card, folder, plt, scores, labels)
        written.append(SCATTER_PNG)
    elif variant in ("binary", "reranking"):
        plot_histograms(card, folder, plt, scores, labels)
        written.append(SCORES_PNG)
    return written


def pyplot() -> Any | None:
    """`matplotlib.pyplot` on the non-interactive Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warn_no_matplotlib()
        return None
    return plt


@functools.cache
def warn_no_matplotlib() -> None:
    """Said once per process: model cards get no plots without matplotlib."""
    logger.warning('matplotlib is not installed: model cards are written without plots (pip install "hf_crossenc[plots]" adds them).')


def plot_curve(card: Any, folder: Path, plt: Any) -> bool:
    """training_curve.png: the training loss and the validation best metric by step (False: nothing logged yet)."""
    best = card.best_metric_key()
    best_key = f"eval_{best}"
    best_name = card.metric_header(best)
    loss_points = card.loss_points()
    eval_rows = [r for r in card.log_rows() if best_key in r]
    if loss_points or eval_rows:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        if loss_points:
            ax.plot([p[0] for p in loss_points], [p[1] for p in loss_points], color="tab:blue", label="training loss")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss", color="tab:blue")
        if eval_rows:
            ax2 = ax.twinx()
            ax2.plot([r["step"] for r in eval_rows], [r[best_key] for r in eval_rows], "o-", color="tab:orange", label=f"eval {best_name}")
            ax2.set_ylabel(f"validation {best_name}", color="tab:orange")
        ax.set_title("Training curve")
        fig.tight_layout()
        fig.savefig(folder / CURVE_PNG)
        plt.close(fig)
        return True
    return False


def plot_scatter(card: Any, folder: Path, plt: Any, scores: Any, labels: Any) -> None:
    """eval_scatter.png (regression): predicted against gold scores on the label scale."""
    low, high = card.label_scale
    fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=110)
    gold = [low + (high - low) * float(v) for v in labels]
    pred = [low + (high - low) * float(v) for v in scores]
    ax.scatter(gold, pred, s=6, alpha=0.35)
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.set_xlabel(f"gold label ({low:g}–{high:g})")
    ax.set_ylabel("predicted score (same scale)")
    ax.set_title(f"Validation: predicted vs gold (n={len(scores)})")
    fig.tight_layout()
    fig.savefig(folder / SCATTER_PNG)
    plt.close(fig)


def plot_histograms(card: Any, folder: Path, plt: Any, scores: Any, labels: Any) -> None:
    """eval_scores.png (binary classification, reranking): score histograms of the gold positive and negative pairs,
    with a binary classifier's decision threshold."""
    variant = card.task_variant()
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    gold = np.asarray(labels, dtype=np.float64).reshape(-1)
    if values.shape != gold.shape:
        raise ValueError(f"scores and labels differ in length: {values.shape} vs {gold.shape}")
    positive = gold >= 0.5
    if variant == "binary":
        names = (f"gold {card.positive_label()}", f"gold {card.negative_label()}")
    else:
        names = ("relevant passages", "irrelevant passages")
    bins = np.linspace(min(0.0, float(values.min())), max(1.0, float(values.max())), 41)
    fig, ax = plt.subplots(figsize=(6.0, 3.8), dpi=110)
    ax.hist(values[positive], bins=bins, alpha=0.55, color="tab:green", label=f"{names[0]} (n={int(positive.sum())})")
    ax.hist(values[~positive], bins=bins, alpha=0.55, color="tab:red", label=f"{names[1]} (n={int((~positive).sum())})")
    if variant == "binary" and isinstance(card.threshold, (int, float)) and not isinstance(card.threshold, bool):
        ax.axvline(float(card.threshold), color="black", linestyle="--", linewidth=1, label=f"threshold {card.threshold:.4f}")
    ax.set_xlabel("score" if variant == "reranking" else f"score: probability of {card.positive_label()}")
    ax.set_ylabel("pairs")
    ax.set_title(f"Validation scores by gold label (n={len(values)})")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / SCORES_PNG)
    plt.close(fig)
