"""hf_crossenc.streaming: --streaming reads the training pairs row by row (local files, a local dataset folder through
datasets' streaming), checks each row as the in-memory path does, shuffles in a seeded buffer, and the job trains from
the stream for --max_steps; a bad row mid-training exits 2 and leaves nothing behind."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from hf_crossenc.arguments import DataArguments, ModelArguments, TeacherArguments
from hf_crossenc.commands.train import main
from hf_crossenc.data import read_table, resolve_columns
from hf_crossenc.errors import ConfigError, DataError
from hf_crossenc.job import check_arguments
from hf_crossenc.streaming import load_streaming_task_data
from hf_crossenc.training_args import CrossEncoderTrainingArguments


def write_csv(path: Path, rows: list[list[object]], header: tuple[str, ...] = ("sentence1", "sentence2", "score")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([list(header), *rows])
    return path


def pairs(n: int, start: int = 0) -> list[list[object]]:
    return [[f"a man plays {i}", f"someone plays {i % 7}", (i * 7) % 6] for i in range(start, start + n)]


def stream(tmp_path: Path, name: str = "train.csv", **kwargs: object) -> list[dict]:
    args = DataArguments(train_file=str(tmp_path / name), streaming=True, **{"label_scale": "0,5", "train_pair_order": "none", **kwargs})
    data = load_streaming_task_data(args, "regression", 42)
    return list(data.splits["train"].dataset)


def test_rows_are_checked_and_normalised_as_in_memory(tmp_path):
    write_csv(tmp_path / "train.csv", pairs(5))
    rows = stream(tmp_path, shuffle_buffer_size=0)
    table = read_table(tmp_path / "train.csv")
    assert [r["text_a"] for r in rows] == [r["sentence1"] for r in table.rows]  # buffer 0: the file's order
    assert [round(r["label"], 6) for r in rows] == [round(float(r["score"]) / 5, 6) for r in table.rows]


@pytest.mark.parametrize(
    ("kind", "bad", "where"),
    [
        ("csv", ["", "b", 1], "row 4, column 'sentence1': the text is empty"),
        ("csv", ["a", "b", "oops"], "row 4, column 'score': the label 'oops' is not a number"),
        ("csv", ["a", "b", 6], "row 4, column 'score': the label 6 lies outside the label scale [0, 5]"),
        ("jsonl", {"sentence1": "a", "sentence2": None, "score": 1}, "row 4, column 'sentence2': the text is missing"),
        ("parquet", {"sentence1": "a", "sentence2": "b", "score": None}, "row 3, column 'score': the label is empty"),
    ],
)
def test_a_bad_row_names_file_row_and_column(tmp_path, kind, bad, where):
    good = pairs(2)
    if kind == "csv":
        path = write_csv(tmp_path / "train.csv", [*good, bad])
    else:
        records = [dict(zip(("sentence1", "sentence2", "score"), row)) for row in good] + [bad]
        path = tmp_path / f"train.{kind}"
        if kind == "jsonl":  # a blank line counts: rows are lines
            path.write_text("\n".join(json.dumps(r) for r in records[:2]) + "\n\n" + json.dumps(records[2]) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(records), path)
    with pytest.raises(DataError) as caught:
        stream(tmp_path, path.name, shuffle_buffer_size=4)
    assert str(caught.value).startswith(f"file {path}, {where}")


def test_malformed_files_name_the_row_the_in_memory_reader_names(tmp_path):
    """An invalid byte: the record holding it (a quoted field spanning lines and a blank line before it count as in
    memory) and the byte offset; a short TSV line; a byte-order mark is no part of the first column's name."""
    cases = {
        "latin1.csv": b'sentence1,sentence2,score\na,b,1\n"multi\nline",x,1\n\nc,\xe9d,1\n',
        "short.tsv": b"sentence1\tsentence2\tscore\na\tb\t1\nc\td\n",
        "latin1.jsonl": b'{"sentence1": "a", "sentence2": "b", "score": 1}\n\n{"sentence1": "\xe9", "sentence2": "b", "score": 1}\n',
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(DataError) as streamed:
            stream(tmp_path, name)
        with pytest.raises(DataError) as in_memory:
            read_table(tmp_path / name)
        assert (streamed.value.row, streamed.value.message.split(" (")[0]) == (in_memory.value.row, in_memory.value.message.split(" (")[0])
    assert "at offset 52" in str(pytest.raises(DataError, stream, tmp_path, "latin1.csv").value)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfsentence1,sentence2,score\na,b,1\n")
    assert stream(tmp_path, "bom.csv")[0]["text_a"] == "a"


def test_columns_resolve_with_the_in_memory_rules_and_errors(tmp_path):
    write_csv(tmp_path / "train.csv", pairs(2), header=("query", "passage", "relevance"))
    assert len(stream(tmp_path)) == 2  # auto-detected: query, passage, relevance
    write_csv(tmp_path / "train.csv", pairs(2), header=("x", "y", "score"))
    with pytest.raises(DataError) as streamed:
        stream(tmp_path)
    with pytest.raises(DataError) as in_memory:
        resolve_columns(read_table(tmp_path / "train.csv"))
    assert str(streamed.value) == str(in_memory.value)


@pytest.mark.parametrize("name", ["dup.csv", "dup.tsv", "dup.parquet"])
def test_a_duplicate_column_is_the_in_memory_error(tmp_path, name):
    """One check of duplicate column names (`hf_crossenc.data.check_duplicate_columns`), streamed or in memory."""
    path = tmp_path / name
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table([pa.array(["a"]), pa.array(["b"]), pa.array([1])], names=["sentence1", "sentence1", "score"]), path)
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        path.write_text(sep.join(["sentence1", "sentence1", "score"]) + "\n" + sep.join(["a", "b", "1"]) + "\n")
    with pytest.raises(DataError) as streamed:
        stream(tmp_path, name)
    with pytest.raises(DataError) as in_memory:
        read_table(path)
    assert str(streamed.value) == str(in_memory.value) and "'sentence1' appears more than once" in str(streamed.value)


def test_a_json_document_and_a_missing_file_are_refused(tmp_path):
    (tmp_path / "train.json").write_text("[]")
    with pytest.raises(DataError, match=r"cannot be streamed.*Convert it to JSON Lines"):
        stream(tmp_path, "train.json")
    with pytest.raises(DataError, match="file not found"):
        stream(tmp_path, "absent.csv")


def test_the_shuffle_is_seeded_and_the_swap_decided_per_row(tmp_path):
    write_csv(tmp_path / "train.csv", pairs(40))

    def order(seed: int, **kwargs: object) -> list[tuple[str, str]]:
        args = DataArguments(train_file=str(tmp_path / "train.csv"), streaming=True, label_scale="0,5", shuffle_buffer_size=16, **kwargs)
        args.check("regression")
        rows = load_streaming_task_data(args, "regression", seed).splits["train"].dataset
        return [(r["text_a"], r["text_b"]) for r in rows]

    assert order(1) == order(1) != order(2)
    assert sorted(order(1)) != sorted(order(1, train_pair_order="none"))  # regression's default order: swap
    assert sorted(map(sorted, order(1))) == sorted(map(sorted, order(1, train_pair_order="none")))  # same pairs


def test_each_pass_reshuffles_and_swaps_afresh(tmp_path):
    write_csv(tmp_path / "train.csv", pairs(40))
    args = DataArguments(train_file=str(tmp_path / "train.csv"), streaming=True, label_scale="0,5", shuffle_buffer_size=0)
    args.check("regression")
    dataset = load_streaming_task_data(args, "regression", 3).splits["train"].dataset
    first = [r["text_a"] for r in dataset]
    dataset.set_epoch(1)  # what the Trainer does at each pass (its "epoch")
    second = [r["text_a"] for r in dataset]
    dataset.set_epoch(0)
    assert [r["text_a"] for r in dataset] == first != second
    unswapped = {row[0] for row in pairs(40)}
    assert unswapped != set(first) and unswapped != set(second)  # some rows swapped in each pass


def test_max_train_samples_and_classification_with_class_names(tmp_path):
    write_csv(tmp_path / "train.csv", pairs(10))
    assert len(stream(tmp_path, max_train_samples=3)) == 3
    write_csv(tmp_path / "cls.csv", [["a", "b", "yes"], ["c", "d", "no"], ["e", "f", "maybe"]], header=("premise", "hypothesis", "label"))
    args = DataArguments(train_file=str(tmp_path / "cls.csv"), streaming=True, class_names="no,yes", shuffle_buffer_size=0)
    args.check("classification")
    data = load_streaming_task_data(args, "classification", 0)
    assert data.vocab is not None and data.vocab.names == ("no", "yes") and not data.vocab.binary
    rows = iter(data.splits["train"].dataset)
    assert [next(rows)["label"], next(rows)["label"]] == [1, 0]
    with pytest.raises(DataError, match=r"row 4, column 'label': the label 'maybe' is not one of the classes of --class_names"):
        next(rows)


def test_a_local_dataset_folder_streams_through_datasets(tmp_path, monkeypatch):
    import datasets

    calls = []
    load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: calls.append(kw) or load(*a, **kw))
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_csv(folder / "train.csv", pairs(6))
    write_csv(folder / "validation.csv", pairs(3, start=50))
    args = DataArguments(
        dataset_name=str(folder), streaming=True, label_scale="0,5", test_split=None, shuffle_buffer_size=0, train_pair_order="none"
    )
    args.check("regression")
    data = load_streaming_task_data(args, "regression", 0)
    assert len(data.splits["validation"]) == 3
    assert calls and all(kw.get("streaming") for kw in calls)  # no split prepared in the cache: validation streamed too
    train = data.splits["train"]
    assert train.source == f"{folder} [train]"
    assert [r["text_a"] for r in train.dataset] == [row[0] for row in pairs(6)]
    with pytest.raises(DataError, match=r"no-such-folder \[train\]: cannot be loaded"):  # offline: a Hub id that cannot be reached
        load_streaming_task_data(DataArguments(dataset_name="no-such-folder", streaming=True), "regression", 0)
    write_csv(folder / "train.csv", [*pairs(2), ["a", "b", "x"]])
    with pytest.raises(DataError, match=r"\[train\], row 3, column 'score': the label 'x' is not a number"):
        list(load_streaming_task_data(args, "regression", 0).splits["train"].dataset)


@pytest.mark.parametrize(
    ("data", "teacher", "training", "message"),
    [
        ({}, {}, {"max_steps": -1}, "--streaming needs --max_steps"),
        ({"label_scale": "auto"}, {}, {}, "--streaming cannot be combined with --label_scale auto"),
        ({"train_pair_order": "both"}, {}, {}, "--streaming cannot be combined with --train_pair_order both"),
        ({}, {"teacher": "bundled:all-MiniLM-L6-v2"}, {}, "--streaming cannot be combined with --teacher"),
        ({}, {}, {"soup_seeds": "1,2"}, "--streaming cannot be combined with --soup_seeds"),
        ({}, {}, {"dataloader_num_workers": 1}, "--streaming cannot be combined with --dataloader_num_workers"),
        ({"shuffle_buffer_size": -1}, {}, {}, "--shuffle_buffer_size must be at least 1 (or 0: the stream's own order), got -1"),
    ],
)
def test_what_a_stream_cannot_serve_is_a_flag_error(tmp_path, data, teacher, training, message):
    data_args = DataArguments(train_file="train.csv", streaming=True, **{"label_scale": "0,5", **data})
    training_args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), **{"max_steps": 5, **training})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_arguments(ModelArguments(), data_args, TeacherArguments(**teacher), training_args)


def test_task_specific_refusals():
    with pytest.raises(ConfigError, match="needs --class_names"):
        DataArguments(train_file="t.csv", streaming=True).check("classification")
    with pytest.raises(ConfigError, match="--task reranking"):
        DataArguments(train_file="t.csv", streaming=True).check("reranking")


def job_flags(tmp_path: Path, model: Path, train: Path, *extra: str) -> list[str]:
    validation = write_csv(tmp_path / "dev.csv", pairs(8, start=100))
    return [
        "--model_name_or_path", str(model), "--max_length", "32", "--train_file", str(train),
        "--validation_file", str(validation), "--label_scale", "0,5", "--output_dir", str(tmp_path / "out"),
        "--streaming", "--per_device_train_batch_size", "4", "--bf16", "false", "--bootstrap_resamples", "0",
        "--logging_steps", "1", *extra,
    ]  # fmt: skip


def test_the_job_trains_from_a_stream_for_max_steps(tmp_path, tiny_model_dir):
    from hf_crossenc.config import parse_job_arguments
    from hf_crossenc.job import train

    train_file = write_csv(tmp_path / "train.csv", pairs(200))
    model_args, data_args, teacher_args, training_args = parse_job_arguments(
        job_flags(tmp_path, tiny_model_dir, train_file, "--max_steps", "6", "--shuffle_buffer_size", "16")
    )
    result = train(model_args, data_args, training_args, teacher_args)
    assert training_args.train_sampling_strategy == "sequential"  # length grouping needs the whole split
    assert result.run["global_steps"] == 6 and result.run["train_examples_per_epoch"] is None
    assert 24 <= result.run["train_pairs"] < 200  # rows read: 6 batches of 4 and the buffer's read-ahead, not the file
    assert set(result.metrics) == {"validation"} and result.metrics["validation"]["n"] == 8
    assert (tmp_path / "out" / "model.safetensors").is_file()
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"| train | `train.csv` | {result.run['train_pairs']} |" in card  # the rows read, known after training


def test_a_resumed_stream_continues_where_the_run_stopped(tmp_path, tiny_model_dir):
    """Interrupted after 8 of 14 steps (a pass over the 30 rows is 8 batches): --resume skips the batches already trained
    on, in the same buffer-shuffled order, and ends with the uninterrupted run's weights."""
    from safetensors.torch import load_file

    train_file = write_csv(tmp_path / "train.csv", pairs(30))
    flags = job_flags(tmp_path, tiny_model_dir, train_file, "--max_steps", "14", "--shuffle_buffer_size", "8", "--eval_strategy", "no")
    flags += ["--save_strategy", "steps", "--save_steps", "4", "--save_total_limit", "5", "--disable_tqdm", "true"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main([*flags, "--output_dir", str(full)]) == 0
    shutil.copytree(full / "checkpoint-8", cut / "checkpoint-8")  # as if stopped right after checkpoint-8
    assert main([*flags, "--output_dir", str(cut), "--resume"]) == 0
    expected, resumed = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)
    assert json.loads((cut / "results.json").read_text())["run"]["global_steps"] == 14


def test_cli_exit_2_for_streaming_without_max_steps_and_for_a_bad_row_mid_training(tmp_path, capsys, tiny_model_dir):
    train_file = write_csv(tmp_path / "train.csv", [*pairs(30), ["a", "b", "oops"], *pairs(10)])
    out = tmp_path / "out"
    assert main(job_flags(tmp_path, tmp_path / "no-such-model", train_file)) == 2  # flags first: no model is looked at
    assert "--streaming needs --max_steps" in capsys.readouterr().err and not out.exists()
    flags = job_flags(tmp_path, tiny_model_dir, train_file, "--max_steps", "20", "--shuffle_buffer_size", "0")
    code = main([*flags, "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "no"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"file {train_file}, row 32, column 'score': the label 'oops' is not a number" in err and "Traceback" not in err
    assert not out.exists()  # checkpoint-2 .. checkpoint-6 were written before row 32 was read: removed


@pytest.mark.slow
def test_two_processes_share_the_stream_and_both_stop_at_a_bad_row(tmp_path, tiny_model_dir):
    """`accelerate launch` with 2 CPU processes: each reads the stream and keeps its share of a global batch; a bad row
    stops both (exit 2 each, no process left waiting for a batch) and removes the run's checkpoints."""
    import os
    import subprocess
    import sys

    from conftest import REPO, accelerate_launch

    train_file = write_csv(tmp_path / "train.csv", [*pairs(40), ["a", "b", "oops"], *pairs(10)])
    flags = [*job_flags(tmp_path, tiny_model_dir, train_file, "--shuffle_buffer_size", "0"), "--disable_tqdm", "true"]
    accelerate_launch(tmp_path, ["--multi_gpu", "--num_processes", "2"], [*flags, "--max_steps", "3"])
    run = json.loads((tmp_path / "out" / "results.json").read_text())["run"]
    assert (run["world_size"], run["global_steps"], run["global_batch_size"]) == (2, 3, 8)
    out = tmp_path / "out2"
    bad = [*flags, "--max_steps", "20", "--output_dir", str(out), "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "no"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "scripts" / "train.py"), *bad]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(launch, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count(f"error: file {train_file}, row 42, column 'score': the label 'oops' is not a number") >= 1
    assert "exitcode  : 2" in proc.stderr and not out.exists()


def test_the_job_streams_a_multi_class_classification(tmp_path, tiny_model_dir):
    classes = ["entailment", "neutral", "contradiction"]
    header = ("premise", "hypothesis", "label")
    train_file = write_csv(tmp_path / "train.csv", [[f"p {i}", f"h {i % 5}", classes[i % 3]] for i in range(24)], header=header)
    dev = write_csv(tmp_path / "dev.csv", [[f"p {i}", f"h {i}", classes[i % 3]] for i in range(6)], header=header)
    flags = ["--task", "classification", "--model_name_or_path", str(tiny_model_dir), "--max_length", "32", "--train_file", str(train_file)]
    flags += ["--validation_file", str(dev), "--output_dir", str(tmp_path / "out"), "--streaming", "--max_steps", "2"]
    flags += ["--class_names", ",".join(classes), "--per_device_train_batch_size", "4", "--bf16", "false", "--bootstrap_resamples", "0"]
    assert main(flags) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (results["run"]["loss"], results["run"]["label_names"], results["run"]["binary"]) == ("ce", classes, False)
    assert results["validation"]["n"] == 6
