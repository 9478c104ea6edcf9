"""Hard-negative mining: exact rankings with a hand-made stub encoder, file writing, and the CLI on the tiny model."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hf_crossenc import arrow_data, embedding_index, mining, mining_io
from hf_crossenc.commands import mine as mine_command
from hf_crossenc.commands.mine import build_parser
from hf_crossenc.commands.mine import run as run_mine
from hf_crossenc.data import read_table
from hf_crossenc.embedding_index import faiss_available
from hf_crossenc.errors import ConfigError, DataError
from hf_crossenc.mining import MiningResult, check_mining_settings, mine_hard_negatives, write_mined

SEARCHES = ["exact", pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed"))]

# Every passage is (a, b, rest): its cosine with q0 (= e0) is a, with q1 (= e1) is b.
COSINES = {
    "n1": (0.95, 0.00),
    "n2": (0.58, 0.20),
    "n3": (0.50, 0.40),
    "n4": (0.40, 0.70),
    "n5": (0.20, 0.86),
    "n6": (0.10, 0.50),
    "n7": (0.00, 0.30),
    "p0": (0.80, 0.10),
    "p0b": (0.60, 0.05),
    "p1": (0.30, 0.90),
}
# q0 has positives p0 (0.80) and p0b (0.60); q1 has p1 (0.90). Ranks after removing the positives:
#   q0: n1 .95, n2 .58, n3 .50, n4 .40, p1 .30, n5 .20, n6 .10, n7 .00
#   q1: n5 .86, n4 .70, n6 .50, n3 .40, n7 .30, n2 .20, p0 .10, p0b .05, n1 .00
QUERIES = ["q0", "q1", "q0"]
POSITIVES = ["p0", "p1", "p0b"]
CORPUS = ["n1", "n2", "n3", "n4", "n5", "n6", "n7"]


class StubEncoder:
    """Hand-made unit vectors, so every cosine (and ranking) is known exactly."""

    def __init__(self) -> None:
        self.vectors = {"q0": np.array([1.0, 0.0, 0.0]), "q1": np.array([0.0, 1.0, 0.0])}
        for text, (a, b) in COSINES.items():
            self.vectors[text] = np.array([a, b, math.sqrt(1.0 - a * a - b * b)])
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def negatives(row: dict[str, str]) -> list[str]:
    return [row[k] for k in sorted((k for k in row if k.startswith("negative_")), key=lambda k: int(k.split("_")[1]))]


@pytest.fixture(params=SEARCHES)
def search(request) -> str:
    """Each mining test runs on both search backends (they must give the same negatives)."""
    return request.param


def mine(**kwargs) -> MiningResult:
    kwargs.setdefault("search", "exact")
    return mine_hard_negatives(QUERIES, POSITIVES, StubEncoder(), corpus=CORPUS, **kwargs)


def test_positives_excluded_and_rows_of_a_query_share_its_negatives(search):
    result = mine(search=search, num_negatives=3, margin=None)
    assert [(r["query"], r["positive"]) for r in result.rows] == list(zip(QUERIES, POSITIVES))
    assert negatives(result.rows[0]) == ["n1", "n2", "n3"]  # p0 (.80) and p0b (.60) outrank n2 but are q0's positives
    assert negatives(result.rows[2]) == negatives(result.rows[0])
    assert negatives(result.rows[1]) == ["n5", "n4", "n6"]  # p1 excluded
    assert set(result.rows[0]) == {"query", "positive", "negative_1", "negative_2", "negative_3"}


def test_num_negatives_caps_the_count_and_another_querys_positive_is_a_candidate(search):
    result = mine(search=search, num_negatives=5, margin=None)
    assert negatives(result.rows[0]) == ["n1", "n2", "n3", "n4", "p1"]
    assert negatives(result.rows[1]) == ["n5", "n4", "n6", "n3", "n7"]
    assert negatives(mine(search=search, num_negatives=1, margin=None).rows[1]) == ["n5"]


def test_margin_drops_candidates_close_to_the_lowest_positive(search):
    result = mine(search=search, num_negatives=3)  # default margin 0.05
    assert negatives(result.rows[0]) == ["n3", "n4", "p1"]  # n1 .95 and n2 .58 lie above .60 - .05
    assert negatives(result.rows[1]) == ["n4", "n6", "n3"]  # n5 .86 lies above .90 - .05
    assert result.summary["filtered_by_margin"] == 3
    assert negatives(mine(search=search, num_negatives=3, margin=-0.2).rows[0]) == [
        "n2",
        "n3",
        "n4",
    ]  # a negative margin lets n2 (< .80) through


def test_range_window_skips_the_top_and_stops_at_range_max(search):
    result = mine(search=search, num_negatives=5, range_min=1, range_max=4, margin=None)
    assert negatives(result.rows[0]) == ["n2", "n3", "n4"]  # ranks 1..3 only: fewer than asked, kept
    assert negatives(result.rows[1]) == ["n4", "n6", "n3"]
    assert result.summary["filtered_by_range"] == 2
    assert result.summary["negatives_per_query"] == {"mean": 3.0, "min": 3, "max": 3}


def test_max_score_drops_candidates_above_the_ceiling(search):
    result = mine(search=search, num_negatives=2, margin=None, max_score=0.45)
    assert negatives(result.rows[0]) == ["n4", "p1"]
    assert negatives(result.rows[1]) == ["n3", "n7"]
    assert result.summary["filtered_by_max_score"] == 6  # q0: n1 n2 n3; q1: n5 n4 n6


def test_summary_counts_match_a_hand_computation(search):
    result = mine(search=search, num_negatives=2, range_min=1, range_max=6, margin=0.05, max_score=0.45)
    # q0 window n2 n3 n4 p1 n5: margin (<= .55) drops n2, ceiling drops n3 -> n4, p1
    # q1 window n4 n6 n3 n7 n2: margin (<= .85) drops none, ceiling drops n4 n6 -> n3, n7
    assert negatives(result.rows[0]) == ["n4", "p1"] and negatives(result.rows[1]) == ["n3", "n7"]
    summary = result.summary
    assert {k: summary[k] for k in ("queries", "rows", "corpus_size", "num_negatives", "range_min", "range_max")} == {
        "queries": 2,
        "rows": 3,
        "corpus_size": 10,
        "num_negatives": 2,
        "range_min": 1,
        "range_max": 6,
    }
    assert summary["negatives_per_query"] == {"mean": 2.0, "min": 2, "max": 2}
    assert summary["queries_without_negatives"] == 0
    # range: n1 for q0, n5 for q1; margin: n2; ceiling: n3 for q0, n4 and n6 for q1
    assert [summary[f"filtered_by_{name}"] for name in ("range", "margin", "max_score")] == [2, 1, 3]
    assert summary["mean_positive_score"] == pytest.approx((0.80 + 0.60 + 0.90) / 3, abs=1e-5)
    assert summary["mean_negative_score"] == pytest.approx((0.40 + 0.30 + 0.40 + 0.30) / 4, abs=1e-5)
    json.dumps(summary)  # serialisable as is


def test_a_query_without_negatives_is_written_and_counted(search):
    result = mine(search=search, num_negatives=3, range_min=8, range_max=20, margin=None)
    assert result.rows[0] == {"query": "q0", "positive": "p0"}  # q0 has only 8 candidates (ranks 0..7)
    assert negatives(result.rows[1]) == ["n1"]  # q1's rank 8
    summary = result.summary
    assert summary["queries_without_negatives"] == 1
    assert summary["negatives_per_query"] == {"mean": 0.5, "min": 0, "max": 1}
    assert summary["filtered_by_range"] == 16


def test_corpus_is_deduplicated_and_the_query_text_is_never_its_own_negative(search):
    encoder = StubEncoder()
    result = mine_hard_negatives(
        QUERIES, POSITIVES, encoder, corpus=["q1", "n3", "n3", "p0", "n7"], num_negatives=10, margin=None, search=search
    )
    assert result.summary["corpus_size"] == 6  # q1, n3, p0, n7 + p1, p0b
    assert negatives(result.rows[1]) == ["n3", "n7", "p0", "p0b"]  # "q1" (cosine 1 with itself) excluded
    assert negatives(result.rows[0]) == ["n3", "p1", "q1", "n7"]  # q1 and n7 tie at cosine 0: corpus order
    assert sorted(set(encoder.encoded)) == sorted({"q0", "q1", "n3", "p0", "n7", "p1", "p0b"})
    assert result.summary["search"] == search


def test_chunks_blocks_batches_and_float16_give_the_same_result(search, monkeypatch, tmp_path):
    expected = mine(num_negatives=4, range_min=1, margin=0.05)
    monkeypatch.setattr(embedding_index, "SCORE_BLOCK_ELEMENTS", 2)  # one query x two passages per score block
    monkeypatch.setattr(embedding_index, "EMBED_BATCH_TEXTS", 3)
    calls: list[int] = []

    class CountingEncoder(StubEncoder):
        def encode(self, texts):
            calls.append(len(texts))
            return super().encode(texts)

    kwargs = {"num_negatives": 4, "range_min": 1, "margin": 0.05, "search": search, "embeddings_dir": tmp_path, "corpus": CORPUS}
    for scaled in (
        mine_hard_negatives(QUERIES, POSITIVES, CountingEncoder(), chunk_rows=2, query_block=1, **kwargs),
        mine_hard_negatives(QUERIES, POSITIVES, CountingEncoder(), chunk_rows=3, embedding_dtype="float16", **kwargs),
    ):
        assert scaled.rows == expected.rows
        for key, value in expected.summary.items():
            if key != "search":
                assert scaled.summary[key] == (pytest.approx(value, abs=1e-3) if isinstance(value, float) else value)
    assert calls == [3, 3, 3, 1, 2] * 2  # 10 passages, then 2 queries, 3 texts per call
    assert os.listdir(tmp_path) == []  # the embedding files are gone


def test_a_query_with_many_positives_still_gets_range_max_candidates(search):
    # q0's positives outrank everything: the search must look past them (depth = range_max + exclusions).
    queries = ["q0"] * 3
    result = mine_hard_negatives(
        queries, ["p0", "n1", "p0b"], StubEncoder(), corpus=CORPUS, num_negatives=2, range_max=2, margin=None, search=search
    )
    assert negatives(result.rows[0]) == ["n2", "n3"]


def test_mining_works_without_faiss(monkeypatch):
    monkeypatch.setattr(embedding_index, "faiss_available", lambda: False)
    result = mine(num_negatives=3, margin=None, search="auto")
    assert result.summary["search"] == "exact"
    assert negatives(result.rows[0]) == ["n1", "n2", "n3"]
    with pytest.raises(ConfigError, match="faiss-cpu"):
        mine(search="faiss")


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="--range_max"):
        check_mining_settings(5, 10, 10)
    with pytest.raises(ConfigError, match="--num_negatives"):
        mine(num_negatives=0)
    with pytest.raises(ConfigError, match="--margin"):
        mine(margin=float("nan"))
    assert build_parser().parse_args(["in.csv", "--output", "o.csv", "--margin", "none"]).margin is None


# ---- writing ---------------------------------------------------------------------------


def uneven_result() -> MiningResult:
    return mine(num_negatives=3, range_min=7, range_max=20, margin=None)  # q0: 1 negative, q1: 2


def test_csv_round_trip_with_empty_cells_for_missing_negatives(tmp_path):
    result = uneven_result()
    write_mined(result, tmp_path / "out" / "mined.csv")
    table = read_table(tmp_path / "out" / "mined.csv")
    assert table.columns == ["query", "positive", "negative_1", "negative_2"]
    assert table.rows[0] == {"query": "q0", "positive": "p0", "negative_1": "n7", "negative_2": ""}
    assert [{k: v for k, v in row.items() if v != ""} for row in table.rows] == result.rows
    assert sorted(os.listdir(tmp_path / "out")) == ["mined.csv"]  # no temporary file left behind


def test_jsonl_round_trip_holds_only_the_negatives_found(tmp_path):
    result = uneven_result()
    write_mined(result, tmp_path / "mined.jsonl")
    assert read_table(tmp_path / "mined.jsonl").rows == result.rows
    assert "negative_2" not in result.rows[0]


def test_unsupported_suffix_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(DataError, match="mined.txt") as info:
        write_mined(uneven_result(), tmp_path / "mined.txt")
    assert ".jsonl" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_file_and_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "mined.csv"

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(mining.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_mined(uneven_result(), target)
    assert os.listdir(tmp_path) == []
    target.write_text("old\n")
    with pytest.raises(OSError, match="disk full"):
        write_mined(uneven_result(), target, overwrite=True)
    assert os.listdir(tmp_path) == ["mined.csv"] and target.read_text() == "old\n"


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    target = tmp_path / "mined.jsonl"
    target.write_text("keep me\n")
    with pytest.raises(DataError, match="refusing to overwrite") as info:
        write_mined(uneven_result(), target)
    assert str(target) in str(info.value)
    assert target.read_text() == "keep me\n"
    write_mined(uneven_result(), target, overwrite=True)
    assert len(read_table(target).rows) == 3


# ---- command line ------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


PAIRS = [
    ["query", "positive"],
    ["how do cats sleep", "cats sleep most of the day"],
    ["how do cats sleep", "a cat naps in the sun"],
    ["what is rust", "rust is a programming language"],
    ["capital of france", "paris is the capital of france"],
    ["boiling point of water", "water boils at 100 degrees"],
]


def test_run_mine_end_to_end_on_the_tiny_model(tmp_path, tiny_model_dir, capsys):
    write_csv(tmp_path / "pairs.csv", PAIRS)
    (tmp_path / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(["dogs bark", "the sky is blue", "bread is baked", "cats sleep"])
        )
    )
    argv = ["pairs.csv", "--output", "mined.csv", "--corpus", "corpus.jsonl", "--model", str(tiny_model_dir)]
    argv += ["--num_negatives", "3", "--margin", "none", "--summary", "summary.json", "--batch_size", "4", "--precision", "fp32"]
    assert run_mine(build_parser().parse_args(argv)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "summary.json").read_text()) == printed
    assert printed["precision"] == "fp32"
    assert printed["rows"] == 5 and printed["queries"] == 4 and printed["corpus_size"] == 9
    assert printed["negatives_per_query"] == {"mean": 3.0, "min": 3, "max": 3}  # nothing filtered: 3 of 7 or 8 candidates
    rows = read_table(tmp_path / "mined.csv").rows
    assert len(rows) == 5
    by_query: dict[str, set[str]] = {}
    for row in rows:
        by_query.setdefault(row["query"], set()).add(row["positive"])
    for row in rows:
        found = [row[f"negative_{k}"] for k in (1, 2, 3)]
        assert len(set(found)) == 3 and not set(found) & by_query[row["query"]]

    with pytest.raises(DataError, match="refusing to overwrite"):
        run_mine(build_parser().parse_args(argv))
    assert run_mine(build_parser().parse_args([*argv, "--overwrite", "--range_min", "1"])) == 0
    assert json.loads(capsys.readouterr().out)["filtered_by_range"] == 4


def test_empty_query_cell_is_reported_before_the_model_is_loaded(tmp_path, capsys):
    bad = [row[:] for row in PAIRS]
    bad[2][0] = "  "  # spreadsheet row 3
    write_csv(tmp_path / "pairs.csv", bad)
    # A model path that does not exist: reaching the model would raise ConfigError, not DataError.
    argv = ["pairs.csv", "--output", "mined.jsonl", "--model", str(tmp_path / "no-such-model"), "--summary", "s.json"]
    with pytest.raises(DataError) as info:
        run_mine(build_parser().parse_args(argv))
    message = str(info.value)
    assert "pairs.csv" in message and "row 3" in message and "'query'" in message
    assert not (tmp_path / "mined.jsonl").exists() and not (tmp_path / "s.json").exists()
    assert mine_command.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: file pairs.csv, row 3, column 'query'")


def pair_lists(path, query_column=None, positive_column=None) -> tuple[list[str], list[str]]:
    queries, positives = mining_io.read_pairs(path, query_column, positive_column)
    if path.endswith((".csv", ".jsonl")):  # Arrow columns (other files: lists)
        assert isinstance(queries, mining_io.CrossEncoderTextColumn) and isinstance(positives, mining_io.CrossEncoderTextColumn)
    return list(queries), list(positives)


def test_columns_are_detected_or_named(tmp_path):
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n" + json.dumps({"question": "r"}) + "\n")
    with pytest.raises(DataError, match="row 2, column 'answer': the text is missing"):
        mining_io.read_pairs("qa.jsonl")
    write_csv(tmp_path / "pairs.csv", [["anchor", "pos", "other"], ["q", "a", "b"]])
    assert pair_lists("pairs.csv") == (["q"], ["a"])
    assert pair_lists("pairs.csv", positive_column="other") == (["q"], ["b"])
    with pytest.raises(DataError, match="'positive' does not exist") as info:
        mining_io.read_pairs("pairs.csv", positive_column="positive")
    assert "--positive_column" in str(info.value)
    write_csv(tmp_path / "corpus.csv", [["body_text"], ["x"], ["y"]])
    assert list(mining_io.read_corpus("corpus.csv")) == ["x", "y"]


def test_a_labelled_file_mines_for_its_relevant_rows_only(tmp_path):
    write_csv(tmp_path / "qa.csv", [["question", "answer", "label"], ["q1", "right", "1"], ["q1", "wrong", "0"], ["q2", "yes", "1"]])
    assert pair_lists("qa.csv") == (["q1", "q2"], ["right", "yes"])
    (tmp_path / "qa.jsonl").write_text(
        "".join(json.dumps({"q": q, "a": a, "label": y}) + "\n" for q, a, y in [("q1", "a", 0), ("q2", "b", 2)])
    )
    assert pair_lists("qa.jsonl", "q", "a") == (["q2"], ["b"])
    write_csv(tmp_path / "bad.csv", [["question", "answer", "label"], ["q1", "right", "1"], ["q1", "wrong", "maybe"]])
    with pytest.raises(DataError, match="row 3, column 'label'"):
        mining_io.read_pairs("bad.csv")
    write_csv(tmp_path / "none.csv", [["question", "answer", "label"], ["q1", "wrong", "0"]])
    with pytest.raises(DataError, match="no row has a positive 'label'"):
        mining_io.read_pairs("none.csv")


# ---- reading a large corpus ----------------------------------------------------------------


def reference_corpus(path: Path, column: str | None = None) -> list[str]:
    """The ordinary reader (`read_table`), which the streamed readers must match."""
    table = read_table(path)
    name = mining_io._pick_column(table, column, mining_io.CORPUS_CANDIDATES, "passage", "--corpus_column", single_ok=True)
    return mining_io._texts(table, name)


def no_table_reader(path):
    raise AssertionError(f"read_table({path}) was called: the corpus was not streamed")


def test_csv_jsonl_and_parquet_corpora_are_streamed_as_the_table_reader_reads_them(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = tmp_path / "corpus.csv"
    csv_path.write_text('\ufeffid, Text \n1,"two\nlines, quoted"\n\n2,plain\n3,"say ""hi"""\n', encoding="utf-8")
    jsonl_path = tmp_path / "corpus.jsonl"
    lines = [{"id": 2, "title": "t2", "passage": "p2"}, {"passage": "p3\u2028same line", "id": 3, "title": "t3"}]
    jsonl_path.write_text("\n".join(json.dumps(r) for r in lines) + "\r\n\n", encoding="utf-8")
    parquet_path = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"n": [1, 2], "text": ["a", "b"]}), parquet_path)
    expected = {path: reference_corpus(path) for path in (csv_path, jsonl_path, parquet_path)}
    explicit = reference_corpus(jsonl_path, "title")
    monkeypatch.setattr(arrow_data, "read_table", no_table_reader)
    csv_column = mining_io.read_corpus(csv_path)
    assert csv_column.mapped and len(csv_column) == 3  # memory-mapped Arrow, texts fetched on demand
    assert list(csv_column) == expected[csv_path] == ["two\nlines, quoted", "plain", 'say "hi"']
    assert csv_column.take([2, 0]) == ['say "hi"', "two\nlines, quoted"] and csv_column[1:] == ["plain", 'say "hi"']
    assert list(mining_io.read_corpus(jsonl_path)) == expected[jsonl_path] == ["p2", "p3\u2028same line"]
    assert list(mining_io.read_corpus(jsonl_path, "title")) == explicit == ["t2", "t3"]
    assert list(mining_io.read_corpus(parquet_path)) == expected[parquet_path] == ["a", "b"]
    one_column = tmp_path / "one.jsonl"
    one_column.write_text('{"body_text": "x"}\n{"body_text": "y"}\n')
    assert list(mining_io.read_corpus(one_column)) == ["x", "y"]  # a one-column file needs no known name


def test_a_bad_streamed_corpus_gets_the_table_readers_precise_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cases = {
        "empty.csv": ("text\nfine\n  \n", r"row 3, column 'text': the text is empty"),
        "short.csv": ("id,text\n1,a\n2\n", "row 3: has 1 fields but the header has 2"),
        "semi.csv": ("id;text\n1;a\n", "separated by semicolons"),
        "missing.jsonl": ('{"text": "a"}\n{"id": 2}\n', r"row 2, column 'text': the text is missing"),
        "later.jsonl": ('{"id": 1}\n{"id": 2, "text": "b"}\n', r"row 1, column 'text': the text is missing"),
        "twice.jsonl": ('{"text": "a"}\n{"text": "b", "text": "c"}\n', r"row 2, column 'text': the key 'text' appears more than once"),
        "number.jsonl": ('{"text": "a"}\n{"text": 5}\n', r"row 2, column 'text': expected text, found int 5"),
        "columns.csv": ("id,title\n1,a\n", r"no passage column found among \['id', 'title'\]"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(DataError, match=message):
            mining_io.read_corpus(tmp_path / name)
    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "null.parquet")
    with pytest.raises(DataError, match=r"row 2, column 'text': the text is missing"):
        mining_io.read_corpus(tmp_path / "null.parquet")
    with pytest.raises(DataError, match=r"the passage column 'body' does not exist.*--corpus_column"):
        mining_io.read_corpus(tmp_path / "empty.csv", "body")


def test_run_mine_scale_options(tmp_path, tiny_model_dir, capsys, monkeypatch):
    write_csv(tmp_path / "pairs.csv", PAIRS)
    (tmp_path / "embeddings").mkdir()
    argv = ["pairs.csv", "--output", "mined.jsonl", "--model", str(tiny_model_dir), "--precision", "fp32", "--margin", "none"]
    assert run_mine(build_parser().parse_args([*argv, "--search", "exact"])) == 0
    exact = json.loads(capsys.readouterr().out)
    assert exact["search"] == "exact"
    rows = read_table(tmp_path / "mined.jsonl").rows
    scaled = ["--search", "auto", "--embedding_dtype", "float16", "--embeddings_dir", "embeddings", "--overwrite"]
    assert run_mine(build_parser().parse_args([*argv, *scaled])) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["search"] == ("faiss" if faiss_available() else "exact")
    assert printed["queries"] == exact["queries"] and read_table(tmp_path / "mined.jsonl").rows == rows
    assert os.listdir(tmp_path / "embeddings") == []  # the embedding files are removed

    # Refused before any model is loaded (the model path does not exist: loading it would be another error).
    missing_model = ["pairs.csv", "--output", "other.csv", "--model", str(tmp_path / "no-such-model")]
    with pytest.raises(ConfigError, match="--embeddings_dir"):
        run_mine(build_parser().parse_args([*missing_model, "--embeddings_dir", "nowhere"]))
    monkeypatch.setattr(embedding_index, "faiss_available", lambda: False)
    with pytest.raises(ConfigError, match="--search faiss needs faiss-cpu"):
        run_mine(build_parser().parse_args([*missing_model, "--search", "faiss"]))
    assert not (tmp_path / "other.csv").exists()


# ---- the same output as before the bounded-memory rewrite -----------------------------------


class BagEncoder:
    """The same vectors on any platform: a text's vector is the sum of its words' seeded random vectors (texts that
    share words are close)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 16))
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i] += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(16)
        return out.astype(np.float32)


def write_pinned_data(folder: Path) -> tuple[Path, Path]:
    """pairs.csv (70 rows, 45 queries, some with several positives, a repeated row, other queries' positives) and
    corpus.csv (293 passages: duplicates, some positives, a query's text)."""
    rng = np.random.default_rng(34)
    words = [f"w{i}" for i in range(60)]

    def sentence(n):
        return " ".join(rng.choice(words, size=n).tolist())

    passages = [sentence(int(rng.integers(4, 10))) for _ in range(260)]
    queries = [sentence(3) + "?" for _ in range(45)]
    rows = []
    for i, q in enumerate(queries):
        for _ in range(1 + (i % 3 == 0) + (i % 7 == 0)):
            rows.append([q, q.rstrip("?") + " " + sentence(4)])
    rows.append([queries[1], rows[0][1]])  # another query's positive
    rows.append([queries[2], rows[3][1]])
    rows.append(list(rows[5]))  # a repeated row
    corpus = passages + [r[1] for r in rows[::6]] + passages[:20] + [queries[4]]
    write_csv(folder / "pairs.csv", [["query", "positive"], *rows])
    write_csv(folder / "corpus.csv", [["text"], *([p] for p in corpus)])
    return folder / "pairs.csv", folder / "corpus.csv"


PINNED_SETTINGS = {"num_negatives": 4, "range_min": 1, "range_max": 30, "margin": -0.2, "max_score": 0.68}
# Written by the implementation of commit 9051c61 (every passage text held in a dictionary, every row in a list).
PINNED_SHA256 = {
    "csv": "ba9f689bdaec4c5dea9405d7fe4f942234c25f90b1413eb774984070b3eaacbd",
    "jsonl": "c6bc1fc611e25c44936fa73c81c3eec13e85df1a0171216506f967fe43a1d180",
}
PINNED_SUMMARY = {
    "queries": 45, "rows": 70, "corpus_size": 328, **PINNED_SETTINGS,
    "negatives_per_query": {"mean": 3.2, "min": 0, "max": 4}, "queries_without_negatives": 9,
    "filtered_by_range": 45, "filtered_by_margin": 418, "filtered_by_max_score": 13,
    "mean_positive_score": 0.437427, "mean_negative_score": 0.562048,
}  # fmt: skip


def mine_pinned(folder: Path, corpus_file: Path, **kwargs) -> dict[str, str]:
    queries, positives = mining_io.read_pairs(folder / "pairs.csv")
    result = mine_hard_negatives(queries, positives, BagEncoder(), corpus=mining_io.read_corpus(corpus_file), **PINNED_SETTINGS, **kwargs)
    assert {k: v for k, v in result.summary.items() if k != "search"} == PINNED_SUMMARY
    digests = {}
    for kind in ("csv", "jsonl"):
        write_mined(result, folder / f"mined.{kind}", overwrite=True)
        digests[kind] = hashlib.sha256((folder / f"mined.{kind}").read_bytes()).hexdigest()
    return digests


def test_outputs_are_those_of_the_in_memory_implementation(tmp_path, search):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, corpus_file = write_pinned_data(tmp_path)
    assert mine_pinned(tmp_path, corpus_file, search=search) == PINNED_SHA256
    texts = read_table(corpus_file).rows
    pq.write_table(pa.table({"id": list(range(len(texts))), "passage": [r["text"] for r in texts]}), tmp_path / "corpus.parquet")
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in texts))
    for other in ("corpus.parquet", "corpus.jsonl"):
        assert mine_pinned(tmp_path, tmp_path / other, search=search, chunk_rows=7, query_block=5) == PINNED_SHA256, other


def test_small_fetches_and_colliding_digests_change_nothing(tmp_path, monkeypatch):
    """Texts are fetched from the corpus a few at a time (never the whole column), and passages whose 64-bit digests
    collide (here: all of them) are still told apart by their texts."""
    _, corpus_file = write_pinned_data(tmp_path)
    for module, name, value in [(mining_io, "READ_ROWS", 40), (embedding_index, "EMBED_BATCH_TEXTS", 50),
                                (mining, "WRITE_ROWS", 3), (mining, "FETCH_TEXTS", 30)]:  # fmt: skip
        monkeypatch.setattr(module, name, value)
    fetched: list[int] = []
    done = mining_io.CrossEncoderTextColumn._done
    monkeypatch.setattr(mining_io.CrossEncoderTextColumn, "_done", lambda self, texts: fetched.append(len(texts)) or done(self, texts))
    assert mine_pinned(tmp_path, corpus_file) == PINNED_SHA256
    assert fetched and max(fetched) <= 50
    monkeypatch.setattr(mining, "_hashes", lambda texts, count: np.zeros(count, dtype=np.uint64))
    assert mine_pinned(tmp_path, corpus_file) == PINNED_SHA256


def test_a_failure_while_writing_rows_leaves_no_partial_file(tmp_path, monkeypatch):
    _, corpus_file = write_pinned_data(tmp_path)
    queries, positives = mining_io.read_pairs(tmp_path / "pairs.csv")
    result = mine_hard_negatives(queries, positives, BagEncoder(), corpus=mining_io.read_corpus(corpus_file), **PINNED_SETTINGS)
    monkeypatch.setattr(mining, "WRITE_ROWS", 4)
    calls = []

    def failing_take(ids):
        calls.append(len(ids))
        if len(calls) == 3:
            raise OSError("corpus file vanished")
        return mining._Passages.take(result.passages, ids)

    monkeypatch.setattr(result.passages, "take", failing_take)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mined.jsonl").write_text("old\n")
    for name, overwrite in (("mined.csv", False), ("mined.jsonl", True)):
        calls.clear()
        with pytest.raises(OSError, match="vanished"):
            write_mined(result, tmp_path / "out" / name, overwrite=overwrite)
    assert os.listdir(tmp_path / "out") == ["mined.jsonl"] and (tmp_path / "out" / "mined.jsonl").read_text() == "old\n"


def test_no_pairs_and_an_empty_corpus_mine_nothing(tmp_path):
    empty = mine_hard_negatives([], [], StubEncoder(), corpus=None, search="exact")
    assert empty.rows == [] and empty.summary["queries"] == 0 and empty.summary["corpus_size"] == 0
    assert empty.summary["negatives_per_query"] == {"mean": 0.0, "min": 0, "max": 0} and empty.summary["mean_positive_score"] is None
    write_mined(empty, tmp_path / "mined.csv")
    assert (tmp_path / "mined.csv").read_text() == "query,positive\n"
    write_csv(tmp_path / "corpus.csv", [["text"]])
    result = mine_hard_negatives(QUERIES, POSITIVES, StubEncoder(), corpus=mining_io.read_corpus("corpus.csv"), margin=None, search="exact")
    assert result.summary["corpus_size"] == 3 and negatives(result.rows[1]) == ["p0", "p0b"]
