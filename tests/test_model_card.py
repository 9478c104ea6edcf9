"""Model card data and rendering, in process (the end-to-end tests check a card from a real run)."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from hf_crossenc.model_card import CrossEncoderModelCardData, render_card, set_card_model_id, write_card


def card_data(**overrides) -> CrossEncoderModelCardData:
    values = dict(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        datasets=["PhilipMay/stsb_multi_mt"],
        dataset_name="STS-B (English)",
        model_name="MiniLM cross-encoder",
        label_scale=[0.0, 5.0],
        max_length=128,
        eval_metrics={"validation": {"pearson": 0.87, "spearman": 0.86, "n": 1500}, "test": {"pearson": 0.84, "spearman": 0.83, "n": 1379}},
        log_history=[
            {"step": 5, "loss": 0.7, "epoch": 0.5},
            {"step": 10, "loss": 0.5, "epoch": 1.0},
            {"step": 10, "eval_loss": 0.6, "eval_pearson": 0.8, "eval_spearman": 0.81, "epoch": 1.0},
            {"step": 20, "loss": 0.4, "epoch": 2.0},
            {"step": 20, "eval_loss": 0.55, "eval_pearson": 0.82, "eval_spearman": 0.80, "epoch": 2.0},
        ],
        best_step=10,
        hyperparameters={"learning_rate": {"value": 5e-5, "default": 5e-5}, "hub_token": {"value": "hf_secret", "default": None}},
        examples=[{"text_a": "A | pipe", "text_b": "B", "gold": 4.0, "score": 0.75, "split": "validation"}],
    )
    values.update(overrides)
    return CrossEncoderModelCardData(**values)


def test_log_rows_one_per_evaluation_with_mean_loss_and_best_marked():
    rows = card_data().log_rows()
    assert [r["step"] for r in rows] == [10, 20]
    assert rows[0]["loss"] == pytest.approx(0.6) and rows[1]["loss"] == pytest.approx(0.4)
    assert [r["best"] for r in rows] == [True, False]


def test_rendered_card_front_matter_and_body(tmp_path):
    path = write_card(card_data(), tmp_path)
    card = ModelCard.load(path)
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {
        ("validation", "pearson"): 0.87,
        ("validation", "spearman"): 0.86,
        ("test", "pearson"): 0.84,
        ("test", "spearman"): 0.83,
    }
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.pipeline_tag == "text-classification" and "cross-encoder" in card.data.tags
    text = card.text
    assert "hf_secret" not in path.read_text() and "hub_token" not in text
    assert "<!-- license: not specified" in text and "## License" not in text
    assert "A \\| pipe" in text  # table cells are escaped
    assert "**0.8100** (best)" in text
    assert (tmp_path / "training_curve.png").is_file()
    assert "eval_scatter.png" not in text  # no predictions given: no scatter, no broken image


def test_publish_points_snippets_at_the_repo(tmp_path):
    path = write_card(card_data(), tmp_path)
    assert 'from_pretrained("path/to/this/model")' in path.read_text()
    assert set_card_model_id(path, "me/my-model")
    text = path.read_text()
    assert 'from_pretrained("me/my-model")' in text and "path/to/this/model" not in text
    assert not set_card_model_id(path, "me/my-model")  # idempotent: nothing left to replace
    assert "me/other" in render_card(card_data(model_id="me/other")).text
