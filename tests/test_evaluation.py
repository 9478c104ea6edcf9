"""Bootstrap confidence intervals of the evaluation metrics (hf_crossenc.evaluation), on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_crossenc.cli import main as cli_main
from hf_crossenc.commands.train import main as train_main
from hf_crossenc.data import GROUP
from hf_crossenc.evaluation import bootstrap_difference, bootstrap_intervals, split_metrics, task_metrics
from hf_crossenc.metrics import query_ranking_values, ranking_metrics


def test_ranking_intervals_resample_whole_queries():
    # Query a: the relevant candidate ranked first (AP 1); query b: ranked second of two (AP 0.5).
    queries = ["a", "a", "a", "b", "b"]
    scores = np.array([0.9, 0.2, 0.1, 0.3, 0.8])
    labels = np.array([1, 0, 0, 1, 0])
    values, skipped = query_ranking_values(queries, scores, labels)
    np.testing.assert_allclose(values["map"], [1.0, 0.5])
    np.testing.assert_allclose(values["mrr@10"], [1.0, 0.5])
    assert skipped == 0 and ranking_metrics(queries, scores, labels)["map"] == pytest.approx(0.75)
    # Two queries drawn with replacement: the mean AP is 1 (p 1/4), 0.75 (1/2) or 0.5 (1/4); both tails hold
    # more than 2.5%, so the 95% interval is exactly [0.5, 1].
    got = bootstrap_intervals("reranking", scores, labels, queries, resamples=2000, seed=3)
    assert got["resampled"] == "queries" and got["resamples"] == 2000 and got["level"] == 0.95
    assert got["bounds"]["map"] == [0.5, 1.0]
    assert got["bounds"]["mrr@10"] == [0.5, 1.0]
    assert set(got["bounds"]) == {"map", "mrr@10", "ndcg@10"}  # no interval for the counts


def test_paired_difference_of_two_rerankers():
    queries = ["a", "a", "a", "b", "b"]
    labels = np.array([1, 0, 0, 1, 0])
    first = np.array([0.9, 0.2, 0.1, 0.3, 0.8])  # AP 1 and 0.5
    second = np.array([0.5, 0.6, 0.1, 0.3, 0.8])  # AP 0.5 and 0.5
    got = bootstrap_difference("reranking", first, second, labels, queries, resamples=4000, seed=1)
    assert got["difference"]["map"] == pytest.approx(0.25) and got["resampled"] == "queries"
    # Per-query differences 0.5 and 0: a draw's mean is 0.5 (p 1/4), 0.25 (1/2) or 0 (1/4).
    assert got["bounds"]["map"] == [0.0, 0.5]
    assert got["share_above_zero"]["map"] == pytest.approx(0.75, abs=0.03)
    swapped = bootstrap_difference("reranking", second, first, labels, queries, resamples=4000, seed=1)
    assert swapped["difference"]["map"] == pytest.approx(-0.25) and swapped["bounds"]["map"] == [-0.5, 0.0]


def test_paired_difference_is_tighter_than_two_separate_intervals():
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 1, 300)
    shared = labels + rng.normal(0, 0.3, 300)  # both models make mostly the same errors
    better, worse = shared + rng.normal(0, 0.02, 300), shared + rng.normal(0, 0.12, 300)
    paired = bootstrap_difference("regression", better, worse, labels, resamples=500)
    low, high = paired["bounds"]["spearman"]
    assert 0 < low < paired["difference"]["spearman"] < high and paired["share_above_zero"]["spearman"] > 0.975
    separate = [bootstrap_intervals("regression", s, labels, resamples=500)["bounds"]["spearman"] for s in (better, worse)]
    assert separate[0][0] < separate[1][1]  # the separate intervals overlap: they could not tell the two apart
    assert high - low < 0.5 * (separate[0][1] - separate[0][0])


def test_paired_difference_keeps_each_classifiers_threshold():
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.6, 0.7, 0.2, 0.3])
    got = bootstrap_difference("classification", scores, scores, labels, threshold=0.5, other_threshold=0.65, resamples=200)
    assert got["difference"]["accuracy"] == pytest.approx(0.25)  # 4/4 against 3/4 with the same scores
    assert got["difference"]["auc"] == 0.0 and got["bounds"]["auc"] == [0.0, 0.0]


def test_ranking_intervals_skip_unrankable_queries_like_the_metric():
    queries = ["a", "a", "c", "c"]  # c has no relevant candidate: skipped by the metric and by the bootstrap
    scores, labels = np.array([0.9, 0.1, 0.5, 0.4]), np.array([1, 0, 0, 0])
    got = bootstrap_intervals("reranking", scores, labels, queries, resamples=50)
    assert got["bounds"]["map"] == [1.0, 1.0]


def test_regression_intervals_of_a_perfect_ranking_are_one():
    scores = np.linspace(0.0, 1.0, 30)
    labels = scores**3  # monotone: Spearman 1 in every resample (a resample of one repeated pair is undefined, left out)
    got = bootstrap_intervals("regression", scores, labels, resamples=300)
    assert got["resampled"] == "pairs"
    assert got["bounds"]["spearman"] == pytest.approx([1.0, 1.0])
    low, high = got["bounds"]["pearson"]
    assert low < high < 1.0  # not linear


def test_intervals_narrow_with_more_data_and_contain_the_estimate():
    rng = np.random.default_rng(0)

    def width(n: int) -> float:
        labels = rng.uniform(0, 1, n)
        scores = labels + rng.normal(0, 0.3, n)
        estimate = task_metrics("regression", scores, labels)["spearman"]
        low, high = bootstrap_intervals("regression", scores, labels, resamples=400)["bounds"]["spearman"]
        assert low < estimate < high
        return high - low

    # The standard error falls as 1/sqrt(n): 16x the pairs, ~1/4 of the width.
    small, large = width(100), width(1600)
    assert 0.15 < large / small < 0.4


def test_binary_intervals_keep_the_threshold_fixed():
    scores = np.array([0.6, 0.65, 0.9, 0.2, 0.3, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    at_half = bootstrap_intervals("classification", scores, labels, resamples=200)
    assert at_half["bounds"]["accuracy"] == [1.0, 1.0]
    # At 0.7 the two positives scored 0.6 and 0.65 are missed: accuracy 4/6, and resamples spread around it.
    at_cut = bootstrap_intervals("classification", scores, labels, threshold=0.7, resamples=500)
    low, high = at_cut["bounds"]["accuracy"]
    assert low < 4 / 6 < high
    assert at_cut["bounds"]["auc"] == [1.0, 1.0]  # threshold-free: every resample with both classes ranks them perfectly
    assert "threshold" not in at_cut["bounds"]


def test_multiclass_intervals():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 2, 1])  # the last one is wrong: accuracy 0.75
    got = bootstrap_intervals("classification", probabilities, labels, resamples=500)
    low, high = got["bounds"]["accuracy"]
    assert low < 0.75 < high and set(got["bounds"]) == {"accuracy", "f1"}


def test_intervals_are_deterministic_per_seed():
    rng = np.random.default_rng(1)
    labels = rng.uniform(0, 1, 200)
    scores = labels + rng.normal(0, 0.5, 200)
    first = bootstrap_intervals("regression", scores, labels, resamples=100, seed=7)
    assert bootstrap_intervals("regression", scores, labels, resamples=100, seed=7) == first
    assert bootstrap_intervals("regression", scores, labels, resamples=100, seed=8) != first


def test_undefined_metrics_give_nan_bounds():
    got = bootstrap_intervals("regression", np.array([0.5, 0.5, 0.5]), np.array([0.1, 0.2, 0.3]), resamples=20)
    assert all(math.isnan(v) for v in got["bounds"]["spearman"])


@pytest.mark.parametrize(("kwargs", "message"), [({"resamples": 0}, "resamples"), ({"level": 1.0}, "level"), ({"level": 0.0}, "level")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_intervals("regression", np.arange(5.0), np.arange(5.0), **kwargs)


class _Split:
    """The two things split_metrics reads of a split: its dataset columns and its length."""

    def __init__(self, columns: dict) -> None:
        self.dataset = columns

    def __len__(self) -> int:
        return len(self.dataset["label"])


def test_split_metrics_adds_intervals_unless_zero_resamples():
    split = _Split({"label": [1, 0, 0, 1, 0], GROUP: ["a", "a", "a", "b", "b"]})
    scores = np.array([0.9, 0.2, 0.1, 0.3, 0.8])
    with_ci = split_metrics("reranking", scores, split, resamples=100)
    assert with_ci["map"] == pytest.approx(0.75) and with_ci["n"] == 5 and with_ci["queries"] == 2
    assert with_ci["intervals"]["resampled"] == "queries" and with_ci["intervals"]["resamples"] == 100
    without = split_metrics("reranking", scores, split, resamples=0)
    assert "intervals" not in without and without["map"] == with_ci["map"]


@pytest.mark.parametrize(("flags", "named"), [(["--bootstrap", "-1"], "--bootstrap"), (["--level", "1.5"], "--level")])
def test_evaluate_refuses_bad_interval_flags_before_loading_anything(flags, named, tmp_path, capsys):
    # Checked first, by argparse: neither the (missing) model nor the (missing) data file is touched.
    with pytest.raises(SystemExit) as done:
        cli_main(["evaluate", str(tmp_path / "no-model"), str(tmp_path / "no-data.csv"), *flags])
    assert done.value.code == 2
    assert f"argument {named}" in capsys.readouterr().err


def test_training_refuses_negative_bootstrap_resamples(tmp_path, stsb_slices, capsys):
    out = tmp_path / "out"
    argv = ["--train_file", str(stsb_slices["train"]), "--label_scale", "0,5", "--output_dir", str(out)]
    assert train_main([*argv, "--bootstrap_resamples", "-1"]) == 2 and not out.exists()
    assert "--bootstrap_resamples must be 0" in capsys.readouterr().err


def test_classifiers_compare_only_with_the_same_labels_in_the_same_order():
    from types import SimpleNamespace

    from hf_crossenc.comparison import class_names as _class_names

    def classifier(id2label: dict, label_names=None, activation="softmax"):
        semantics = SimpleNamespace(task="classification", activation=activation, label_names=label_names)
        return SimpleNamespace(
            semantics=semantics, model=SimpleNamespace(config=SimpleNamespace(id2label=id2label, num_labels=len(id2label)))
        )

    assert _class_names(classifier({0: "a", 1: "b", 2: "c"})) == ["a", "b", "c"]
    assert _class_names(classifier({0: "b", 1: "a", 2: "c"})) != _class_names(classifier({0: "a", 1: "b", 2: "c"}))
    assert _class_names(classifier({0: "a", 1: "b"}, label_names=["no", "yes"])) == ["no", "yes"]
    assert _class_names(classifier({0: "LABEL_0"}, activation="sigmoid")) == ["0", "1"]
