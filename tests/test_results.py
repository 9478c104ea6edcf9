"""hf_crossenc.results: CrossEncoderJobResult, what a training job returns and writes as results.json."""

from __future__ import annotations

import json

import pytest

from hf_crossenc.results import RESULTS_FILE, CrossEncoderJobResult

METRICS = {"validation": {"spearman": 0.81, "pearson": 0.8}, "test": {"spearman": 0.78, "intervals": {"spearman": [0.7, 0.85]}}}
RUN = {"task": "regression", "global_steps": 12, "seed": 42}


def test_to_dict_puts_the_splits_beside_run_and_from_dict_takes_it_back(tmp_path):
    result = CrossEncoderJobResult(str(tmp_path), METRICS, RUN)
    content = result.to_dict()
    assert content == {**METRICS, "run": RUN}
    assert CrossEncoderJobResult.from_dict(tmp_path, content) == result
    assert CrossEncoderJobResult.from_dict(tmp_path, {"test": {"map": 0.5}}).run == {}  # no "run": an empty record


def test_write_and_read_round_trip(tmp_path):
    result = CrossEncoderJobResult(str(tmp_path), METRICS, RUN)
    path = result.write()
    assert path == tmp_path / RESULTS_FILE and path.name == "results.json"
    assert json.loads(path.read_text()) == {**METRICS, "run": RUN}
    again = CrossEncoderJobResult.read(tmp_path)
    assert again == result and again.metrics["test"]["spearman"] == 0.78 and again.run["global_steps"] == 12


def test_read_of_a_folder_without_results_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        CrossEncoderJobResult.read(tmp_path)
