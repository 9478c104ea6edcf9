"""--report_to: the explicit default, early checks of the value, and a real TensorBoard trace of a tiny training run."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from hf_crossenc.commands.train import main
from hf_crossenc.training_args import CrossEncoderTrainingArguments, reporting_integrations

WORDS = [
    "a",
    "man",
    "woman",
    "dog",
    "cat",
    "plays",
    "runs",
    "eats",
    "sleeps",
    "guitar",
    "park",
    "food",
    "sofa",
    "car",
    "the",
    "on",
    "in",
    "with",
]


def write_pairs(path: Path, n: int, seed: int) -> Path:
    """A small STS-like CSV (sentence1, sentence2, score on 0-5), so the test needs no benchmark data."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "score"])
        for _ in range(n):
            a = " ".join(rng.choices(WORDS, k=6))
            b = " ".join(rng.choices(WORDS, k=6))
            writer.writerow([a, b, f"{rng.uniform(0, 5):.2f}"])
    return path


def test_default_is_none_whatever_transformers_defaults_to(tmp_path):
    assert CrossEncoderTrainingArguments.__dataclass_fields__["report_to"].default == "none"
    assert CrossEncoderTrainingArguments(output_dir=str(tmp_path)).report_to == []


def test_values_are_split_and_checked_before_training():
    assert reporting_integrations("tensorboard, mlflow") == ["tensorboard", "mlflow"]
    assert reporting_integrations(["tensorboard"]) == ["tensorboard"]
    assert reporting_integrations(None) == "none" and reporting_integrations("all") == "all"
    with pytest.raises(ValueError, match="--report_to tensorbord: not an integration of transformers"):
        reporting_integrations("tensorbord")


def test_a_typo_exits_2_before_anything_is_written(tmp_path, capsys):
    train = write_pairs(tmp_path / "train.csv", 8, seed=0)
    code = main(["--train_file", str(train), "--label_scale", "0,5", "--report_to", "wandbb", "--output_dir", str(tmp_path / "out")])
    assert code == 2 and "--report_to wandbb" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tensorboard_trace_holds_the_training_loss(tmp_path, tiny_model_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator

    train = write_pairs(tmp_path / "train.csv", 32, seed=1)
    dev = write_pairs(tmp_path / "dev.csv", 16, seed=2)
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(train), "--validation_file", str(dev)]
    argv += ["--label_scale", "0,5", "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--logging_steps", "1"]
    argv += ["--bf16", "false", "--max_length", "32", "--bootstrap_resamples", "0", "--report_to", "tensorboard", "--output_dir", str(out)]
    assert main(argv) == 0
    traces = sorted(out.glob("runs/*/events.out.tfevents.*"))
    assert traces, f"no TensorBoard trace under {out / 'runs'}"
    scalars: dict[str, list[float]] = {}
    for trace in traces:
        events = event_accumulator.EventAccumulator(str(trace), size_guidance={event_accumulator.SCALARS: 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(event.value for event in events.Scalars(tag))
    assert len(scalars.get("train/loss", [])) == 4  # 32 pairs, batches of 8, logged every step
    assert all(value > 0 for value in scalars["train/loss"])
    assert "eval/spearman" in scalars
