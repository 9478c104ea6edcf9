"""The benchmark sets of the shipped configs — STS-B, TREC QA and MSRP — and where the job finds them.

Each set is our CSV files (``stsb/train.csv``, ...), built by a converter from source files of a public GitHub
repository at a pinned commit, with the sha256 of every file we write. `fetch_benchmark(name, dest)` downloads,
converts, checks every checksum, then writes ``dest/<name>/`` atomically (nothing is written unless every file is
right). `resolve_data_file(path)` is what the job calls for each data file: the path itself when it exists (the
usual case: ``../shared/data`` beside the checkout), else, for a benchmark file, the verified copy in the user cache
(`cache_root()`), downloaded on first use unless offline.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import logging
import os
import shlex
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, UserInputError

logger = logging.getLogger("hf_crossenc")

Rows = list[list[str]]
Downloader = Callable[[str], bytes]

DATA_ENV = "HF_CROSSENC_DATA"
"""Environment variable naming the cache folder of downloaded sets (default ``~/.cache/hf_crossenc/data``)."""
DOWNLOAD_TIMEOUT = 60.0
OFFLINE_VALUES = ("1", "true", "yes", "on")


class BenchmarkError(UserInputError):
    """A set cannot be fetched or does not match its pinned checksums."""


class ChecksumError(BenchmarkError):
    """A converted file is not the file whose sha256 is pinned."""


@dataclass(frozen=True)
class Benchmark:
    """One set: our files (name -> the source file it is converted from), their header and checksums."""

    name: str
    title: str
    repository: str  # owner/name on GitHub
    commit: str  # the pinned commit every source file is read at
    header: tuple[str, ...]
    sources: dict[str, str]  # our file name -> source path in the repository
    sha256: dict[str, str]  # our file name -> sha256 of the bytes we write
    convert: Callable[[bytes, str], Rows]  # (source bytes, source name for errors) -> rows without the header

    def url(self, file: str) -> str:
        """The raw download URL of the source of our `file`, at the pinned commit."""
        return f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/{self.sources[file]}"


# --------------------------------------------------------------------------------------------
# Converters: source format -> our rows
# --------------------------------------------------------------------------------------------


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BenchmarkError(f"{source}: not UTF-8 (byte offset {err.start}).") from None


def convert_stsb(raw: bytes, source: str = "stsb") -> Rows:
    """stsb-multi-mt's ``data/stsb-en-*.csv``: headerless CSV rows ``sentence1,sentence2,score``, kept as they are."""
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(_decode(raw, source), newline="")), start=1):
        if len(row) != 3:
            raise BenchmarkError(f"{source}: row {number} has {len(row)} fields, expected 3 (sentence1, sentence2, score).")
        try:
            float(row[2])
        except ValueError:
            raise BenchmarkError(f"{source}: row {number}: the score {row[2]!r} is not a number.") from None
        rows.append(row)
    return rows


def convert_wang(raw: bytes, source: str = "trecqa") -> Rows:
    """dataset-sts's ``data/anssel/wang/*.csv`` (header ``qtext,label,atext``) -> ``question,answer,label``."""
    reader = csv.DictReader(io.StringIO(_decode(raw, source), newline=""))
    if reader.fieldnames is None or not {"qtext", "label", "atext"} <= set(reader.fieldnames):
        raise BenchmarkError(f"{source}: expected the columns qtext, label, atext; found {reader.fieldnames}.")
    rows = []
    for number, record in enumerate(reader, start=2):
        if record["label"] not in ("0", "1") or record["atext"] is None:
            raise BenchmarkError(f"{source}: row {number}: expected qtext, a 0/1 label and atext, got {list(record.values())}.")
        rows.append([record["qtext"], record["atext"], record["label"]])
    return rows


MSR_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


def convert_msr(raw: bytes, source: str = "msrp") -> Rows:
    """dataset-sts's ``data/para/msr/msr-para-*.tsv`` (MSR's tab-separated lines, quotes are text) ->
    ``sentence1,sentence2,label``."""
    lines = _decode(raw, source).replace("\r\n", "\n").split("\n")
    if lines[0].split("\t") != MSR_HEADER:
        raise BenchmarkError(f"{source}: expected the header {MSR_HEADER}, found {lines[0].split(chr(9))}.")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 5 or fields[0] not in ("0", "1"):
            raise BenchmarkError(f"{source}: line {number}: expected 5 tab-separated fields starting with 0 or 1, got {fields}.")
        rows.append([fields[3], fields[4], fields[0]])
    return rows


def to_csv(header: tuple[str, ...], rows: Rows) -> bytes:
    """Our file format: UTF-8 CSV, minimal quoting, CRLF line ends (Python's csv defaults)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------------
# The sets
# --------------------------------------------------------------------------------------------

STSB_COMMIT = "30de0dec4ee199b7f42351d3f1a0b19592955385"
DATASET_STS_COMMIT = "e1d3375f5b3bc24f21aa4e46f96eb379e9fc1081"

BENCHMARKS: dict[str, Benchmark] = {
    "stsb": Benchmark(
        name="stsb",
        title="STS-B (English)",
        repository="PhilipMay/stsb-multi-mt",
        commit=STSB_COMMIT,
        header=("sentence1", "sentence2", "similarity_score"),
        sources={f"{split}.csv": f"data/stsb-en-{split}.csv" for split in ("train", "dev", "test")},
        sha256={
            "train.csv": "05832df3e4585e28d4ec907f217721fef4f428a6efc4516136b7e9f14244253a",
            "dev.csv": "098cd04b7ffbc4ea3654a975c398c02c30d015f9c7f487d67a39abe051f247d6",
            "test.csv": "71625f3fe97d8114b6594ad1f2e74105471bf551a6cc77ba5b6be880c015262b",
        },
        convert=convert_stsb,
    ),
    "trecqa": Benchmark(
        name="trecqa",
        title="TREC QA",
        repository="brmson/dataset-sts",
        commit=DATASET_STS_COMMIT,
        header=("question", "answer", "label"),
        sources={"train.csv": "data/anssel/wang/train.csv", "dev.csv": "data/anssel/wang/dev.csv"},
        sha256={
            "train.csv": "93c582d09e86d53e8d42c20bc62d1fbd2e90b2a67f1f534e9f7379aca2dba7dc",
            "dev.csv": "d28f7cc84ade39a6ea4cdc9a8cdec09e7cf672c7c5899de7e0b133e6fa4dcf66",
        },
        convert=convert_wang,
    ),
    "msrp": Benchmark(
        name="msrp",
        title="MSRP",
        repository="brmson/dataset-sts",
        commit=DATASET_STS_COMMIT,
        header=("sentence1", "sentence2", "label"),
        sources={"train.csv": "data/para/msr/msr-para-train.tsv", "dev.csv": "data/para/msr/msr-para-val.tsv"},
        sha256={
            "train.csv": "394077bc84335abbd6d54e3e5c50b57c6301a259e4b7ad4aa7fee6eaaf5d183c",
            "dev.csv": "9d0598db32e0cb9d8caf9235490e49a6d0453defe57362c34f2ede2d2e2cde30",
        },
        convert=convert_msr,
    ),
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise BenchmarkError(f"unknown benchmark {name!r}: one of {', '.join(BENCHMARKS)}.") from None


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_bytes(url: str) -> bytes:
    """GET `url` (the default downloader; tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "hf_crossenc"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
        return response.read()


def build_files(name: str, download: Downloader | None = None) -> dict[str, bytes]:
    """Download and convert every file of the set, in memory; `ChecksumError` if one is not the pinned file."""
    bench = get_benchmark(name)
    download = download or download_bytes
    files = {}
    for file in bench.sources:
        url = bench.url(file)
        try:
            raw = download(url)
        except (OSError, http.client.HTTPException) as err:  # URLError, HTTPError and timeouts are OSErrors
            raise BenchmarkError(f"could not download {url}: {err}") from err
        data = to_csv(bench.header, bench.convert(raw, url))
        digest = sha256_of(data)
        if digest != bench.sha256[file]:
            raise ChecksumError(
                f"{name}/{file}: sha256 {digest} is not the pinned {bench.sha256[file]} (converted from {url}); nothing was written."
            )
        files[file] = data
    return files


def verify_benchmark(name: str, folder: str | Path) -> list[str]:
    """What is wrong with the set's files in `folder` (missing, or not the pinned checksum); empty when all are right."""
    bench = get_benchmark(name)
    problems = []
    for file, expected in bench.sha256.items():
        path = Path(folder) / file
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif (digest := sha256_of(path.read_bytes())) != expected:
            problems.append(f"{path} has sha256 {digest}, not the pinned {expected}")
    return problems


def fetch_benchmark(name: str, dest: str | Path, *, download: Downloader | None = None, overwrite: bool = False) -> Path:
    """Download, convert and check the set, then write it to ``dest/<name>/`` at once (via a temporary folder in
    `dest` renamed into place); returns that folder. A folder already holding the right files is kept as it is; one
    holding other files is replaced only with `overwrite`. `download(url) -> bytes` defaults to `download_bytes`."""
    bench = get_benchmark(name)
    target = Path(dest) / name
    if target.exists():
        problems = verify_benchmark(name, target)
        if not problems:
            logger.info("%s: %s already holds the pinned files", bench.title, target)
            return target
        if not overwrite:
            raise BenchmarkError(f"{target} exists but {problems[0]}: move it away, or pass --overwrite to replace it.")
    files = build_files(name, download)  # every checksum right before anything touches the disk
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _fresh_folder(target.parent, f".{name}.partial")
    try:
        for file, data in files.items():
            (staging / file).write_bytes(data)
        _move_into_place(staging, target, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded
    logger.info("%s: wrote %s from github.com/%s at %s", bench.title, target, bench.repository, bench.commit[:7])
    return target


def _fresh_folder(parent: Path, prefix: str) -> Path:
    """A new empty folder in `parent` (created with the umask's permissions, unlike tempfile.mkdtemp's 0700)."""
    folder = parent / f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def _move_into_place(staging: Path, target: Path, name: str) -> None:
    """Rename `staging` to `target`; an old `target` is moved aside first and removed after. If another process
    put the right files there meanwhile (two ranks fetching into one cache), theirs are kept."""
    old = None
    if target.exists():
        old = _fresh_folder(target.parent, f".{name}.old")
        target.rename(old / name)
    try:
        staging.rename(target)
    except OSError:
        if target.is_dir() and not verify_benchmark(name, target):
            return
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The job's data files
# --------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """Where downloaded sets are kept: $HF_CROSSENC_DATA, else $XDG_CACHE_HOME/hf_crossenc/data, else
    ~/.cache/hf_crossenc/data (one folder per set)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hf_crossenc" / "data"


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in OFFLINE_VALUES


def benchmark_file_of(path: str | Path) -> tuple[Benchmark, str] | None:
    """(set, file name) when `path` is a benchmark file as the configs name it (``.../shared/data/<set>/<file>``)."""
    parts = Path(path).parts
    if len(parts) < 4 or parts[-4:-2] != ("shared", "data") or parts[-2] not in BENCHMARKS:
        return None
    bench = BENCHMARKS[parts[-2]]
    return (bench, parts[-1]) if parts[-1] in bench.sha256 else None


def fetch_command(path: str | Path) -> str:
    """The command that puts the set of the benchmark file `path` where `path` points."""
    name = Path(path).parent.name
    return f"hf-crossenc data fetch {name} --dest {shlex.quote(str(Path(path).parent.parent))}"


def resolve_data_file(path: str) -> str:
    """The file the job reads for `path`: `path` itself when it exists (or is no benchmark file); else the verified
    copy of the benchmark set in the cache (`cache_root()`), fetched there first if needed. Offline (HF_HUB_OFFLINE=1)
    or when the download fails, a `DataError` names the command that fetches the set."""
    if Path(path).exists():
        return path
    found = benchmark_file_of(path)
    if found is None:
        return path  # read_table reports the missing file
    bench, file = found
    folder = cached_benchmark(bench, path)
    if (path, str(folder)) not in _REPORTED:  # once per process, not once per distillation round
        _REPORTED.add((path, str(folder)))
        logger.info(
            "data: %s is absent; reading %s (%s, github.com/%s at %s, sha256 checked)",
            path,
            folder / file,
            bench.title,
            bench.repository,
            bench.commit[:7],
        )
    return str(folder / file)


_REPORTED: set[tuple[str, str]] = set()


def cached_benchmark(bench: Benchmark, missing: str) -> Path:
    """The cache folder of `bench`, holding the pinned files: as it is, or fetched now (`missing` is the path the job
    asked for, named in the error when the set cannot be had)."""
    folder = cache_root() / bench.name
    if not verify_benchmark(bench.name, folder):
        return folder
    hint = f"Get it with `{fetch_command(missing)}`, or pass your own files (--train_file, --validation_file, --test_file)."
    if is_offline():
        message = f"file not found, and {bench.title} is not in the cache {folder}: HF_HUB_OFFLINE=1 forbids fetching it."
        raise DataError(message, source=missing, hint=hint)
    logger.warning("%s not found: fetching %s into the cache %s", missing, bench.title, folder)
    try:
        fetch_benchmark(bench.name, folder.parent, overwrite=True)
    except (BenchmarkError, OSError) as err:
        reason = str(err).rstrip(".")
        raise DataError(f"file not found, and fetching {bench.title} into {folder} failed: {reason}.", source=missing, hint=hint) from err
    return folder
