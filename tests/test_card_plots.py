"""The card's plots, and the card without them when matplotlib (the `plots` extra) is not installed."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from hf_crossenc import card_plots
from hf_crossenc.model_card import CrossEncoderModelCardData, write_card


def card_data() -> CrossEncoderModelCardData:
    return CrossEncoderModelCardData(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        model_name="MiniLM cross-encoder",
        label_scale=[0.0, 5.0],
        eval_metrics={"validation": {"pearson": 0.87, "spearman": 0.86, "n": 4}},
        log_history=[
            {"step": 5, "loss": 0.7, "epoch": 0.5},
            {"step": 10, "loss": 0.5, "epoch": 1.0},
            {"step": 10, "eval_loss": 0.6, "eval_pearson": 0.8, "eval_spearman": 0.81, "epoch": 1.0},
        ],
        best_step=10,
    )


SCORES = np.array([0.1, 0.4, 0.6, 0.9])
LABELS = np.array([0.0, 0.5, 0.5, 1.0])


@pytest.fixture
def no_matplotlib(monkeypatch):
    """`import matplotlib` fails as if it were not installed; the once-per-process warning is armed again."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    card_plots.warn_no_matplotlib.cache_clear()
    yield
    card_plots.warn_no_matplotlib.cache_clear()


def test_with_matplotlib_the_curve_and_the_scatter_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    assert card_plots.save_plots(card_data(), tmp_path, SCORES, LABELS) == [card_plots.CURVE_PNG, card_plots.SCATTER_PNG]
    assert (tmp_path / card_plots.CURVE_PNG).is_file() and (tmp_path / card_plots.SCATTER_PNG).is_file()


def test_without_matplotlib_no_plots_and_one_warning(tmp_path, no_matplotlib, caplog):
    with caplog.at_level(logging.WARNING, logger=card_plots.__name__):
        assert card_plots.save_plots(card_data(), tmp_path, SCORES, LABELS) == []
        assert card_plots.save_plots(card_data(), tmp_path, SCORES, LABELS) == []
    warnings = [r for r in caplog.records if r.name == card_plots.__name__]
    assert len(warnings) == 1 and "matplotlib is not installed" in warnings[0].getMessage()
    assert "hf_crossenc[plots]" in warnings[0].getMessage()
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_the_card_renders_without_images(tmp_path, no_matplotlib):
    path = write_card(card_data(), tmp_path, SCORES, LABELS)
    text = path.read_text(encoding="utf-8")
    assert "Spearman" in text and "0.86" in text
    assert ".png" not in text and "![" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
