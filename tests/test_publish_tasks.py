"""A trained reranker and a trained pair classifier, published to the local Hub, load and behave identically.

Training runs in-process on the tiny model (tiny slices of TREC QA and MSRP); publishing and loading run in
subprocesses pointed at the local Hub server (huggingface_hub reads HF_ENDPOINT at import time).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HUB_USER, SHARED_DATA, write_slice
from test_publish import client_env, run_cli, run_python

from hf_crossenc import CrossEncoderPredictor
from hf_crossenc.commands.train import main as train_main

pytestmark = [pytest.mark.hub, pytest.mark.benchmark_data("trecqa", "msrp")]

QUERY = "who wrote the iron lady ?"
PASSAGES = [
    "the iron lady is a biography by hugo young .",
    "margaret thatcher was prime minister .",
    "the weather was cold in london .",
    "hugo young , the british journalist , wrote about thatcher .",
]
PAIRS = [["He left the house early.", "He went out early."], ["Stocks fell.", "The cat is asleep."]]


def train(tmp_path: Path, tiny: Path, task: str, data: str, rows: int) -> Path:
    train_file = write_slice(SHARED_DATA / data / "train.csv", tmp_path / f"{data}_train.csv", rows)
    dev_file = write_slice(SHARED_DATA / data / "dev.csv", tmp_path / f"{data}_dev.csv", 48)
    out = tmp_path / f"{task}-model"
    argv = ["--task", task, "--model_name_or_path", str(tiny), "--train_file", str(train_file), "--validation_file", str(dev_file)]
    argv += ["--output_dir", str(out), "--num_train_epochs", "1", "--learning_rate", "5e-4", "--max_length", "64", "--bf16", "false"]
    assert train_main(argv) == 0
    return out


def test_published_reranker_ranks_identically(hub, tmp_path, tiny_model_dir):
    folder = train(tmp_path, tiny_model_dir, "reranking", "trecqa", 120)
    local = CrossEncoderPredictor.from_pretrained(folder).rank(QUERY, PASSAGES)
    env = client_env(hub.url, tmp_path / "client_home")
    repo_id = f"{HUB_USER}/tiny-reranker"
    proc = run_cli(env, tmp_path, str(folder), "--repo-id", repo_id)
    assert proc.returncode == 0, proc.stderr
    result = run_python(
        env,
        tmp_path,
        """
import torch
from huggingface_hub import ModelCard
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from hf_crossenc import CrossEncoderPredictor

repo, query, passages = ARGS["repo"], ARGS["query"], ARGS["passages"]
R["rank"] = [list(r) for r in CrossEncoderPredictor.from_pretrained(repo).rank(query, passages)]
model = AutoModelForSequenceClassification.from_pretrained(repo).eval()
tok = AutoTokenizer.from_pretrained(repo)
with torch.no_grad():
    logits = model(**tok([query] * len(passages), passages, padding=True, return_tensors="pt")).logits.squeeze(-1)
R["transformers_order"] = torch.argsort(-logits, stable=True).tolist()
R["st_rank"] = [r["corpus_id"] for r in CrossEncoder(repo).rank(query, passages)]
card = ModelCard.load(repo)
R["pipeline_tag"] = card.data.pipeline_tag
R["metric_types"] = sorted({r.metric_type for r in card.data.eval_results})
R["snippet"] = "model.rank(" in card.text
""",
        repo=repo_id,
        query=QUERY,
        passages=PASSAGES,
    )
    assert [r[0] for r in result["rank"]] == [r.index for r in local]
    assert [r[1] for r in result["rank"]] == pytest.approx([r.score for r in local], abs=1e-6)
    assert result["transformers_order"] == [r.index for r in local]
    assert result["st_rank"] == [r.index for r in local]
    assert result["pipeline_tag"] == "text-ranking" and result["metric_types"] == ["map", "mrr@10", "ndcg@10"]
    assert result["snippet"]


def test_published_classifier_keeps_its_threshold(hub, tmp_path, tiny_model_dir):
    folder = train(tmp_path, tiny_model_dir, "classification", "msrp", 96)
    local = CrossEncoderPredictor.from_pretrained(folder)
    env = client_env(hub.url, tmp_path / "client_home")
    repo_id = f"{HUB_USER}/tiny-paraphrase"
    assert run_cli(env, tmp_path, str(folder), "--repo-id", repo_id).returncode == 0
    result = run_python(
        env,
        tmp_path,
        """
from hf_crossenc import CrossEncoderPredictor

remote = CrossEncoderPredictor.from_pretrained(ARGS["repo"])
pairs = [tuple(p) for p in ARGS["pairs"]]
R["threshold"] = remote.semantics.threshold
R["scores"] = remote.predict(pairs).tolist()
R["labels"] = remote.classify(pairs)
""",
        repo=repo_id,
        pairs=PAIRS,
    )
    pairs = [tuple(p) for p in PAIRS]
    assert result["threshold"] == pytest.approx(local.semantics.threshold) and result["threshold"] is not None
    assert result["scores"] == pytest.approx(local.predict(pairs).tolist(), abs=1e-6)
    assert result["labels"] == local.classify(pairs)
