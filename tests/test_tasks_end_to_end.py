"""Pair classification and reranking end to end: `accelerate launch scripts/train.py --task ...` on the tiny model.

Data: slices of ../shared/data/msrp (binary paraphrase labels) and ../shared/data/trecqa (questions with
candidate answers, 0/1), plus a 3-class file derived from STS-B scores for the multi-class path.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, accelerate_launch, require_benchmark_data, write_slice
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from test_model_card import row_starting, section, table_rows
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_crossenc import CrossEncoderPredictor
from hf_crossenc.bi_encoder import BiEncoder
from hf_crossenc.cli import main as cli_main
from hf_crossenc.commands.train import main as train_main
from hf_crossenc.metrics import ranking_metrics

REPO = Path(__file__).resolve().parents[1]
BATCH = 8


def data_file(task: str, split: str) -> Path:
    return require_benchmark_data(SHARED_DATA / task / f"{split}.csv")


def common_flags(tiny: Path, out: Path, epochs: int = 2) -> list[str]:
    return [
        "--model_name_or_path",
        str(tiny),
        "--output_dir",
        str(out),
        "--num_train_epochs",
        str(epochs),
        "--per_device_train_batch_size",
        str(BATCH),
        "--learning_rate",
        "5e-4",
        "--logging_steps",
        "5",
        "--max_length",
        "64",
        "--seed",
        "7",
        "--disable_tqdm",
        "true",
        "--bf16",
        "false",
    ]


def card_metrics(folder: Path) -> dict[str, dict[str, float]]:
    by_split: dict[str, dict[str, float]] = {}
    for result in ModelCard.load(folder / "README.md").data.eval_results:
        by_split.setdefault(result.dataset_split, {})[result.metric_type] = result.metric_value
    return by_split


# ---- binary classification ----------------------------------------------------------------


@pytest.mark.benchmark_data("msrp")
def test_binary_classification_threshold_is_chosen_on_dev_and_saved(tmp_path, tiny_model_dir):
    train = write_slice(data_file("msrp", "train"), tmp_path / "train.csv", 96)
    dev = write_slice(data_file("msrp", "dev"), tmp_path / "dev.csv", 48)
    out = tmp_path / "cls"
    accelerate_launch(
        tmp_path,
        ["--num_processes", "1"],
        ["--task", "classification", "--train_file", str(train), "--validation_file", str(dev), *common_flags(tiny_model_dir, out)],
    )
    results = json.loads((out / "results.json").read_text())
    val = results["validation"]
    assert val["n"] == 48 and results["run"]["loss"] == "bce" and results["run"]["binary"] is True
    # Classification trains the word embeddings by default (regression and reranking keep them fixed).
    assert results["run"]["freeze_embeddings"] is False
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert not torch.equal(before["embeddings.word_embeddings.weight"], after["bert.embeddings.word_embeddings.weight"])
    for key in ("accuracy", "f1", "auc", "average_precision"):
        assert 0.0 <= val[key] <= 1.0, key
    config = json.loads((out / "config.json").read_text())
    assert config["hf_crossenc"]["task"] == "classification" and config["hf_crossenc"]["label_names"] == ["0", "1"]
    assert config["hf_crossenc"]["threshold"] == pytest.approx(val["threshold"])
    assert config["id2label"] == {"0": "1"}  # the one logit is the positive class

    # The stored threshold is what classify() and the CLI use; it reproduces the reported accuracy.
    predictor = CrossEncoderPredictor.from_pretrained(out)
    with dev.open(newline="") as f:
        rows = list(csv.DictReader(f))
    pairs = [(r["sentence1"], r["sentence2"]) for r in rows]
    labels = np.array([int(r["label"]) for r in rows])
    scores = predictor.predict(pairs)
    predicted = predictor.classify(pairs)
    assert predicted == ["1" if s >= val["threshold"] else "0" for s in scores]
    assert np.mean(np.array(predicted).astype(int) == labels) == pytest.approx(val["accuracy"])
    assert cli_main(["evaluate", str(out), str(dev), "--output", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(val["accuracy"])
    # Intervals at the stored threshold, resampling pairs: the same as results.json's (same scores, same seed).
    assert evaluated["intervals"]["resampled"] == "pairs" and evaluated["threshold"] == pytest.approx(val["threshold"])
    low, high = evaluated["intervals"]["bounds"]["accuracy"]
    assert low <= val["accuracy"] <= high and low < high
    for name, bounds in val["intervals"]["bounds"].items():
        assert evaluated["intervals"]["bounds"][name] == pytest.approx(bounds, abs=1e-6), name
    # Against a bi-encoder, a classifier is compared on the threshold-free metrics only (a cosine has no threshold).
    assert (
        cli_main(["evaluate", str(out), str(dev), "--compare_bi_encoder", str(tiny_model_dir), "--output", str(tmp_path / "bi.json")]) == 0
    )
    bi = json.loads((tmp_path / "bi.json").read_text())["bi_encoder_comparison"]
    assert set(bi["difference"]) == set(bi["bounds"]) == set(bi["metrics"]) == {"auc", "average_precision"}
    assert bi["difference"]["auc"] == pytest.approx(val["auc"] - bi["metrics"]["auc"], abs=1e-6)

    # Plain transformers: sigmoid of the logit gives the same scores.
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        enc = tok([a for a, _ in pairs[:4]], [b for _, b in pairs[:4]], padding=True, truncation=True, max_length=64, return_tensors="pt")
        plain = torch.sigmoid(model(**enc).logits).squeeze(-1).numpy()
    np.testing.assert_allclose(scores[:4], plain, atol=1e-5)

    metrics = card_metrics(out)["validation"]
    assert metrics["accuracy"] == pytest.approx(round(val["accuracy"], 4)) and metrics["roc_auc"] == pytest.approx(round(val["auc"], 4))
    assert (out / "eval_scores.png").is_file()


# ---- multi-class classification --------------------------------------------------------------


def three_class_file(src: Path, dst: Path, n: int) -> Path:
    """STS-B pairs with their score binned into three named classes."""
    with src.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:n]
    with dst.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["premise", "hypothesis", "label"])
        for r in rows:
            score = float(r["similarity_score"])
            writer.writerow([r["sentence1"], r["sentence2"], "unrelated" if score < 1.5 else "related" if score < 3.5 else "equivalent"])
    return dst


@pytest.mark.benchmark_data("stsb")
def test_multiclass_classification_in_process(tmp_path, tiny_model_dir, capsys):
    train = three_class_file(data_file("stsb", "train"), tmp_path / "train.csv", 96)
    dev = three_class_file(data_file("stsb", "dev"), tmp_path / "dev.csv", 40)
    out = tmp_path / "nli"
    flags = ["--task", "classification", "--train_file", str(train), "--validation_file", str(dev), *common_flags(tiny_model_dir, out)]
    assert train_main(flags) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["loss"] == "ce" and results["run"]["label_names"] == ["equivalent", "related", "unrelated"]
    assert set(results["validation"]) == {"accuracy", "f1", "n", "intervals"}
    assert set(results["validation"]["intervals"]["bounds"]) == {"accuracy", "f1"}
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "equivalent", "1": "related", "2": "unrelated"}
    assert config["hf_crossenc"]["activation"] == "softmax"
    assert config["sentence_transformers"]["activation_fn"] == "torch.nn.modules.activation.Softmax"

    predictor = CrossEncoderPredictor.from_pretrained(out)
    pairs = [("A man plays guitar.", "A man is playing a guitar."), ("A cat sleeps.", "Stocks fell sharply.")]
    probs = predictor.predict(pairs)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert predictor.classify(pairs) == [config["id2label"][str(i)] for i in probs.argmax(-1)]
    assert "softmax" in (out / "README.md").read_text()
    # A cosine cannot stand in for three class probabilities: refused, naming the flag.
    assert cli_main(["evaluate", str(out), str(dev), "--compare_bi_encoder", str(tiny_model_dir)]) == 2
    assert "--compare_bi_encoder" in capsys.readouterr().err


# ---- reranking ------------------------------------------------------------------------------


@pytest.fixture
def trecqa_slices(tmp_path):
    return {
        "train": write_slice(data_file("trecqa", "train"), tmp_path / "train.csv", 160),
        "validation": write_slice(data_file("trecqa", "dev"), tmp_path / "dev.csv", 120),
    }


def test_listwise_reranker_with_two_process_ddp(tmp_path, tiny_model_dir, trecqa_slices):
    """Listwise groups under DDP: 2 ranks, global batch 2 x per-device groups, grouped metrics, rank() = sorted predict()."""
    out = tmp_path / "rk"
    proc = accelerate_launch(
        tmp_path,
        ["--config_file", str(REPO / "configs" / "accelerate" / "cpu_ddp_2proc.yaml")],  # the shipped 2-process CPU config
        [
            "--task",
            "reranking",
            "--train_file",
            str(trecqa_slices["train"]),
            "--validation_file",
            str(trecqa_slices["validation"]),
            "--train_group_size",
            "4",
            *common_flags(tiny_model_dir, out),
        ],
    )
    results = json.loads((out / "results.json").read_text())
    run = results["run"]
    assert run["world_size"] == 2, proc.stderr[-2000:]
    assert run["loss"] == "listwise" and run["train_group_size"] == 4 and run["freeze_embeddings"] is True
    groups = run["train_examples_per_epoch"]  # one group per (query, positive)
    assert groups > 0 and run["global_steps"] == 2 * math.ceil(groups / (2 * BATCH))
    val = results["validation"]
    assert val["queries"] >= 1 and val["skipped_queries"] >= 0 and val["n"] > val["queries"]
    for key in ("map", "mrr@10", "ndcg@10"):
        assert 0.0 < val[key] <= 1.0
    assert card_metrics(out)["validation"]["map"] == pytest.approx(round(val["map"], 4))
    assert ModelCard.load(out / "README.md").data.pipeline_tag == "text-ranking"

    # The saved model reproduces the metrics, and rank() is predict() sorted.
    assert cli_main(["evaluate", str(out), str(trecqa_slices["validation"]), "--output", str(tmp_path / "e.json")]) == 0
    evaluated = json.loads((tmp_path / "e.json").read_text())
    assert evaluated["map"] == pytest.approx(val["map"], abs=1e-6)
    # Queries are resampled whole; results.json, the card and evaluate report the same intervals.
    assert val["intervals"]["resampled"] == "queries" and val["intervals"]["resamples"] == 1000
    low, high = val["intervals"]["bounds"]["map"]
    assert low <= val["map"] <= high
    assert evaluated["intervals"]["bounds"]["map"] == pytest.approx([low, high], abs=1e-6)
    ci = row_starting(table_rows(section(ModelCard.load(out / "README.md").text, "### Confidence intervals")), "validation")
    assert ci[1] == f"{low:.4f} – {high:.4f}"
    assert (
        cli_main(["evaluate", str(out), str(trecqa_slices["validation"]), "--bootstrap", "0", "--output", str(tmp_path / "e0.json")]) == 0
    )
    assert "intervals" not in json.loads((tmp_path / "e0.json").read_text())
    predictor = CrossEncoderPredictor.from_pretrained(out)
    passages = ["Shakespeare wrote Hamlet around 1600.", "Paris is in France.", "Hamlet is a play.", "Bananas are yellow."]
    ranked = predictor.rank("who wrote hamlet ?", passages, top_k=3)
    scores = predictor.predict([("who wrote hamlet ?", p) for p in passages])
    assert [r.index for r in ranked] == list(np.argsort(-scores, kind="stable")[:3])
    assert [r.passage for r in ranked] == [passages[r.index] for r in ranked]
    assert ranked[0].score == pytest.approx(float(scores.max()))


@pytest.mark.parametrize("loss", ["bce", "listwise"])
def test_reranker_with_teacher_in_process(tmp_path, tiny_model_dir, trecqa_slices, caplog, loss):
    caplog.set_level(logging.INFO, logger="hf_crossenc")
    out = tmp_path / loss
    flags = [
        "--task",
        "reranking",
        "--loss",
        loss,
        "--teacher",
        str(tiny_model_dir),
        "--train_file",
        str(trecqa_slices["train"]),
        "--validation_file",
        str(trecqa_slices["validation"]),
        *common_flags(tiny_model_dir, out, epochs=1),
    ]
    assert train_main(flags) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["loss"] == loss and results["run"]["teacher_weight"] == 0.5
    assert math.isfinite(results["validation"]["map"])
    if loss == "bce":
        assert results["run"]["train_examples_per_epoch"] == 160
        assert "(logistic)" in caplog.text  # 0/1 labels: Platt-scaled teacher probabilities
    else:
        assert "softmax(teacher cosine / 0.05)" in caplog.text


def test_listwise_reranker_taught_by_an_earlier_reranker(tmp_path, tiny_model_dir, trecqa_slices, caplog, capsys):
    """A second listwise run whose teacher mixes the first reranker's softmax into the bi-encoder's."""
    caplog.set_level(logging.INFO, logger="hf_crossenc")
    data = ["--task", "reranking", "--teacher", str(tiny_model_dir), "--train_file", str(trecqa_slices["train"]),
            "--validation_file", str(trecqa_slices["validation"])]  # fmt: skip
    first = tmp_path / "first"
    assert train_main([*data, *common_flags(tiny_model_dir, first, epochs=1)]) == 0
    teacher = CrossEncoderPredictor.from_pretrained(first)
    pairs = [("who wrote hamlet ?", "Shakespeare wrote it ."), ("who wrote hamlet ?", "It rained .")]
    np.testing.assert_allclose(1 / (1 + np.exp(-teacher.logits(pairs))), teacher.predict(pairs), rtol=1e-6)
    second = tmp_path / "second"
    flags = [*data, "--cross_encoder_teacher", str(first), "--cross_encoder_share", "0.7"]
    assert train_main([*flags, *common_flags(tiny_model_dir, second, epochs=1)]) == 0
    assert f"0.70 x softmax({first} logits) + 0.30 x softmax(cosine / 0.05)" in caplog.text
    results = json.loads((second / "results.json").read_text())
    assert results["run"]["cross_encoder_teacher"] == "first" and math.isfinite(results["validation"]["map"])
    card = ModelCard.load(second / "README.md").text
    assert "mixed 0.3 : 0.7 with the softmax of the logits of a reranker trained earlier on the same data (`first`)" in card
    assert "calibrated cosine" not in card  # the regression wording is not used for listwise groups

    # A paired comparison of the two rerankers on the same dev queries: each one's MAP as its own results.json has it,
    # the difference, and its interval.
    dev, report = str(trecqa_slices["validation"]), tmp_path / "compare.json"
    assert cli_main(["evaluate", str(second), dev, "--compare", str(first), "--bootstrap", "300", "--output", str(report)]) == 0
    compared = json.loads(report.read_text())
    first_map = json.loads((first / "results.json").read_text())["validation"]["map"]
    assert compared["map"] == pytest.approx(results["validation"]["map"], abs=1e-6)
    assert compared["comparison"]["model"] == str(first) and compared["comparison"]["metrics"]["map"] == pytest.approx(first_map, abs=1e-6)
    difference = compared["comparison"]["difference"]["map"]
    assert difference == pytest.approx(results["validation"]["map"] - first_map, abs=1e-6)
    low, high = compared["comparison"]["bounds"]["map"]
    assert low <= difference <= high and compared["comparison"]["resampled"] == "queries"
    assert 0.0 <= compared["comparison"]["share_above_zero"]["map"] <= 1.0
    # Against a bi-encoder (here the tiny base model used as one): its cosines ranked by the same metric code.
    report = tmp_path / "bi.json"
    assert (
        cli_main(["evaluate", str(second), dev, "--compare_bi_encoder", str(tiny_model_dir), "--bootstrap", "200", "--output", str(report)])
        == 0
    )
    bi = json.loads(report.read_text())["bi_encoder_comparison"]
    with open(trecqa_slices["validation"], newline="") as f:
        rows = list(csv.DictReader(f))
    queries, answers = [r["question"] for r in rows], [r["answer"] for r in rows]
    cosine = BiEncoder(str(tiny_model_dir), max_length=64, precision="fp32").cosine(queries, answers)
    expected = ranking_metrics(queries, cosine, [int(r["label"]) for r in rows])["map"]
    assert bi["model"] == str(tiny_model_dir) and bi["metrics"]["map"] == pytest.approx(expected, abs=1e-6)
    assert bi["difference"]["map"] == pytest.approx(results["validation"]["map"] - expected, abs=1e-6)
    assert bi["bounds"]["map"][0] <= bi["difference"]["map"] <= bi["bounds"]["map"][1] and bi["resampled"] == "queries"
    # A model of another task (the untrained base: a similarity scorer) is refused, naming the flag.
    assert cli_main(["evaluate", str(second), dev, "--compare", str(tiny_model_dir)]) == 2
    assert "--compare" in capsys.readouterr().err


def test_listwise_soup_fine_tunes_its_teacher_once(tmp_path, tiny_model_dir, trecqa_slices, caplog):
    """--teacher_finetune_epochs with reranking: the first soup member fine-tunes the bi-encoder on the (query, passage,
    0/1) training pairs; the other member is taught by that teacher, and the card says how it was made."""
    from safetensors.torch import load_file

    caplog.set_level(logging.INFO, logger="hf_crossenc")
    out = tmp_path / "soup"
    flags = ["--task", "reranking", "--teacher", str(tiny_model_dir), "--teacher_finetune_epochs", "1",
             "--train_file", str(trecqa_slices["train"]), "--validation_file", str(trecqa_slices["validation"]),
             *common_flags(tiny_model_dir, out, epochs=1), "--soup_seeds", "5,6"]  # fmt: skip
    assert train_main(flags) == 0
    teacher = out / "soup" / "seed-5" / "teacher"
    made = json.loads((teacher / "finetune.json").read_text())
    assert (made["teacher"], made["epochs"], made["seed"]) == (str(tiny_model_dir), 1, 5)
    assert caplog.text.count("fine-tuning the bi-encoder teacher") == 1 and not (out / "teacher").exists()
    tuned, base = load_file(teacher / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(tuned[layer], base[f"bert.{layer}"] if f"bert.{layer}" in base else base[layer])
    first = json.loads((out / "soup" / "seed-5" / "results.json").read_text())["run"]
    last = json.loads((out / "results.json").read_text())["run"]
    assert (first["teacher"], first["teacher_finetune_epochs"]) == (tiny_model_dir.name, 1)
    assert (last["teacher"], last["teacher_finetune_epochs"]) == ("teacher", 0)  # seed 6 reuses seed 5's
    card = ModelCard.load(out / "README.md").text
    assert f"cosine similarities (`{tiny_model_dir.name}`, mean-pooled embeddings, first fine-tuned for 1 epoch(s)" in card
    assert str(teacher) not in card


@pytest.mark.benchmark_data("msrp")
def test_binary_classification_with_teacher_in_process(tmp_path, tiny_model_dir, caplog):
    caplog.set_level(logging.INFO, logger="hf_crossenc")
    train = write_slice(data_file("msrp", "train"), tmp_path / "train.csv", 64)
    dev = write_slice(data_file("msrp", "dev"), tmp_path / "dev.csv", 32)
    out = tmp_path / "cls"
    flags = ["--task", "classification", "--teacher", str(tiny_model_dir), "--train_file", str(train), "--validation_file", str(dev)]
    assert train_main([*flags, *common_flags(tiny_model_dir, out, epochs=1)]) == 0
    assert "ROC AUC" in caplog.text and "(logistic)" in caplog.text
    assert json.loads((out / "results.json").read_text())["run"]["teacher"] == tiny_model_dir.name


# ---- bad input through the script ------------------------------------------------------------


def run_main(capsys, argv):
    code = train_main(argv)
    return code, capsys.readouterr().err


def test_mixed_classification_labels_exit_2_and_write_nothing(tmp_path, capsys, tiny_model_dir):
    bad = tmp_path / "mixed.csv"
    bad.write_text("sentence1,sentence2,label\na b,c d,1\ne f,g h,0\ni j,k l,yes\n")
    out = tmp_path / "out"
    code, err = run_main(capsys, ["--task", "classification", "--train_file", str(bad), *common_flags(tiny_model_dir, out)])
    assert code == 2
    assert f"file {bad}, row 4, column 'label': mixed label types" in err
    assert not out.exists()


def test_listwise_training_without_any_positive_exits_2(tmp_path, capsys, tiny_model_dir):
    bad = tmp_path / "nopos.csv"
    bad.write_text("question,answer,label\nq1,a,0\nq1,b,0\nq2,c,0\n")
    out = tmp_path / "out"
    code, err = run_main(
        capsys, ["--task", "reranking", "--train_file", str(bad), "--eval_strategy", "no", *common_flags(tiny_model_dir, out)]
    )
    assert code == 2
    assert "no training group can be formed" in err
    assert not out.exists()


@pytest.mark.benchmark_data("msrp")
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "reranking", "--train_pair_order", "swap"], "must be 'none' for reranking"),
        (["--task", "classification", "--label_scale", "0,5"], "--label_scale applies to --task regression only"),
        (["--task", "classification", "--loss", "listwise"], "does not fit --task classification"),
        (
            ["--task", "reranking", "--silver_pairs", "1", "--teacher", "bundled:all-MiniLM-L6-v2"],
            "--silver_pairs and --silver_file apply to --task regression",
        ),
    ],
)
def test_task_flag_conflicts(tmp_path, capsys, tiny_model_dir, flags, message):
    train = write_slice(data_file("msrp", "train"), tmp_path / "train.csv", 8)
    out = tmp_path / "out"
    code, err = run_main(capsys, [*flags, "--train_file", str(train), *common_flags(tiny_model_dir, out)])
    assert code == 2 and message in err
    assert not out.exists()


def test_collapse_guard_warns_loudly(tiny_model_dir, caplog):
    from transformers import AutoModelForSequenceClassification, EvalPrediction

    from hf_crossenc import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from hf_crossenc.metrics import metrics_for_task

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    args = CrossEncoderTrainingArguments(output_dir="o", task="reranking", report_to="none", bf16=False, eval_strategy="no")
    trainer = CrossEncoderTrainer(model=model, args=args, compute_metrics=metrics_for_task("reranking"))
    labels = np.array([[1, 0], [0, 0], [0, 1], [1, 1]], dtype=np.float32)
    trainer.compute_metrics(EvalPrediction(predictions=np.full((4, 1), 2.5), label_ids=labels))
    assert "COLLAPSE" in caplog.text and trainer.collapsed_evaluations == [0]
    caplog.clear()
    trainer.compute_metrics(EvalPrediction(predictions=np.array([[2.0], [0.0], [1.0], [-1.0]]), label_ids=labels))
    assert "COLLAPSE" not in caplog.text


def test_very_long_texts_are_truncated_not_errors(tmp_path, tiny_model_dir):
    train = tmp_path / "long.csv"
    rows = ["sentence1,sentence2,label"] + [f"{'word ' * 3000}{i},short text {i},{i % 2}" for i in range(12)]
    train.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    flags = ["--task", "classification", "--train_file", str(train), "--validation_file", str(train)]
    assert train_main([*flags, *common_flags(tiny_model_dir, out, epochs=1)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["hf_crossenc"]["max_length"] == 64
    assert "64 tokens per pair" in (out / "README.md").read_text()  # the card states the truncation length


def test_shipped_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {
        "cpu_ddp_2proc.yaml": ("MULTI_GPU", 2, 1),
        "single_gpu_bf16.yaml": ("NO", 1, 1),
        "multi_gpu_ddp.yaml": ("MULTI_GPU", 4, 1),
        "multi_node.yaml": ("MULTI_GPU", 8, 2),
        "multi_node_cpu.yaml": ("MULTI_GPU", 2, 2),  # these four: also run or checked in tests/test_distributed.py
        "fsdp.yaml": ("FSDP", 4, 1),
        "deepspeed_zero2.yaml": ("DEEPSPEED", 4, 1),
        "deepspeed_zero3.yaml": ("DEEPSPEED", 4, 1),
    }
    files = sorted(p.name for p in (REPO / "configs" / "accelerate").glob("*.yaml"))
    assert files == sorted(expected)
    for name, (kind, processes, machines) in expected.items():
        config = load_config_from_file(str(REPO / "configs" / "accelerate" / name))
        assert (str(config.distributed_type).split(".")[-1], config.num_processes, config.num_machines) == (kind, processes, machines), name
