"""Mining at scale: time and peak RSS of `hf-crossenc mine` over synthetic corpora of 10^5 and 10^6 passages.

The corpus is made of the STS-B and TREC QA sentences of ../shared/data, shuffled and joined two by two into distinct
passages (from a generated vocabulary when ../shared/data is absent); the ~1,000 queries are TREC QA questions with a
relevant answer and STS-B sentences with a close paraphrase (score >= 4), the answer or paraphrase being the positive.
Each size is mined in its own subprocess (the same path as `hf-crossenc mine`: read_pairs, read_corpus, BiEncoder,
mine_hard_negatives, write_mined), so each peak RSS (ru_maxrss) is its own; the data files are written beforehand by
this parent process, and the child's Arrow cache (HF_DATASETS_CACHE) is a fresh folder beside them: reading is cold. Printed per size: reading, model loading, embedding (time in the encoder, passages per second),
search (the rest of mining) and writing times, the end-to-end time and the peak RSS.

Embedding a million passages with MiniLM on 2 CPU cores takes hours, so three measurements:

    # the real encoder's embedding rate (a sample of the corpus; no mining)
    HF_HUB_OFFLINE=1 python scripts/bench_mining.py --encoder minilm --embed_rate_only --sizes 20000
    # end to end with a tiny random BERT (32 dimensions, built in a temporary folder): the index and search at scale
    HF_HUB_OFFLINE=1 python scripts/bench_mining.py --encoder tiny --sizes 100000 1000000
    # everything but a neural encoder (words hashed to fixed random vectors), in seconds at any size
    HF_HUB_OFFLINE=1 python scripts/bench_mining.py --encoder hash --sizes 100000 1000000

`--search_dim 384 --sizes 1000000` times the search alone over random 384-dimensional vectors (MiniLM's size) written
to an embedding file, for both backends: what mining a million MiniLM passages costs beyond embedding them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# ---- synthetic data (parent) ----------------------------------------------------------------


def source_sentences(rng: random.Random) -> tuple[list[str], list[tuple[str, str]]]:
    """(distinct sentences to build passages from, (query, positive) pairs)."""
    sentences: dict[str, None] = {}
    pairs: list[tuple[str, str]] = []
    stsb, trecqa = SHARED_DATA / "stsb", SHARED_DATA / "trecqa"
    if stsb.is_dir() and trecqa.is_dir():
        for split in ("train", "dev"):
            with (trecqa / f"{split}.csv").open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    sentences.update({row["question"]: None, row["answer"]: None})
                    if row["label"] == "1":
                        pairs.append((row["question"], row["answer"]))
        for split in ("train", "dev", "test"):
            with (stsb / f"{split}.csv").open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    sentences.update({row["sentence1"]: None, row["sentence2"]: None})
                    if float(row["similarity_score"]) >= 4.0:
                        pairs.append((row["sentence1"], row["sentence2"]))
        return list(sentences), pairs
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"]
    vocabulary = list(dict.fromkeys("".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(20000)))
    for _ in range(30000):
        sentences["".join(" ".join(rng.choices(vocabulary, k=rng.randint(6, 18))).capitalize() + ".")] = None
    texts = list(sentences)
    pairs = [(" ".join(rng.choices(vocabulary, k=6)) + "?", texts[i]) for i in rng.sample(range(len(texts)), 1500)]
    return texts, pairs


def write_data(folder: Path, size: int, queries: int, seed: int) -> tuple[Path, Path]:
    """pairs.csv (`queries` distinct queries) and corpus.csv (`size` distinct passages, pairs of sentences)."""
    rng = random.Random(seed)
    sentences, pairs = source_sentences(rng)
    by_query = list(dict(pairs).items())
    rng.shuffle(by_query)
    pairs_file, corpus_file = folder / "pairs.csv", folder / "corpus.csv"
    with pairs_file.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "positive"])
        writer.writerows(by_query[:queries])
    seen: set[int] = set()
    n = len(sentences)
    with corpus_file.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        while len(seen) < size:
            i, j = rng.randrange(n), rng.randrange(n)
            if i != j and i * n + j not in seen:
                seen.add(i * n + j)
                writer.writerow([f"{sentences[i]} {sentences[j]}"])
    return pairs_file, corpus_file


# ---- one measurement (child) ------------------------------------------------------------------


class TimedEncoder:
    """Counts the seconds and texts the wrapped encoder spends in `encode`."""

    def __init__(self, encoder) -> None:
        self.encoder, self.seconds, self.texts = encoder, 0.0, 0

    def encode(self, texts):
        began = time.perf_counter()
        try:
            return self.encoder.encode(texts)
        finally:
            self.seconds += time.perf_counter() - began
            self.texts += len(texts)


class HashEncoder:
    """No model: a text's vector is the sum of its words' fixed random vectors (32 dimensions, a table of 4,096 indexed
    by the word's CRC-32). Measures everything of mining but a neural encoder, at any size, in seconds."""

    def __init__(self) -> None:
        import numpy as np

        self.table = np.random.default_rng(0).standard_normal((4096, 32)).astype(np.float32)

    def encode(self, texts):
        import zlib

        import numpy as np

        out = np.zeros((len(texts), 32), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.table[[zlib.crc32(w.encode()) & 4095 for w in text.split()] or [0]].sum(axis=0)
        return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
        try:
            import faiss

            faiss.omp_set_num_threads(threads)
        except ImportError:
            pass


def child_mine(args: argparse.Namespace) -> dict:
    if args.model != "hash":
        from hf_crossenc.bi_encoder import BiEncoder
        from hf_crossenc.memory import bound_kernel_caches

        set_threads(args.threads)
        bound_kernel_caches(256)  # as `hf-crossenc mine` does (--cpu_kernel_cache)
    from hf_crossenc.embedding_index import embed_to_file
    from hf_crossenc.mining import mine_hard_negatives, write_mined

    try:
        from hf_crossenc.mining_io import read_corpus, read_pairs
    except ImportError:  # before hf_crossenc.mining_io (the in-memory implementation), for comparisons
        from hf_crossenc.mining import read_corpus, read_pairs

    folder = Path(args.folder)
    out: dict = {}
    began = time.perf_counter()
    queries, positives = read_pairs(folder / "pairs.csv")
    corpus = read_corpus(folder / "corpus.csv")
    out["read_s"] = time.perf_counter() - began
    out["rss_after_read_mb"] = peak_rss_mb()
    mark = time.perf_counter()
    if args.model == "hash":
        encoder = TimedEncoder(HashEncoder())
    else:
        encoder = TimedEncoder(BiEncoder(args.model, max_length=args.max_length, batch_size=128, precision=args.precision, remember=False))
    out["load_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    if args.embed_rate_only:
        with tempfile.TemporaryDirectory(dir=args.folder) as work:
            embed_to_file(encoder, corpus, Path(work) / "e.bin", what="passages")
        out.update(embed_s=encoder.seconds, embedded=encoder.texts, embed_per_s=encoder.texts / encoder.seconds)
    else:
        result = mine_hard_negatives(queries, positives, encoder, corpus=corpus, search=args.search, embeddings_dir=args.folder)
        mine_s = time.perf_counter() - mark
        out.update(embed_s=encoder.seconds, embedded=encoder.texts, embed_per_s=encoder.texts / encoder.seconds)
        out.update(search_s=mine_s - encoder.seconds, mine_s=mine_s, summary=result.summary)
        mark = time.perf_counter()
        write_mined(result, folder / "mined.csv", overwrite=True)
        out["write_s"] = time.perf_counter() - mark
    out["total_s"] = time.perf_counter() - began
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def child_search(args: argparse.Namespace) -> dict:
    """Search only: `size` random unit vectors of `search_dim` dimensions in an embedding file, 1,000 queries."""
    import numpy as np

    from hf_crossenc.embedding_index import CHUNK_ROWS, EmbeddingFile, search_top_k

    set_threads(args.threads)
    rng = np.random.default_rng(0)
    path = Path(args.folder) / "random.bin"
    with path.open("wb") as f:
        for start in range(0, args.size, CHUNK_ROWS):
            block = rng.standard_normal((min(CHUNK_ROWS, args.size - start), args.search_dim), dtype=np.float32)
            (block / np.linalg.norm(block, axis=1, keepdims=True)).tofile(f)
    stored = EmbeddingFile(path, args.size, args.search_dim)
    queries = stored.gather(rng.choice(args.size, args.queries, replace=False)) + 0.1 * rng.standard_normal(
        (args.queries, args.search_dim), dtype=np.float32
    )
    out: dict = {"rss_before_search_mb": peak_rss_mb()}
    results = {}
    for backend in args.backends:
        began = time.perf_counter()
        results[backend] = search_top_k(queries, stored, 52, backend=backend)[1]
        out[f"{backend}_search_s"] = time.perf_counter() - began
    if len(results) == 2:
        out["same_neighbours"] = bool((results["exact"] == results["faiss"]).all())
    out["peak_rss_mb"] = peak_rss_mb()
    path.unlink()
    return out


# ---- parent -------------------------------------------------------------------------------------


def cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} logical CPUs"


def encoder_path(name: str, folder: Path) -> str:
    if name == "tiny":
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_model import build_tiny_model

        return str(build_tiny_model(folder / "tiny-bert"))
    if name == "hash":
        return "hash"
    if name == "minilm":
        from hf_crossenc.modeling import bundled_model_path

        return str(bundled_model_path())
    return name


def run_child(argv: list[str], folder: Path) -> dict:
    """One measurement in a fresh process; its Arrow cache (the corpus and pairs converted by `open_table`) is in
    `folder`, so every run reads cold and nothing is left in the user's cache."""
    env = {**os.environ, "HF_DATASETS_CACHE": str(folder / "datasets-cache")}
    done = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.exit(f"child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="corpus sizes (passages)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--encoder",
        default="tiny",
        help="tiny (random 2-layer BERT, 32 dims), minilm (bundled), hash (no model: hashed words, 32 dims), or a model folder",
    )
    parser.add_argument("--search", default="auto", choices=["auto", "faiss", "exact"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch and faiss threads (default: theirs); 1 for the tiny encoder on a busy machine"
    )
    parser.add_argument("--embed_rate_only", action="store_true", help="embed the corpus and report the rate; no mining")
    parser.add_argument("--search_dim", type=int, default=0, help="time the search alone over random vectors of this dimension")
    parser.add_argument("--backends", nargs="+", default=["exact", "faiss"], help="with --search_dim")
    parser.add_argument("--workdir", default=None, help="where the data and embedding files go (default: a temporary folder)")
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.child:
        print(json.dumps(child_search(args) if args.search_dim else child_mine(args)))
        return

    print(f"CPU: {cpu()}; python {platform.python_version()}; command: {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mining-", dir=args.workdir) as work:
        work = Path(work)
        model = "" if args.search_dim else encoder_path(args.encoder, work)
        for size in args.sizes:
            folder = work / str(size)
            folder.mkdir()
            common = ["--folder", str(folder), "--size", str(size), "--queries", str(args.queries)]
            common += ["--threads", str(args.threads)] if args.threads else []
            if args.search_dim:
                result = run_child([*common, "--search_dim", str(args.search_dim), "--backends", *args.backends], folder)
            else:
                began = time.perf_counter()
                write_data(folder, size, args.queries, args.seed)
                print(f"[{size}] data written in {time.perf_counter() - began:.0f} s", flush=True)
                flags = ["--model", model, "--search", args.search, "--precision", args.precision, "--max_length", str(args.max_length)]
                result = run_child([*common, *flags, *(["--embed_rate_only"] if args.embed_rate_only else [])], folder)
            result["size"] = size
            rows.append(result)
            print(
                f"[{size}] {json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items() if k != 'summary'})}",
                flush=True,
            )
    print_table(rows, args)
    if args.output:
        Path(args.output).write_text(json.dumps({"cpu": cpu(), "argv": sys.argv, "rows": rows}, indent=2) + "\n")


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    if args.search_dim:
        print(f"\n| passages | dims | {' | '.join(f'{b} search (s)' for b in args.backends)} | same neighbours | peak RSS (MB) |")
        print("|---:|---:|" + "---:|" * len(args.backends) + "---|---:|")
        for r in rows:
            times = " | ".join(f"{r[f'{b}_search_s']:.1f}" for b in args.backends)
            print(f"| {r['size']:,} | {args.search_dim} | {times} | {r.get('same_neighbours', '-')} | {r['peak_rss_mb']:.0f} |")
        return
    if args.embed_rate_only:
        print("\n| encoder | passages | embed (s) | passages/s | peak RSS (MB) |\n|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {args.encoder} | {r['embedded']:,} | {r['embed_s']:.0f} | {r['embed_per_s']:.0f} | {r['peak_rss_mb']:.0f} |")
        return
    print(
        "\n| passages | queries | read (s) | embed (s) | passages/s | search (s) | write (s) | end to end (s) "
        "| peak RSS after reading (MB) | peak RSS (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['summary']['corpus_size']:,} | {r['summary']['queries']:,} | {r['read_s']:.1f} | {r['embed_s']:.0f} | "
            f"{r['embed_per_s']:.0f} | {r['search_s']:.1f} | {r['write_s']:.1f} | {r['total_s']:.0f} | "
            f"{r['rss_after_read_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    print(f"encoder: {args.encoder}; search: {rows[0]['summary']['search'] if rows else args.search}")


if __name__ == "__main__":
    main()
