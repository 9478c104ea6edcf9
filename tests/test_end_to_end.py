"""End to end through a real `accelerate launch scripts/train.py`, on the tiny model and STS-B slices."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import accelerate_launch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_crossenc import CrossEncoderPredictor, CrossEncoderTrainingArguments
from hf_crossenc.cli import main as cli_main
from hf_crossenc.memory import KERNEL_CACHE_VARIABLES

REPO = Path(__file__).resolve().parents[1]
TRAIN_ROWS, BATCH, EPOCHS = 96, 8, 2


def launch(
    tmp_path: Path, tiny: Path, data: dict[str, Path], out: Path, *launch_flags: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    script_flags = [
        "--model_name_or_path",
        str(tiny),
        "--train_file",
        str(data["train"]),
        "--validation_file",
        str(data["validation"]),
        "--test_file",
        str(data["test"]),
        "--label_scale",
        "0,5",
        "--output_dir",
        str(out),
        "--num_train_epochs",
        str(EPOCHS),
        "--per_device_train_batch_size",
        str(BATCH),
        "--learning_rate",
        "2e-3",
        "--logging_steps",
        "5",
        "--max_length",
        "64",
        "--seed",
        "7",
        "--disable_tqdm",
        "true",
        *extra,
    ]
    return accelerate_launch(tmp_path, list(launch_flags), script_flags)


@pytest.fixture
def trained(tmp_path, tiny_model_dir, stsb_slices):
    out = tmp_path / "run"
    proc = launch(tmp_path, tiny_model_dir, stsb_slices, out, "--num_processes", "1")
    return out, proc


def test_train_saves_safetensors_model_that_reloads_identically(trained, tiny_model_dir, stsb_slices):
    out, _ = trained
    assert (out / "model.safetensors").is_file()
    top_level = {p.name for p in out.iterdir()}
    assert not [name for name in top_level if name.endswith((".bin", ".pt", ".pth", ".pkl"))], top_level
    assert {"config.json", "tokenizer.json", "results.json", "training_args.json"} <= top_level

    # Weights changed: encoder and head differ from the tiny base; the word embeddings stay fixed (the
    # regression default, --freeze_embeddings) and results.json says so.
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    for name, fixed in (("embeddings.word_embeddings.weight", True), ("encoder.layer.0.attention.self.query.weight", False)):
        after_name = next(k for k in after if k.endswith(name))
        assert torch.equal(before[name], after[after_name]) is fixed, name
    assert any(k.startswith("classifier.") for k in after)

    results = json.loads((out / "results.json").read_text())
    for split, n in (("validation", 48), ("test", 48)):
        assert results[split]["n"] == n
        assert math.isfinite(results[split]["pearson"]) and math.isfinite(results[split]["spearman"])
    assert results["run"]["world_size"] == 1
    # accelerate launch exports OMP_NUM_THREADS=1; a single CPU process still gets every available core.
    assert results["run"]["cpu_threads_per_process"] == len(os.sched_getaffinity(0))
    assert results["run"]["label_scale"] == [0.0, 5.0] and results["run"]["freeze_embeddings"] is True
    # --cpu_kernel_cache: both caches of compiled CPU kernels bounded (a value already in the environment wins).
    default = str(CrossEncoderTrainingArguments.__dataclass_fields__["cpu_kernel_cache"].default)
    assert results["run"]["cpu_kernel_caches"] == {name: os.environ.get(name, default) for name in KERNEL_CACHE_VARIABLES}

    config = json.loads((out / "config.json").read_text())
    assert config["hf_crossenc"]["activation"] == "sigmoid" and config["hf_crossenc"]["label_scale"] == [0.0, 5.0]
    assert config["sentence_transformers"]["activation_fn"] == "torch.nn.modules.activation.Sigmoid"

    # hf_crossenc predict == plain transformers + the activation recorded in config.json.
    pairs = [("A man is playing a guitar.", "A man plays the guitar."), ("A dog runs.", "The stock market fell sharply today.")]
    ours = CrossEncoderPredictor.from_pretrained(out).predict(pairs)
    again = CrossEncoderPredictor.from_pretrained(out).predict(pairs)
    np.testing.assert_array_equal(ours, again)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        plain = torch.sigmoid(model(**tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")).logits)
    np.testing.assert_allclose(ours, plain.squeeze(-1).numpy(), rtol=1e-5, atol=1e-6)
    rescaled = CrossEncoderPredictor.from_pretrained(out).predict(pairs, rescale=True)
    np.testing.assert_allclose(rescaled, ours * 5.0, rtol=1e-6)
    # Symmetric scoring: the mean of both orders, and the same whichever order the pair comes in.
    predictor = CrossEncoderPredictor.from_pretrained(out)
    flipped = [(b, a) for a, b in pairs]
    symmetric = predictor.predict(pairs, symmetric=True)
    np.testing.assert_allclose(symmetric, (ours + predictor.predict(flipped)) / 2, atol=1e-6)
    np.testing.assert_allclose(predictor.predict(flipped, symmetric=True), symmetric, atol=1e-6)

    # The reported test metric is reproducible from the saved model.
    metrics_file = out.parent / "eval.json"
    assert cli_main(["evaluate", str(out), str(stsb_slices["test"]), "--output", str(metrics_file)]) == 0
    reproduced = json.loads(metrics_file.read_text())
    assert reproduced["n"] == 48
    assert reproduced["spearman"] == pytest.approx(results["test"]["spearman"], abs=0.02)
    low, high = reproduced["intervals"]["bounds"]["spearman"]
    assert reproduced["intervals"]["resampled"] == "pairs" and low <= reproduced["spearman"] <= high


def test_predict_cli_keeps_input_order(trained, tmp_path, capsys):
    out, _ = trained
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"sentence1": f"sentence number {i} " * (5 - i % 4), "sentence2": "a short one"} for i in range(7)]
    pairs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    texts = [(r["sentence1"], r["sentence2"]) for r in rows]
    # fp32: the exact scores of plain transformers, in input order (bf16 rounds this tiny model's scores together)
    assert cli_main(["predict", str(out), "--input", str(pairs), "--batch_size", "3", "--precision", "fp32"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text_a"] for line in lines] == [r["sentence1"] for r in rows]
    direct = CrossEncoderPredictor.from_pretrained(out).predict(texts)
    np.testing.assert_allclose([line["score"] for line in lines], direct, atol=1e-6)
    # the default (auto): the same scores as the Python API at precision="auto", within bf16's rounding of fp32
    assert cli_main(["predict", str(out), "--input", str(pairs), "--batch_size", "3"]) == 0
    default = [json.loads(line)["score"] for line in capsys.readouterr().out.splitlines()]
    np.testing.assert_allclose(
        default, CrossEncoderPredictor.from_pretrained(out, precision="auto").predict(texts, batch_size=3), atol=1e-6
    )
    np.testing.assert_allclose(default, direct, atol=2e-3)


def test_two_process_ddp_run(tmp_path, tiny_model_dir, stsb_slices):
    """`--multi_gpu --num_processes 2` on CPU really runs 2 ranks with a global batch of 2 x per-device (and
    activation recomputation works under DDP)."""
    out = tmp_path / "ddp"
    proc = launch(
        tmp_path, tiny_model_dir, stsb_slices, out, "--multi_gpu", "--num_processes", "2",
        extra=("--teacher", str(tiny_model_dir), "--teacher_weight", "0.5", "--teacher_precision", "bf16",
               "--recompute_above_tokens", "1"),  # every batch recomputes its bottom layer under DDP
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["recomputed_batches"] == results["run"]["global_steps"] > 0
    assert results["run"]["teacher_weight"] == 0.5 and "teacher" in proc.stderr
    assert results["run"]["teacher_precision"] == "bf16"
    assert results["run"]["world_size"] == 2, proc.stderr[-2000:]
    assert results["run"]["cpu_threads_per_process"] == max(1, len(os.sched_getaffinity(0)) // 2)
    assert results["run"]["global_batch_size"] == 2 * BATCH
    examples = TRAIN_ROWS  # --train_pair_order swap (default): one random order per draw
    assert results["run"]["global_steps"] == EPOCHS * math.ceil(examples / (2 * BATCH))
    assert results["validation"]["n"] == 48 and math.isfinite(results["test"]["spearman"])
    assert (out / "model.safetensors").is_file()
    assert not list(out.glob("*.bin"))


def test_model_card_matches_results_and_hides_secrets(trained):
    from huggingface_hub import ModelCard

    out, proc = trained
    card = ModelCard.load(out / "README.md")
    results = json.loads((out / "results.json").read_text())
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "text-classification" and data["library_name"] == "sentence-transformers"
    assert {"sentence-transformers", "cross-encoder", "generated_from_trainer", "hf_crossenc", "regression"} <= set(data["tags"])
    by_split = {}
    for result in card.data.eval_results:
        by_split.setdefault(result.dataset_split, {})[result.metric_type] = result.metric_value
    assert set(by_split) == {"validation", "test"}
    for split, metrics in by_split.items():
        assert metrics["spearman"] == pytest.approx(round(results[split]["spearman"], 4))
        assert metrics["pearson"] == pytest.approx(round(results[split]["pearson"], 4))
    body = card.text
    for heading in (
        "## Scores",
        "## Usage",
        "## Evaluation",
        "## Training data",
        "### Training log",
        "### Framework versions",
        "## Citation",
    ):
        assert heading in body
    assert "(best)" in body
    assert "<!-- license: not specified" in body  # unknown value -> HTML comment, not an empty heading
    assert (out / "training_curve.png").stat().st_size > 1000 and (out / "eval_scatter.png").stat().st_size > 1000
    assert "![Training loss" in body and "![Predicted vs gold" in body
    # Every checkpoint folder carries its own card.
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert checkpoints and all((c / "README.md").is_file() for c in checkpoints)
