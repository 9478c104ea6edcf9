"""One front door for models and one validation for texts (docs/failures.md, "Models and inputs"): a model that cannot
be loaded, a bad text given on the command line and data that training would silently accept all stop with exit code 2,
one `error:` line naming the flag or file, no traceback and nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hf_crossenc.cli import main as cli_main
from hf_crossenc.commands.train import main as train_main

OFFLINE_HUB_ID = "hf-crossenc-tests/never-downloaded"


def make_bad_model(kind: str, tmp_path: Path, tiny_model_dir: Path) -> tuple[str, str]:
    """A model argument of the given kind, and what its error must say."""
    if kind == "missing":
        return str(tmp_path / "no-such-model"), "the folder does not exist"
    if kind == "hub_id":
        return OFFLINE_HUB_ID, "is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 is set"
    folder = tmp_path / kind
    if kind == "no_config":
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        return str(folder), "has no config.json"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "model.safetensors"
    if kind == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) - 100])
        return str(folder), "model.safetensors is truncated"
    weights.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not unpickled")
    return str(folder), "only pickle weights"


BAD_MODELS = ["missing", "no_config", "truncated", "pickle_only", "hub_id"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("kind", BAD_MODELS)
@pytest.mark.parametrize("command", ["predict", "evaluate", "rank", "evaluate --compare"])
def test_commands_refuse_a_model_that_cannot_be_loaded(command, kind, tmp_path, tiny_model_dir, stsb_slices, capsys):
    model, says = make_bad_model(kind, tmp_path, tiny_model_dir)
    output = tmp_path / "out.json"
    argv = {
        "predict": ["predict", model, "--pair", "a", "b", "--output", str(output)],
        "evaluate": ["evaluate", model, str(stsb_slices["validation"]), "--output", str(output)],
        "rank": ["rank", model, "--query", "q", "--passage", "p"],
        "evaluate --compare": [
            "evaluate",
            str(tiny_model_dir),
            str(stsb_slices["validation"]),
            "--compare",
            model,
            "--output",
            str(output),
        ],
    }[command]
    assert cli_main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    flag = "--compare" if "--compare" in command else "model"
    assert line.startswith(f"error: {flag} ") and model in line and says in line, line
    assert not output.exists()


@pytest.mark.parametrize("kind", BAD_MODELS)
@pytest.mark.parametrize("flag", ["--model_name_or_path", "--teacher", "--cross_encoder_teacher"])
def test_training_refuses_a_model_that_cannot_be_loaded(flag, kind, tmp_path, tiny_model_dir, stsb_slices, capsys):
    model, says = make_bad_model(kind, tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    teacher = [] if flag == "--model_name_or_path" else ["--teacher", str(tiny_model_dir)]
    argv = [*teacher, flag, model, "--train_file", str(stsb_slices["train"]), "--validation_file", str(stsb_slices["validation"])]
    assert train_main([*argv, "--label_scale", "0,5", "--output_dir", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert flag in line and model in line and says in line, line
    assert not out.exists()


def test_training_refuses_a_truncated_soup_member(tmp_path, tiny_model_dir, stsb_slices, capsys):
    member, _ = make_bad_model("truncated", tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    argv = ["--average_with", member, "--train_file", str(stsb_slices["train"]), "--validation_file", str(stsb_slices["validation"])]
    assert train_main([*argv, "--label_scale", "0,5", "--output_dir", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--average_with" in line and "model.safetensors is truncated" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["predict", "MODEL", "--pair", "", "x"], "--pair, first text: the text is empty"),
        (["predict", "MODEL", "--pair", "a", "b", "--pair", "c", "  "], "--pair (pair 2), second text: the text is empty"),
        (["rank", "MODEL", "--query", "", "--passage", "p"], "--query: the text is empty"),
        (["rank", "MODEL", "--query", "q", "--passage", "p", "--passage", " "], "--passage (passage 2): the text is empty"),
    ],
)
def test_texts_on_the_command_line_are_validated_as_in_training(argv, says, tiny_model_dir, capsys):
    argv = [str(tiny_model_dir) if a == "MODEL" else a for a in argv]
    assert cli_main(argv) == 2
    assert says in one_error_line(capsys.readouterr().err)


def test_rank_passages_file_must_be_utf8(tmp_path, tiny_model_dir, capsys):
    passages = tmp_path / "passages.txt"
    passages.write_bytes("first passage\ncaf\xe9 au lait\n".encode("latin-1"))
    assert cli_main(["rank", str(tiny_model_dir), "--query", "q", "--passages", str(passages)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"file {passages}, row 2: is not valid UTF-8 (byte 0xe9" in line and "iconv" in line, line


def test_pointwise_reranker_without_any_positive_is_refused(tmp_path, tiny_model_dir, capsys):
    train = tmp_path / "train.csv"
    train.write_text("query,passage,label\nq1,p1,0\nq1,p2,0\nq2,p3,0\nq2,p4,0\n")
    out = tmp_path / "out"
    argv = ["--task", "reranking", "--loss", "bce", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(train)]
    assert train_main([*argv, "--eval_strategy", "no", "--output_dir", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"file {train}: no training query has a relevant (label 1) candidate" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("pairs.json", '[{"sentence1": "a", "sentence2": "b"},\n {"sentence1": "c", "sentence2": "d", "sentence2": "e"}]', "row 2"),
        ("pairs.jsonl", '{"sentence1": "a", "sentence2": "b"}\n\n{"sentence1": "c", "sentence1": "x", "sentence2": "d"}\n', "row 3"),
        ("pairs.json", '{"sentence1": ["a"], "sentence2": ["b"], "sentence1": ["c"]}', None),
    ],
)
def test_json_records_with_a_duplicate_key_are_refused(name, text, where, tmp_path, tiny_model_dir, capsys):
    data = tmp_path / name
    data.write_text(text)
    output = tmp_path / "scores.jsonl"
    assert cli_main(["predict", str(tiny_model_dir), "--input", str(data), "--output", str(output)]) == 2
    line = one_error_line(capsys.readouterr().err)
    location = f"file {data}, {where}, column" if where else f"file {data}, column"
    assert location in line and "appears more than once" in line, line
    assert not output.exists()


@pytest.mark.parametrize(
    ("scale", "says"), [("5,0", "low (5) must be below high (0)"), ("2,2", "low (2) must be below high (2)"), ("a,b", "is not 'low,high'")]
)
def test_label_scale_messages_name_the_flag(scale, says, tmp_path, stsb_slices, capsys):
    out = tmp_path / "out"
    argv = ["--train_file", str(stsb_slices["train"]), "--label_scale", scale, "--output_dir", str(out)]
    assert train_main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: --label_scale '{scale}'") and says in line and "file --label_scale" not in line, line
    assert not out.exists()


@pytest.mark.parametrize("kind", ["missing", "no_config", "truncated", "hub_id"])
def test_mine_model_goes_through_the_same_door(kind, tmp_path, tiny_model_dir, capsys):
    model, says = make_bad_model(kind, tmp_path, tiny_model_dir)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("query,positive\nwho barks?,dogs bark\nwhat is blue?,the sky is blue\n")
    output = tmp_path / "mined.csv"
    assert cli_main(["mine", str(pairs), "--output", str(output), "--model", model]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: --model ") and model in line and says in line, line
    assert not output.exists()


@pytest.mark.parametrize("kind", ["missing", "no_config", "truncated", "hub_id"])
def test_evaluate_compare_bi_encoder_is_checked_before_anything_is_scored(kind, tmp_path, tiny_model_dir, stsb_slices, capsys):
    model, says = make_bad_model(kind, tmp_path, tiny_model_dir)
    output = tmp_path / "metrics.json"
    argv = ["evaluate", str(tiny_model_dir), str(stsb_slices["validation"]), "--compare_bi_encoder", model, "--output", str(output)]
    assert cli_main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: --compare_bi_encoder ") and model in line and says in line, line
    assert not output.exists()
