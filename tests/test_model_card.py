"""Model card data and rendering, in process (the end-to-end tests check a card from a real run)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from huggingface_hub import ModelCard

from hf_crossenc.card_names import STSB_STAGE, describe_local_base
from hf_crossenc.model_card import (
    CrossEncoderModelCardCallback,
    CrossEncoderModelCardData,
    local_base_lineage,
    render_card,
    set_card_model_id,
    write_card,
)


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


def test_a_model_trained_from_a_local_model_names_the_hub_base_beneath_it(tmp_path):
    """Two-stage recipes (STS-B model -> TREC QA / MSRP): the card's base_model is the first stage's Hub base."""
    stage1 = tmp_path / "stsb-model"
    write_card(card_data(), stage1)
    assert local_base_lineage(stage1) == "sentence-transformers/all-MiniLM-L6-v2"
    assert local_base_lineage(tmp_path / "no-card") is None
    via = describe_local_base(stage1)  # in words: the folder name means nothing on the Hub
    assert via == STSB_STAGE
    card = ModelCard(render_card(card_data(via_model=via, task="reranking", label_scale=[0.0, 1.0])).content)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    hub_link = "[`sentence-transformers/all-MiniLM-L6-v2`](https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2)"
    assert f"from {hub_link} by way of {STSB_STAGE} (not on the Hub)" in card.text and "stsb-model" not in card.text


def test_publish_points_snippets_at_the_repo(tmp_path):
    path = write_card(card_data(), tmp_path)
    assert 'from_pretrained("path/to/this/model")' in path.read_text()
    assert set_card_model_id(path, "me/my-model")
    text = path.read_text()
    assert 'from_pretrained("me/my-model")' in text and "path/to/this/model" not in text
    assert not set_card_model_id(path, "me/my-model")  # idempotent: nothing left to replace
    assert "me/other" in render_card(card_data(model_id="me/other")).text


# --------------------------------------------------------------------------------------------
# Classification and reranking cards
# --------------------------------------------------------------------------------------------


def binary_card(**overrides) -> CrossEncoderModelCardData:
    values = dict(
        task="classification",
        activation="sigmoid",
        loss="bce",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_name="Quora duplicates",
        model_name="MiniLM duplicate classifier",
        max_length=128,
        label_names=["different", "duplicate"],
        threshold=0.4321,
        best_metric="accuracy",
        split_sizes={"train": 100, "validation": 40, "test": 30},
        split_sources={"train": "train.csv", "validation": "dev.csv", "test": "test.csv"},
        label_stats={
            "train": {"counts": {"different": 63, "duplicate": 37}},
            "validation": {"counts": {"different": 25, "duplicate": 15}},
        },
        eval_metrics={
            "validation": {"accuracy": 0.8512, "f1": 0.8, "auc": 0.91, "average_precision": 0.88, "n": 40},
            "test": {"accuracy": 0.83, "f1": 0.78, "auc": float("nan"), "average_precision": 0.86, "n": 30},
        },
        log_history=[
            {"step": 5, "loss": 0.6, "epoch": 1.0},
            {"step": 5, "eval_loss": 0.5, "eval_accuracy": 0.80, "eval_f1": 0.7, "eval_auc": 0.88, "eval_average_precision": 0.85, "epoch": 1.0},
            {"step": 10, "loss": 0.4, "epoch": 2.0},
            {"step": 10, "eval_loss": 0.45, "eval_accuracy": 0.8512, "eval_f1": 0.8, "eval_auc": 0.91, "eval_average_precision": 0.88, "epoch": 2.0},
        ],
        best_step=10,
        examples=[
            {"text_a": "How do I learn Python?", "text_b": "What is the best way to learn Python?", "gold": "duplicate", "predicted": "duplicate", "score": 0.93, "split": "validation"},
            {"text_a": "Is the sun a star?", "text_b": "How far is the moon?", "gold": "different", "predicted": "different", "score": 0.04, "split": "validation"},
        ],
    )  # fmt: skip
    values.update(overrides)
    return CrossEncoderModelCardData(**values)


def multiclass_card(**overrides) -> CrossEncoderModelCardData:
    values = dict(
        task="classification",
        activation="softmax",
        loss="ce",
        dataset_name="MultiNLI",
        label_names=["entailment", "neutral", "contradiction"],
        split_sizes={"train": 90, "validation": 30},
        label_stats={"train": {"counts": {"entailment": 30, "neutral": 31, "contradiction": 29}}},
        eval_metrics={"validation": {"accuracy": 0.7012, "f1": 0.6934, "n": 30}},
        log_history=[
            {"step": 4, "loss": 1.0, "epoch": 1.0},
            {"step": 4, "eval_loss": 0.9, "eval_accuracy": 0.7012, "eval_f1": 0.6934, "epoch": 1.0},
        ],
        best_step=4,
        examples=[
            {"text_a": "A man plays a guitar.", "text_b": "A person makes music.", "gold": "entailment", "predicted": "entailment", "score": 0.81, "split": "validation"},
            {"text_a": "A man plays a guitar.", "text_b": "The man is asleep.", "gold": "contradiction", "predicted": "neutral", "score": 0.47, "split": "validation"},
        ],
    )  # fmt: skip
    values.update(overrides)
    return CrossEncoderModelCardData(**values)


def reranking_card(**overrides) -> CrossEncoderModelCardData:
    values = dict(
        task="reranking",
        activation="sigmoid",
        loss="bce",
        dataset_name="MS MARCO (sample)",
        split_sizes={"train": 500, "validation": 200},
        label_stats={"train": {"queries": 50, "positives": 60, "negatives": 440}, "validation": {"queries": 20, "positives": 22, "negatives": 178}},
        eval_metrics={"validation": {"map": 0.6123, "mrr@10": 0.6544, "ndcg@10": 0.7011, "n": 200, "queries": 18, "skipped_queries": 2}},
        log_history=[
            {"step": 10, "loss": 0.5, "epoch": 1.0},
            {"step": 10, "eval_loss": 0.4, "eval_map": 0.55, "eval_mrr@10": 0.6, "eval_ndcg@10": 0.65, "epoch": 1.0},
            {"step": 20, "loss": 0.3, "epoch": 2.0},
            {"step": 20, "eval_loss": 0.35, "eval_map": 0.6123, "eval_mrr@10": 0.6544, "eval_ndcg@10": 0.7011, "epoch": 2.0},
        ],
        best_step=20,
        examples=[
            {"text_a": "what is a cross-encoder", "text_b": "A cross-encoder reads query and passage together.", "gold": 1, "score": 0.97, "split": "validation"},
            {"text_a": "what is a cross-encoder", "text_b": "Bi-encoders embed texts separately.", "gold": 0, "score": 0.41, "split": "validation"},
            {"text_a": "what is a cross-encoder", "text_b": "Paris is the capital of France.", "gold": 0, "score": 0.02, "split": "validation"},
        ],
    )  # fmt: skip
    values.update(overrides)
    return CrossEncoderModelCardData(**values)


def section(text: str, heading: str) -> str:
    """The body of one Markdown section (up to the next heading of the same or a higher level)."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    ends = [i for i in (text.find(f"\n{'#' * n} ", start) for n in range(1, len(level) + 1)) if i != -1]
    return text[start : min(ends) if ends else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """Cells of every Markdown table row in `text` (header and separator rows included)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and line.endswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def row_starting(rows: list[list[str]], first: str) -> list[str]:
    matches = [row for row in rows if row[0] == first]
    assert len(matches) == 1, (first, rows)
    return matches[0]


def eval_results_by_split(card: ModelCard) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for result in card.data.eval_results:
        out.setdefault(result.dataset_split, {})[result.metric_type] = result.metric_value
    return out


def rng_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return np.clip(0.3 * labels + rng.uniform(0, 0.7, n), 0, 1), labels


def test_regression_plots_scatter_only(tmp_path):
    scores, labels = rng_scores(50)
    path = write_card(card_data(), tmp_path, scores, labels)
    assert (tmp_path / "eval_scatter.png").is_file() and not (tmp_path / "eval_scores.png").exists()
    assert "![Predicted vs gold" in path.read_text()
    card = ModelCard.load(path)
    assert card.data.metrics == ["pearsonr", "spearmanr"]
    assert {r.task_name for r in card.data.eval_results} == {"Semantic Similarity"}


def test_binary_classification_card(tmp_path):
    scores, labels = rng_scores(60)
    path = write_card(binary_card(), tmp_path, scores, labels)
    card = ModelCard.load(path)
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.metrics == ["accuracy", "f1", "roc_auc"]
    assert "classification" in card.data.tags
    assert eval_results_by_split(card) == {
        "validation": {"accuracy": 0.8512, "f1": 0.8, "roc_auc": 0.91, "average_precision": 0.88},
        "test": {"accuracy": 0.83, "f1": 0.78, "average_precision": 0.86},  # NaN ROC AUC is left out
    }
    assert {(r.task_type, r.task_name) for r in card.data.eval_results} == {("text-classification", "Pair Classification")}
    text = card.text

    scores_rows = table_rows(section(text, "## Scores"))
    assert "probability of the positive label `duplicate`" in row_starting(scores_rows, "Output")[1]
    threshold = row_starting(scores_rows, "Decision threshold")[1]
    assert threshold.startswith("0.4321") and "hf_crossenc.threshold" in threshold
    assert row_starting(scores_rows, "Labels")[1] == "`0` = `different`, `1` = `duplicate`"

    usage = section(text, "## Usage")
    assert "model.classify(pairs)" in usage and "threshold = 0.4321" in usage
    assert '("How do I learn Python?", "What is the best way to learn Python?")' in usage
    assert "torch.sigmoid" in usage and "softmax" not in usage and "model.rank(" not in usage

    examples = table_rows(section(text, "### Example predictions"))
    assert examples[0] == ["Text A", "Text B", "Gold label", "Predicted label", "Score: probability of `duplicate`"]
    assert row_starting(examples, "Is the sun a star?") == [
        "Is the sun a star?",
        "How far is the moon?",
        "different",
        "different",
        "0.0400",
    ]

    evaluation = section(text, "## Evaluation")
    rows = table_rows(evaluation)
    assert rows[0] == ["Split", "Pairs", "Accuracy", 'F1 (positive class "duplicate")', "ROC AUC", "Average precision"]
    assert row_starting(rows, "validation") == ["validation", "40", "0.8512", "0.8000", "0.9100", "0.8800"]
    assert row_starting(rows, "test")[4] == "NaN"
    assert "the checkpoint of step 10, the best by validation Accuracy" in evaluation
    assert "![Scores of the pairs by gold label" in evaluation

    data_rows = table_rows(section(text, "## Training data"))
    assert data_rows[0] == ["Split", "Source", "Pairs", "`different`", "`duplicate`"]
    assert row_starting(data_rows, "train") == ["train", "`train.csv`", "100", "63", "37"]
    assert row_starting(data_rows, "test") == ["test", "`test.csv`", "30", "<!-- not recorded -->", ""]  # no counts for this split

    log = table_rows(section(text, "### Training log"))
    assert log[0][4:] == [
        "Validation Accuracy",
        'Validation F1 (positive class "duplicate")',
        "Validation ROC AUC",
        "Validation Average precision",
    ]
    assert row_starting(log, "10")[4] == "**0.8512** (best)" and "(best)" not in " ".join(row_starting(log, "5"))
    assert "![Training loss and validation Accuracy by step](training_curve.png)" in text

    assert (tmp_path / "eval_scores.png").stat().st_size > 1000 and not (tmp_path / "eval_scatter.png").exists()
    assert (tmp_path / "training_curve.png").is_file()


def test_binary_classification_without_threshold_says_so(tmp_path):
    text = render_card(binary_card(threshold=None, label_names=None)).text
    threshold = row_starting(table_rows(section(text, "## Scores")), "Decision threshold")[1]
    assert threshold.startswith("<!-- decision threshold: not recorded") and threshold.endswith("-->")
    assert row_starting(table_rows(section(text, "## Scores")), "Labels")[1] == "`0`, `1` <!-- label names: not recorded -->"
    assert 'labels = model.classify(pairs)        # "1" if the probability is ≥ 0.5' in section(text, "## Usage")
    assert "threshold = 0.5  # no decision threshold was recorded" in section(text, "## Usage")


def test_multiclass_classification_card(tmp_path):
    scores = np.full((4, 3), 1 / 3)
    path = write_card(multiclass_card(), tmp_path, scores, np.array([0, 1, 2, 0]))
    card = ModelCard.load(path)
    assert card.data.pipeline_tag == "text-classification" and card.data.metrics == ["accuracy", "f1"]
    assert eval_results_by_split(card) == {"validation": {"accuracy": 0.7012, "f1": 0.6934}}
    text = card.text
    assert "classifies the pair as `entailment`, `neutral` or `contradiction`" in text

    scores_rows = table_rows(section(text, "## Scores"))
    assert row_starting(scores_rows, "Labels")[1].startswith("`0` = `entailment`, `1` = `neutral`, `2` = `contradiction`")
    assert "softmax(logits)" in row_starting(scores_rows, "Output")[1]
    assert "Decision threshold" not in text

    transformers_snippet = section(text, "### Transformers")
    assert "torch.softmax(model(**features).logits, dim=-1)" in transformers_snippet
    assert "model.config.id2label" in transformers_snippet and "torch.sigmoid" not in transformers_snippet
    assert "model.classify(pairs)" in section(text, "### hf_crossenc")
    assert "top_k=None" in transformers_snippet

    rows = table_rows(section(text, "## Evaluation"))
    assert rows[0] == ["Split", "Pairs", "Accuracy", "F1 (macro)"]
    assert row_starting(rows, "validation") == ["validation", "30", "0.7012", "0.6934"]

    examples = table_rows(section(text, "### Example predictions"))
    assert examples[0][-1] == "Score: probability of the predicted label"
    assert examples[-1] == ["A man plays a guitar.", "The man is asleep.", "contradiction", "neutral", "0.4700"]

    data_rows = table_rows(section(text, "## Training data"))
    assert data_rows[0][3:] == ["`entailment`", "`neutral`", "`contradiction`"]
    assert row_starting(data_rows, "train")[3:] == ["30", "31", "29"]

    assert not (tmp_path / "eval_scores.png").exists() and not (tmp_path / "eval_scatter.png").exists()


def test_reranking_card(tmp_path):
    scores, labels = rng_scores(80, seed=1)
    path = write_card(reranking_card(), tmp_path, scores, labels)
    card = ModelCard.load(path)
    assert card.data.pipeline_tag == "text-ranking"
    assert card.data.metrics == ["map", "mrr", "ndcg"]
    assert eval_results_by_split(card) == {"validation": {"map": 0.6123, "mrr@10": 0.6544, "ndcg@10": 0.7011}}
    assert {(r.task_type, r.task_name) for r in card.data.eval_results} == {("text-ranking", "Reranking")}
    text = card.text
    assert "scores how relevant the passage is to the query" in text

    usage = section(text, "## Usage")
    assert "ranked = model.rank(query, passages, top_k=3)" in usage
    assert 'query = "what is a cross-encoder"' in usage and '"Paris is the capital of France.",' in usage
    assert "model.rank(query, passages)" in section(text, "### Sentence Transformers")
    assert "classify(" not in usage

    example = section(text, "### Example ranking")
    assert "**Query:** what is a cross-encoder" in example
    rows = table_rows(example)
    assert rows[0] == ["Rank", "Passage", "Gold relevance", "Score"]
    assert rows[2] == ["1", "A cross-encoder reads query and passage together.", "relevant (1)", "0.9700"]
    assert rows[-1] == ["3", "Paris is the capital of France.", "not relevant (0)", "0.0200"]

    evaluation = section(text, "## Evaluation")
    rows = table_rows(evaluation)
    assert rows[0] == ["Split", "Pairs", "Queries", "Skipped queries", "MAP", "MRR@10", "NDCG@10"]
    assert row_starting(rows, "validation") == ["validation", "200", "18", "2", "0.6123", "0.6544", "0.7011"]
    assert "A query is skipped when it has no relevant or no irrelevant candidate" in evaluation
    assert "the best by validation MAP" in evaluation

    data_rows = table_rows(section(text, "## Training data"))
    assert row_starting(data_rows, "validation") == ["validation", "<!-- not recorded -->", "200", "20", "22", "178"]
    assert row_starting(table_rows(section(text, "### Training log")), "20")[4] == "**0.6123** (best)"

    assert (tmp_path / "eval_scores.png").stat().st_size > 1000 and not (tmp_path / "eval_scatter.png").exists()


def test_confidence_intervals_get_their_own_table(tmp_path):
    intervals = {"level": 0.95, "resamples": 1000, "resampled": "queries", "bounds": {"map": [0.51, 0.7012], "mrr@10": [0.55, 0.75]}}
    metrics = {"map": 0.6123, "mrr@10": 0.6544, "ndcg@10": 0.7011, "n": 200, "queries": 18, "skipped_queries": 2, "intervals": intervals}
    text = render_card(reranking_card(eval_metrics={"validation": metrics})).text
    ci = section(text, "### Confidence intervals")
    assert "The central 95% of each metric over 1000 bootstrap resamples of the split's queries" in ci
    rows = table_rows(ci)
    assert rows[0] == ["Split", "MAP", "MRR@10", "NDCG@10"]
    assert row_starting(rows, "validation") == ["validation", "0.5100 – 0.7012", "0.5500 – 0.7500", ""]  # no NDCG bounds given
    main_table = table_rows(section(text, "## Evaluation").split("### Confidence intervals")[0])
    assert row_starting(main_table, "validation")[4:] == ["0.6123", "0.6544", "0.7011"]  # the estimates stay as they were
    # Without intervals (--bootstrap_resamples 0, or a card from an older run) there is no such section.
    assert "### Confidence intervals" not in render_card(reranking_card()).text


def test_explicit_pipeline_tag_and_metrics_win():
    data = reranking_card(pipeline_tag="text-classification", metrics=["map"], metric_names=["ndcg@10"]).to_dict()
    assert data["pipeline_tag"] == "text-classification" and data["metrics"] == ["map"]
    assert [m["type"] for m in data["model-index"][0]["results"][0]["metrics"]] == ["ndcg@10"]


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        CrossEncoderModelCardData(task="summarization")


@pytest.mark.parametrize(
    ("make", "metrics", "expected"),
    [
        (
            card_data,
            {"eval_pearson": 0.8, "eval_spearman": 0.79, "eval_loss": 0.3},
            {"validation": {"pearson": 0.8, "spearman": 0.79, "n": None}},
        ),
        (
            binary_card,
            {"test_accuracy": 0.9, "test_f1": 0.8, "test_auc": 0.95, "test_runtime": 1.0},
            {"test": {"accuracy": 0.9, "f1": 0.8, "auc": 0.95, "n": 30}},
        ),
        (
            reranking_card,
            {
                "eval_map": 0.5,
                "eval_mrr@10": 0.6,
                "eval_ndcg@10": 0.7,
                "eval_queries": 18,
                "eval_skipped_queries": 2,
                "eval_average_map": 0.1,
            },
            {"validation": {"map": 0.5, "mrr@10": 0.6, "ndcg@10": 0.7, "n": 200, "queries": 18, "skipped_queries": 2}},
        ),
    ],
)
def test_callback_records_eval_metrics_by_split(make, metrics, expected):
    card = make(eval_metrics={})
    callback = CrossEncoderModelCardCallback(card)
    state = SimpleNamespace(log_history=[{"step": 1, **metrics}], best_global_step=1)
    callback.on_evaluate(None, state, None, metrics=metrics)
    assert card.eval_metrics == expected
    assert card.best_step == 1


def test_log_rows_mark_the_best_metric_of_the_task():
    rows = reranking_card().log_rows()
    assert [(r["step"], r["best"]) for r in rows] == [(10, False), (20, True)]
    assert rows[1]["eval_mrr@10"] == 0.6544 and rows[0]["loss"] == pytest.approx(0.5)
    rows = binary_card(best_metric="eval_f1", metric_names=["accuracy"]).log_rows()
    assert rows[1]["best"] and "eval_f1" in rows[1]  # the best metric is logged even when not shown
