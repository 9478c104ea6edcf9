"""hf_crossenc.job_card and card_names: a card a Hub visitor can use, whatever this machine's paths are.

Cards of all three tasks are built from realistic job arguments (data under ../shared/data, a local fine-tuned
teacher, an earlier distillation round as base and cross-encoder teacher, a seed soup, example texts with an apostrophe
and non-ASCII letters) and rendered; none may show a local path, an internal name or a JSON escape.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_crossenc.arguments import DataArguments, ModelArguments, TeacherArguments
from hf_crossenc.card_names import (
    BUNDLED_HUB_ID,
    EARLIER_ROUND,
    STSB_HUB_ID,
    STSB_STAGE,
    local_name,
    public_model_name,
    public_split_source,
    python_string,
)
from hf_crossenc.job_card import build_card, describe_base
from hf_crossenc.model_card import CrossEncoderModelCardData, hyperparameter_table, render_card, write_card
from hf_crossenc.modeling import BUNDLED_MODEL, ScoreSemantics, bundled_model_path
from hf_crossenc.recipes import soup_member_summary
from hf_crossenc.task_data import load_task_data
from hf_crossenc.training_args import CrossEncoderTrainingArguments

QUESTION = "What is Crips' gang color ?"
NON_ASCII = "Ça coûte 5 € — naïve façade, Zürich"
ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}")
DATA = {
    "regression": ("stsb", "sentence1,sentence2,similarity_score", [(QUESTION, NON_ASCII, "4.2"), ("A cat.", "A dog.", "0.4")]),
    "classification": ("msrp", "sentence1,sentence2,label", [(QUESTION, NON_ASCII, "1"), ("A cat.", "A dog.", "0")]),
    "reranking": ("trecqa", "question,answer,label", [(QUESTION, NON_ASCII, "1"), (QUESTION, "Blue is a colour.", "0")]),
}


def forbidden(tmp_path: Path) -> list[str]:
    """What a published card must never contain: this machine's paths and the job's internal names."""
    return ["../", "/tmp", "/work", str(tmp_path), "shared/data", "bundled:", "round-1", "rounds/", "soup/seed-", "seed-7`"]


def assert_publishable(text: str, tmp_path: Path) -> None:
    leaks = [word for word in forbidden(tmp_path) if word in text]
    assert not leaks, f"the card shows {leaks}:\n{text}"
    assert not ESCAPE.findall(text), ESCAPE.findall(text)


def write_split(folder: Path, header: str, rows: list[tuple[str, str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header.split(","), *rows])
    return path


def local_round(out: Path, base_card: CrossEncoderModelCardData) -> Path:
    """OUTPUT_DIR/rounds/round-1 as a first round leaves it: a model with its card (and its fine-tuned teacher)."""
    folder = out / "rounds" / "round-1"
    write_card(base_card, folder)
    return folder


def local_teacher(folder: Path, tiny_model_dir: Path) -> Path:
    """A fine-tuned bi-encoder teacher folder, as --teacher_finetune_epochs leaves it (finetune.json names its origin)."""
    shutil.copytree(tiny_model_dir, folder)
    (folder / "finetune.json").write_text(json.dumps({"teacher": BUNDLED_MODEL, "epochs": 2, "pooling": "mean"}))
    return folder


def job_card(task: str, tmp_path: Path, tiny_model_dir: Path) -> CrossEncoderModelCardData:
    """build_card of a realistic job of `task`, as `train_once` builds it, with examples and hyperparameters."""
    name, header, rows = DATA[task]
    checkout = tmp_path / "work" / "main"
    checkout.mkdir(parents=True)
    write_split(tmp_path / "work" / "shared" / "data" / name, header, rows)
    out = checkout / "outputs" / f"{name}-model"
    first = local_round(out, CrossEncoderModelCardData(base_model=BUNDLED_HUB_ID, datasets=[STSB_HUB_ID]))
    teacher = local_teacher(first / "teacher", tiny_model_dir)
    silver = write_split(tmp_path / "extra", "sentence1,sentence2", [("a", "b", "")])
    model_args = ModelArguments(model_name_or_path=str(first))
    data_args = DataArguments(train_file=f"../shared/data/{name}/train.csv", label_scale="0,5" if task == "regression" else None)
    loss = {"regression": "bce", "classification": "bce", "reranking": "listwise"}[task]
    teacher_args = TeacherArguments(teacher=str(teacher), teacher_weight=0.5)
    if task != "classification":
        teacher_args.cross_encoder_teacher = str(first)
    if task == "regression":
        teacher_args.silver_file = str(silver)
        data_args.dataset_card_id = STSB_HUB_ID
    training_args = CrossEncoderTrainingArguments(output_dir=str(out), task=task, loss=loss, report_to="none")
    cwd = os.getcwd()
    os.chdir(checkout)  # the data is read as ../shared/data/..., as the shipped configs name it
    try:
        data_args.check(task)
        teacher_args.check(task, loss)
        data = load_task_data(data_args, task)
    finally:
        os.chdir(cwd)
    assert "shared/data" in data.splits["train"].source  # the run knows its data by this machine's path
    labels = ["different", "paraphrase"] if task == "classification" else None
    semantics = ScoreSemantics(task=task, label_scale=(0.0, 5.0) if task == "regression" else (0.0, 1.0), loss=loss, label_names=labels)
    card = build_card(model_args, data_args, teacher_args, training_args, data.splits, semantics)
    card.hyperparameters = hyperparameter_table(training_args, card.extra_hyperparameters)
    gold = {"regression": 4.2, "classification": "paraphrase", "reranking": 1}[task]
    card.examples = [{"text_a": QUESTION, "text_b": NON_ASCII, "gold": gold, "predicted": gold, "score": 0.9, "split": "validation"}]
    member = out / "soup" / "seed-7"
    write_card(CrossEncoderModelCardData(), member)
    (member / "training_args.json").write_text(json.dumps({"seed": 7}))
    card.averaged_with = [soup_member_summary(str(member))]
    card.eval_metrics = {"validation": {"n": 2}}
    return card


@pytest.mark.parametrize("task", ["regression", "classification", "reranking"])
def test_cards_of_every_task_show_no_local_path_internal_name_or_escape(task, tmp_path, tiny_model_dir):
    card = job_card(task, tmp_path, tiny_model_dir)
    text = render_card(card).content
    assert_publishable(text, tmp_path)
    data = ModelCard(text).data
    assert data.base_model == BUNDLED_HUB_ID
    assert data.library_name == "sentence-transformers"
    assert {"sentence-transformers", "cross-encoder", task} <= set(data.tags)
    assert data.pipeline_tag == ("text-ranking" if task == "reranking" else "text-classification")
    assert data.datasets == ([STSB_HUB_ID] if task == "regression" else None)
    body = ModelCard(text).text
    assert f"by way of {EARLIER_ROUND} (not on the Hub)" in body
    assert f"`{BUNDLED_HUB_ID}`, mean-pooled embeddings, first fine-tuned for 2 epoch(s)" in body
    assert "the run with seed 7" in body
    assert f" on {dict(regression='[**STS-B (English)**]', classification='**MSRP**', reranking='**TREC QA**')[task]}" in body
    # Snippet strings are Python literals as a person writes them.
    if task == "reranking":
        assert f'query = "{QUESTION}"' in body and f'    "{NON_ASCII}",' in body
    else:
        assert f'    ("{QUESTION}", "{NON_ASCII}"),' in body
    sources = [row.split(" | ")[1] for row in body.splitlines() if row.startswith("| train | ")]
    assert sources == ["`train.csv`"]


def test_the_regression_card_names_its_dataset_teachers_and_silver_files(tmp_path, tiny_model_dir):
    card = job_card("regression", tmp_path, tiny_model_dir)
    facts = card.extra_hyperparameters
    assert (facts["teacher"], facts["teacher_pooling"], facts["cross_encoder_teacher"]) == (BUNDLED_HUB_ID, "mean", EARLIER_ROUND)
    assert facts["silver_file"] == "train.csv"
    body = render_card(card).text
    assert f"on [**STS-B (English)**](https://huggingface.co/datasets/{STSB_HUB_ID})" in body
    assert f"The pairs come from the Hub dataset [`{STSB_HUB_ID}`](https://huggingface.co/datasets/{STSB_HUB_ID})." in body
    assert f"the score of a cross-encoder trained earlier on the same data ({EARLIER_ROUND}, both orders averaged)" in body


def test_a_cls_teacher_is_named_as_such(tmp_path, tiny_model_dir):
    from test_pooling import legacy, st_folder

    teacher = st_folder(tiny_model_dir, tmp_path / "bge-like", legacy("cls"))
    extra = {"teacher": teacher.name, "teacher_weight": 0.5, "teacher_pooling": "cls"}
    card = CrossEncoderModelCardData(split_sizes={"train": 10}, extra_hyperparameters=extra)
    assert "a bi-encoder teacher (`bge-like`, CLS-pooled embeddings)" in render_card(card).text
    from hf_crossenc.job_card import teacher_facts

    facts = teacher_facts(TeacherArguments(teacher=str(teacher), teacher_weight=0.5))
    assert (facts["teacher"], facts["teacher_pooling"]) == ("bge-like", "cls")
    assert teacher_facts(TeacherArguments(teacher=str(teacher), teacher_weight=0.5, teacher_pooling="max"))["teacher_pooling"] == "max"


def test_base_models_are_named_by_hub_id_or_in_words(tmp_path, tiny_model_dir):
    assert describe_base(BUNDLED_MODEL) == (BUNDLED_HUB_ID, None, "all-MiniLM-L6-v2")
    assert describe_base(str(bundled_model_path())) == (BUNDLED_HUB_ID, None, "all-MiniLM-L6-v2")
    assert describe_base("BAAI/bge-small-en-v1.5") == ("BAAI/bge-small-en-v1.5", None, "bge-small-en-v1.5")
    stsb = tmp_path / "outputs" / "stsb-minilm-cross-encoder"
    write_card(CrossEncoderModelCardData(base_model=BUNDLED_HUB_ID, datasets=[STSB_HUB_ID]), stsb)
    assert describe_base(str(stsb)) == (BUNDLED_HUB_ID, STSB_STAGE, "all-MiniLM-L6-v2")
    other = tmp_path / "outputs" / "nli"
    write_card(CrossEncoderModelCardData(base_model=BUNDLED_HUB_ID, model_name="MiniLM NLI"), other)
    assert describe_base(str(other))[1] == "a cross-encoder trained with hf_crossenc before this one (`MiniLM NLI`)"
    base, via, short = describe_base(str(tiny_model_dir))  # a plain local model: no Hub id known, its folder name only
    assert (base, via, short) == (None, f"a local model, `{tiny_model_dir.name}`", tiny_model_dir.name)
    text = render_card(CrossEncoderModelCardData(base_model=base, via_model=via)).text
    assert f"from a local model, `{tiny_model_dir.name}` (not on the Hub)" in text and str(tmp_path) not in text
    cached = tmp_path / "hub" / "models--BAAI--bge-small-en-v1.5" / "snapshots" / "abc123"
    cached.mkdir(parents=True)
    assert describe_base(str(cached))[0] == "BAAI/bge-small-en-v1.5"
    assert public_model_name(str(cached)) == "BAAI/bge-small-en-v1.5"


def test_teachers_are_named_by_hub_id_origin_or_folder_name(tmp_path, tiny_model_dir):
    assert public_model_name(BUNDLED_MODEL) == BUNDLED_HUB_ID
    assert public_model_name(str(bundled_model_path())) == BUNDLED_HUB_ID
    assert public_model_name("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
    assert public_model_name(str(tiny_model_dir)) == tiny_model_dir.name
    tuned = local_teacher(tmp_path / "out" / "soup" / "seed-7" / "teacher", tiny_model_dir)
    assert public_model_name(str(tuned)) == BUNDLED_HUB_ID
    (tuned / "finetune.json").write_text(json.dumps({"teacher": str(tiny_model_dir), "epochs": 1}))
    assert public_model_name(str(tuned)) == tiny_model_dir.name
    assert public_model_name(str(tmp_path / "out" / "rounds" / "round-2")) == EARLIER_ROUND
    assert public_model_name(None) is None


def test_paths_become_names_and_hub_ids_stay():
    assert local_name("../shared/data/stsb/train.csv") == "train.csv"
    assert local_name("/tmp/x/extra.csv,../b.tsv") == "extra.csv,b.tsv"
    assert local_name("outputs/x/checkpoint-12/") == "checkpoint-12"
    assert local_name("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5" and local_name(BUNDLED_MODEL) == BUNDLED_MODEL
    assert local_name(None) is None
    assert public_split_source("../shared/data/stsb/dev.csv", None) == "dev.csv"
    assert public_split_source("PhilipMay/stsb_multi_mt/en [train]", "PhilipMay/stsb_multi_mt") == "PhilipMay/stsb_multi_mt/en [train]"
    assert public_split_source("/data/my-pairs [validation]", "/data/my-pairs") == "my-pairs [validation]"


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", '"plain"'),
        (QUESTION, f'"{QUESTION}"'),
        (NON_ASCII, f'"{NON_ASCII}"'),
        ('say "hi"', "'say \"hi\"'"),
        ('it\'s "odd"', "'it\\'s \"odd\"'"),
        ("back\\slash\nnew line", '"back\\\\slash\\nnew line"'),
        ("<a & b>", '"<a & b>"'),
    ],
)
def test_snippet_strings_are_python_literals(text, literal):
    assert python_string(text) == literal
    assert eval(literal) == text  # noqa: S307 - the literal is what the card prints: it must read back as the text


def test_the_card_of_a_real_training_run_shows_no_local_path(tmp_path, tiny_model_dir, monkeypatch):
    """End to end: the train command on the tiny model, with data and teacher given as local paths."""
    from hf_crossenc.commands.train import main

    data = tmp_path / "shared" / "data" / "stsb"
    rows = [(QUESTION, NON_ASCII, "4.2"), ("A cat sits.", "A cat is sitting.", "4.8"), ("Stocks fell.", "A dog barks.", "0.2")] * 6
    train = write_split(data, "sentence1,sentence2,similarity_score", rows)
    dev = data / "dev.csv"
    shutil.copy(train, dev)
    checkout = tmp_path / "main"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    out = checkout / "outputs" / "tiny"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", "../shared/data/stsb/train.csv", "--label_scale", "0,5"]
    argv += ["--validation_file", "../shared/data/stsb/dev.csv", "--teacher", str(tiny_model_dir), "--num_train_epochs", "1"]
    argv += ["--bf16", "false", "--max_length", "32", "--dataset_card_id", STSB_HUB_ID, "--output_dir", str(out)]
    argv += ["--distill_rounds", "2", "--later_rounds_init", "previous", "--later_rounds_epochs", "1"]
    assert main(argv) == 0
    text = (out / "README.md").read_text(encoding="utf-8")
    assert_publishable(text, tmp_path)
    assert f'("{QUESTION}", "{NON_ASCII}"),' in text
    assert f"from {EARLIER_ROUND} (not on the Hub)" in text and "`train.csv`" in text  # round 1's base has no Hub id
    run = json.loads((out / "results.json").read_text())["run"]
    assert (run["base_model"], run["teacher"], run["cross_encoder_teacher"]) == ("round-1", tiny_model_dir.name, "round-1")
    assert not any(str(tmp_path) in json.dumps(value) for value in run.values())
