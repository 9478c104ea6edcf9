"""hf_crossenc.benchmarks: the converters on synthetic rows of each source format, fetch_benchmark with a fake
downloader (no network), checksums, atomic writes, and the job's fallback to the cache when ../shared/data is absent."""

from __future__ import annotations

import dataclasses
import json
import logging
import urllib.error
from pathlib import Path

import pytest

from hf_crossenc import benchmarks
from hf_crossenc.benchmarks import (
    BENCHMARKS,
    BenchmarkError,
    ChecksumError,
    convert_msr,
    convert_stsb,
    convert_wang,
    fetch_benchmark,
    resolve_data_file,
    sha256_of,
    to_csv,
    verify_benchmark,
)
from hf_crossenc.commands.train import main as train_main
from hf_crossenc.errors import DataError

STSB_SOURCE = {
    "train": b'A man plays a guitar.,A man is playing guitar.,4.8\n"Yes, he does.",He does not.,0.5\n'
    + b"".join(f"A dog runs {i}.,A dog is running {i}.,{i % 6}.0\n".encode() for i in range(30)),
    "dev": b"".join(f"A cat sleeps {i}.,A cat naps {i}.,{(i * 7) % 5}.25\n".encode() for i in range(16)),
    "test": b"A girl sings.,A girl is singing.,5.0\nA boy eats.,Stocks fell.,0.0\n",
}


def test_stsb_rows_are_kept_as_they_are_with_our_header():
    rows = convert_stsb(STSB_SOURCE["train"])
    assert rows[:2] == [["A man plays a guitar.", "A man is playing guitar.", "4.8"], ["Yes, he does.", "He does not.", "0.5"]]
    data = to_csv(BENCHMARKS["stsb"].header, rows[:2])
    assert (
        data
        == b'sentence1,sentence2,similarity_score\r\nA man plays a guitar.,A man is playing guitar.,4.8\r\n"Yes, he does.",He does not.,0.5\r\n'
    )


@pytest.mark.parametrize(
    ("raw", "message"), [(b"a,b\n", "row 1 has 2 fields, expected 3"), (b"a,b,3\nc,d,high\n", "row 2: the score 'high'")]
)
def test_stsb_rows_that_do_not_fit_are_errors(raw, message):
    with pytest.raises(BenchmarkError, match=message):
        convert_stsb(raw, "stsb-en-train.csv")


def test_wang_columns_are_reordered_to_question_answer_label():
    raw = b'qtext,label,atext\r\nWho wrote it ?,1,"Hugo Young , the journalist , wrote it ."\r\nWho wrote it ?,0,It rained .\r\n'
    rows = convert_wang(raw)
    assert rows == [["Who wrote it ?", "Hugo Young , the journalist , wrote it .", "1"], ["Who wrote it ?", "It rained .", "0"]]
    assert to_csv(BENCHMARKS["trecqa"].header, rows).startswith(b'question,answer,label\r\nWho wrote it ?,"Hugo Young , the')
    with pytest.raises(BenchmarkError, match="expected the columns qtext, label, atext"):
        convert_wang(b"question,answer,label\nq,a,1\n")
    with pytest.raises(BenchmarkError, match="row 2: expected qtext, a 0/1 label"):
        convert_wang(b"qtext,label,atext\nq,maybe,a\n")


def test_msr_tab_lines_keep_their_quotes_as_text():
    """MSR's lines are tab-separated with quotes as plain text; the train file starts with a BOM and ends lines with CRLF."""
    raw = (
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n"
        '1\t702876\t702977\tAmrozi accused his brother, whom he called "the witness".\t"The witness", Amrozi said.\r\n'
        "0\t2108705\t2108831\tYucaipa owned Dominick's.\tYucaipa sold it in 1998.\r\n"
    ).encode()
    rows = convert_msr(raw)
    assert rows == [
        ['Amrozi accused his brother, whom he called "the witness".', '"The witness", Amrozi said.', "1"],
        ["Yucaipa owned Dominick's.", "Yucaipa sold it in 1998.", "0"],
    ]
    line = to_csv(BENCHMARKS["msrp"].header, rows).splitlines()[1]
    assert line == b'"Amrozi accused his brother, whom he called ""the witness"".","""The witness"", Amrozi said.",1'
    with pytest.raises(BenchmarkError, match="line 2: expected 5 tab-separated fields"):
        convert_msr(b"Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\nyes\t1\t2\ta\tb\n")
    with pytest.raises(BenchmarkError, match="expected the header"):
        convert_msr(b"label\ts1\ts2\n")


def test_every_set_is_pinned_to_a_commit_with_a_checksum_per_file():
    for name, bench in BENCHMARKS.items():
        assert len(bench.commit) == 40 and set(bench.sources) == set(bench.sha256), name
        for file in bench.sources:
            assert bench.url(file).startswith(f"https://raw.githubusercontent.com/{bench.repository}/{bench.commit}/"), name
            assert len(bench.sha256[file]) == 64


# --------------------------------------------------------------------------------------------
# fetch_benchmark with a fake downloader
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fake_stsb(monkeypatch) -> dict[str, bytes]:
    """STS-B pinned to the synthetic sources above: their converted files' checksums replace the real ones. Returns
    the downloader's answers by URL (downloads are recorded in the returned mapping's `calls`)."""
    bench = BENCHMARKS["stsb"]
    sha = {f"{split}.csv": sha256_of(to_csv(bench.header, convert_stsb(raw))) for split, raw in STSB_SOURCE.items()}
    fake = dataclasses.replace(bench, sha256=sha)
    monkeypatch.setitem(BENCHMARKS, "stsb", fake)
    return {fake.url(f"{split}.csv"): raw for split, raw in STSB_SOURCE.items()}


class Downloader:
    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers, self.calls = answers, []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.answers[url]


def test_fetch_writes_the_converted_files_from_the_pinned_urls(tmp_path, fake_stsb):
    download = Downloader(fake_stsb)
    folder = fetch_benchmark("stsb", tmp_path / "data", download=download)
    assert folder == tmp_path / "data" / "stsb"
    assert sorted(p.name for p in folder.iterdir()) == ["dev.csv", "test.csv", "train.csv"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["stsb"]  # no staging folder left
    assert (
        folder / "test.csv"
    ).read_bytes() == b"sentence1,sentence2,similarity_score\r\nA girl sings.,A girl is singing.,5.0\r\nA boy eats.,Stocks fell.,0.0\r\n"
    assert sorted(download.calls) == sorted(fake_stsb) and all(BENCHMARKS["stsb"].commit in url for url in download.calls)
    assert verify_benchmark("stsb", folder) == []
    # Already there and right: kept, nothing downloaded.
    assert fetch_benchmark("stsb", tmp_path / "data", download=Downloader({})) == folder


def test_a_checksum_mismatch_names_the_file_and_writes_nothing(tmp_path, fake_stsb):
    url = BENCHMARKS["stsb"].url("dev.csv")
    tampered = {**fake_stsb, url: fake_stsb[url].replace(b"naps 3.", b"sleeps 3.")}
    with pytest.raises(ChecksumError, match=r"stsb/dev.csv: sha256 [0-9a-f]{64} is not the pinned") as err:
        fetch_benchmark("stsb", tmp_path / "data", download=Downloader(tampered))
    assert url in str(err.value) and "nothing was written" in str(err.value)
    assert not (tmp_path / "data").exists()


def test_a_failed_download_names_the_url_and_writes_nothing(tmp_path, fake_stsb):
    def offline(url: str) -> bytes:
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(BenchmarkError, match="could not download https://raw.githubusercontent.com/PhilipMay/stsb-multi-mt/"):
        fetch_benchmark("stsb", tmp_path / "data", download=offline)
    assert not (tmp_path / "data").exists()


def test_a_folder_with_other_files_is_replaced_only_when_asked(tmp_path, fake_stsb):
    folder = tmp_path / "data" / "stsb"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text("mine\n")
    with pytest.raises(BenchmarkError, match="exists but .*train.csv has sha256 .*--overwrite"):
        fetch_benchmark("stsb", tmp_path / "data", download=Downloader(fake_stsb))
    assert [p.name for p in folder.iterdir()] == ["train.csv"]
    fetch_benchmark("stsb", tmp_path / "data", download=Downloader(fake_stsb), overwrite=True)
    assert verify_benchmark("stsb", folder) == [] and [p.name for p in (tmp_path / "data").iterdir()] == ["stsb"]


def test_a_failure_while_writing_leaves_no_partial_folder(tmp_path, fake_stsb, monkeypatch):
    def broken(staging: Path, target: Path, name: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(benchmarks, "_move_into_place", broken)
    with pytest.raises(OSError, match="disk full"):
        fetch_benchmark("stsb", tmp_path / "data", download=Downloader(fake_stsb))
    assert list((tmp_path / "data").iterdir()) == []


def test_the_data_fetch_command(tmp_path, fake_stsb, monkeypatch, capsys):
    from hf_crossenc.cli import main as cli_main

    monkeypatch.setattr(benchmarks, "download_bytes", Downloader(fake_stsb))
    assert cli_main(["data", "fetch", "stsb", "--dest", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert f"STS-B (English): train.csv, dev.csv, test.csv in {tmp_path / 'd' / 'stsb'} (from github.com/PhilipMay/stsb-multi-mt" in out
    assert cli_main(["data", "fetch", "stsb", "--dest", str(tmp_path / "d")]) == 0
    assert "(already there; sha256 checked)" in capsys.readouterr().out
    (tmp_path / "d" / "stsb" / "dev.csv").write_text("changed\n")
    assert cli_main(["data", "fetch", "stsb", "--dest", str(tmp_path / "d")]) == 2
    assert "dev.csv has sha256" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The job's data files
# --------------------------------------------------------------------------------------------


def test_existing_and_non_benchmark_paths_are_read_as_given(tmp_path):
    mine = tmp_path / "shared" / "data" / "stsb" / "train.csv"
    mine.parent.mkdir(parents=True)
    mine.write_text("sentence1,sentence2,similarity_score\n")
    assert resolve_data_file(str(mine)) == str(mine)  # present: never checked, never replaced
    assert resolve_data_file("missing/train.csv") == "missing/train.csv"
    assert resolve_data_file("../shared/data/stsb/other.csv") == "../shared/data/stsb/other.csv"
    assert not benchmarks.cache_root().exists()


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(benchmarks.DATA_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert benchmarks.cache_root() == tmp_path / "xdg" / "hf_crossenc" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert benchmarks.cache_root() == tmp_path / "home" / ".cache" / "hf_crossenc" / "data"


def test_default_job_offline_without_data_exits_2_naming_the_fetch_command(tmp_path, capsys):
    """The default job (configs/stsb.yaml) where ../shared/data is absent, offline: exit 2, nothing written."""
    out = tmp_path / "out"
    assert train_main(["--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "file ../shared/data/stsb/train.csv: file not found" in err and "HF_HUB_OFFLINE=1 forbids fetching it" in err
    assert "`hf-crossenc data fetch stsb --dest ../shared/data`" in err and "Traceback" not in err
    assert not out.exists() and not benchmarks.cache_root().exists()


def test_a_failed_download_exits_2_naming_the_fetch_command(tmp_path, capsys, monkeypatch, tiny_model_dir):
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def unreachable(url: str) -> bytes:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(benchmarks, "download_bytes", unreachable)
    out = tmp_path / "out"
    config = str(Path(__file__).parents[1] / "configs" / "msrp.yaml")  # its base model (stage 1's output) replaced: the data is what fails
    assert train_main(["--config", config, "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "file ../shared/data/msrp/train.csv: file not found, and fetching MSRP into" in err and "could not download" in err
    assert "`hf-crossenc data fetch msrp --dest ../shared/data`" in err
    assert not out.exists() and not benchmarks.cache_root().exists()


def test_a_job_on_missing_benchmark_files_trains_from_the_fetched_cache(tmp_path, monkeypatch, caplog, fake_stsb, tiny_model_dir):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    download = Downloader(fake_stsb)
    monkeypatch.setattr(benchmarks, "download_bytes", download)
    checkout = tmp_path / "work" / "checkout"  # ../shared does not exist beside it
    checkout.mkdir(parents=True)
    monkeypatch.chdir(checkout)
    caplog.set_level(logging.INFO, logger="hf_crossenc")
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", "../shared/data/stsb/train.csv", "--label_scale", "0,5"]
    argv += ["--validation_file", "../shared/data/stsb/dev.csv", "--num_train_epochs", "1", "--output_dir", "out", "--report_to", "none"]
    assert train_main(argv) == 0
    cache = benchmarks.cache_root() / "stsb"
    assert verify_benchmark("stsb", cache) == [] and len(download.calls) == 3
    assert f"data: ../shared/data/stsb/train.csv is absent; reading {cache / 'train.csv'}" in caplog.text
    assert json.loads((checkout / "out" / "results.json").read_text())["validation"]["n"] == 16
    # Offline now: the cached copy is used again without a download.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_data_file("../shared/data/stsb/dev.csv") == str(cache / "dev.csv") and len(download.calls) == 3


def test_missing_benchmark_files_offline_raise_a_data_error_and_create_no_cache(tmp_path):
    with pytest.raises(DataError, match="hf-crossenc data fetch trecqa --dest /x/shared/data"):
        resolve_data_file("/x/shared/data/trecqa/dev.csv")
    assert not benchmarks.cache_root().exists()


def test_the_docs_list_the_pinned_commits_and_checksums():
    text = (Path(__file__).parents[1] / "docs" / "data.md").read_text(encoding="utf-8")
    for name, bench in BENCHMARKS.items():
        assert f"[{bench.repository}](https://github.com/{bench.repository}/tree/{bench.commit})" in text
        for file, digest in bench.sha256.items():
            assert f"{digest}  {name}/{file}\n" in text
