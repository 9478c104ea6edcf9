"""Scale benchmark: the training job on synthetic pair files of 10^4 .. 10^7 pairs.

The pairs are the STS-B and TREC QA sentences (../shared/data), shuffled and recombined: regression pairs as CSV
(``sentence1,sentence2,similarity_score``, scores 0-5, ``--label_scale 0,5``) and listwise reranking rows as CSV
(``question,answer,label``: a query with 10 candidates, the first one or two relevant; ``--task reranking --loss
listwise``). For each size and kind the job runs twice in a fresh process (cold: an empty `datasets` cache; warm:
the cache of the cold run), and prints

* time to the first optimizer step, from the start of the process (a `TrainerCallback`, ``on_step_end`` of step 1);
* peak RSS of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``);
* steady training samples/s over the next ``--steps`` steps (listwise: groups/s).

The process stops after those steps (no saving, no evaluation). The model is a tiny random BERT with the bundled
MiniLM's tokenizer (built in the work dir) unless ``--model`` names one (e.g. ``bundled:all-MiniLM-L6-v2``).

    HF_HUB_OFFLINE=1 python scripts/bench_scale.py --sizes 1e4,1e5,1e6
    HF_HUB_OFFLINE=1 python scripts/bench_scale.py --sizes 1e7 --kinds regression --work_dir /big/disk --output t.json

Synthetic files and caches live in ``--work_dir`` (default: $TMPDIR/hf_crossenc_bench_scale), never in the checkout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
GROUP = 10  # candidates per query in the reranking files
KINDS = ("regression", "listwise")


def sentences(shared: Path) -> tuple[list[str], list[str]]:
    """(every distinct STS-B and TREC QA sentence, every distinct TREC QA question)."""
    texts: dict[str, None] = {}
    questions: dict[str, None] = {}
    for name in ("stsb/train.csv", "stsb/dev.csv", "stsb/test.csv"):
        with (shared / name).open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                texts.update(dict.fromkeys((row["sentence1"], row["sentence2"])))
    for name in ("trecqa/train.csv", "trecqa/dev.csv"):
        with (shared / name).open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                texts[row["answer"]] = None
                questions[row["question"]] = None
    return list(texts), list(questions)


def write_regression(path: Path, size: int, texts: list[str], seed: int = 0) -> None:
    rng = random.Random(seed)
    tmp = path.with_suffix(".part")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "similarity_score"])
        for _ in range(size):
            writer.writerow([rng.choice(texts), rng.choice(texts), f"{rng.randint(0, 50) / 10:.1f}"])
    tmp.rename(path)


def write_reranking(path: Path, size: int, texts: list[str], questions: list[str], seed: int = 0) -> None:
    """Queries (a TREC QA question and a sentence, so that they rarely repeat) with GROUP candidates each."""
    rng = random.Random(seed)
    tmp = path.with_suffix(".part")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer", "label"])
        written = 0
        while written < size:
            query = f"{rng.choice(questions)} {rng.choice(texts)}"
            positives = rng.randint(1, 2)
            for k in range(min(GROUP, size - written)):
                writer.writerow([query, rng.choice(texts), 1 if k < positives else 0])
                written += 1
    tmp.rename(path)


def data_file(work: Path, kind: str, size: int) -> Path:
    path = work / "data" / f"{kind}-{size}.csv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        texts, questions = sentences(SHARED)
        started = time.perf_counter()
        if kind == "regression":
            write_regression(path, size, texts)
        else:
            write_reranking(path, size, texts, questions)
        print(f"# wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def tiny_model(work: Path) -> str:
    out = work / "tiny-model"
    if not (out / "config.json").is_file():
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_model import build_tiny_model

        build_tiny_model(out)
    return str(out)


def job_argv(kind: str, train_file: Path, model: str, out: Path, steps: int, batch: int) -> list[str]:
    argv = [
        "--model_name_or_path", model,
        "--train_file", str(train_file),
        "--output_dir", str(out),
        "--overwrite_output_dir", "true",
        "--max_steps", str(steps + 1),
        "--per_device_train_batch_size", str(batch),
        "--max_length", "128",
        "--eval_strategy", "no",
        "--save_strategy", "no",
        "--logging_steps", "100000",
        "--report_to", "none",
        "--teacher_weight", "0",
        "--silver_pairs", "0",
        "--teacher_finetune_epochs", "0",
    ]  # fmt: skip
    if kind == "regression":
        return argv + ["--label_scale", "0,5"]
    return argv + ["--task", "reranking", "--loss", "listwise", "--train_group_size", "8"]


def child(args: argparse.Namespace) -> None:
    """One job in this process: the trainer gets a callback that times step 1 and the following steps, then exits."""
    from transformers import TrainerCallback

    import hf_crossenc.job as job

    started = float(os.environ["BENCH_SCALE_STARTED"])
    marks: dict[int, float] = {}
    last = args.steps + 1

    class Timer(TrainerCallback):
        def on_step_end(self, train_args, state, control, **kwargs):  # noqa: ANN001
            if state.global_step in (1, last):
                marks[state.global_step] = time.time()
            if state.global_step == last:
                rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                result = {
                    "first_step_s": marks[1] - started,
                    "peak_rss_mb": rss_mb,
                    "samples_per_s": args.steps * args.batch / (marks[last] - marks[1]),
                    "phases_s": {k: round(v, 2) for k, v in phases.items()},
                }
                Path(args.result).write_text(json.dumps(result))
                sys.stdout.flush()
                os._exit(0)  # no saving, no evaluation: the benchmark is done

    class TimedTrainer(job.CrossEncoderTrainer):
        def __init__(self, *a, **kw):  # noqa: ANN002, ANN003
            super().__init__(*a, **kw)
            self.add_callback(Timer())

    job.CrossEncoderTrainer = TimedTrainer
    phases: dict[str, float] = {"imports": time.time() - started}

    def timed(name: str, fn):  # noqa: ANN001, ANN202
        def wrapper(*a, **kw):  # noqa: ANN002, ANN003
            begin = time.time()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = time.time() - begin

        return wrapper

    job.load_task_data = timed("read_validate", job.load_task_data)
    job.build_train_dataset = timed("train_dataset_lengths", job.build_train_dataset)
    job.CrossEncoderTrainer.get_train_dataloader = timed("sampler_dataloader", job.CrossEncoderTrainer.get_train_dataloader)
    from hf_crossenc.commands.train import main

    code = main(job_argv(args.kind, Path(args.train_file), args.model, Path(args.out), args.steps, args.batch))
    sys.exit(code or 1)  # reaching here means the job ended before the last timed step


def run_one(args: argparse.Namespace, kind: str, size: int, model: str, cache: Path, label: str) -> dict:
    work = Path(args.work_dir)
    result = work / f"result-{kind}-{size}-{label}.json"
    result.unlink(missing_ok=True)
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "BENCH_SCALE_STARTED": repr(time.time())}
    batch = args.batch if kind == "regression" else max(1, args.batch // 4)
    command = [
        sys.executable, __file__, "--child",
        "--kind", kind,
        "--train_file", str(data_file(work, kind, size)),
        "--model", model,
        "--out", str(work / "out"),
        "--steps", str(args.steps),
        "--batch", str(batch),
        "--result", str(result),
    ]  # fmt: skip
    env["BENCH_SCALE_STARTED"] = repr(time.time())
    proc = subprocess.run(
        command,
        env=env,
        stdout=subprocess.DEVNULL if not args.verbose else None,
        stderr=None if args.verbose else subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0 or not result.is_file():
        tail = (proc.stderr or "")[-3000:]
        raise SystemExit(f"{kind} {size} {label}: the job failed (exit {proc.returncode})\n{tail}")
    return json.loads(result.read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e4,1e5,1e6", help="comma-separated pair counts (1e4,1e5,1e6,1e7)")
    parser.add_argument("--kinds", default="regression,listwise", help="comma-separated: regression, listwise (default: both)")
    parser.add_argument("--work_dir", default=str(Path(tempfile.gettempdir()) / "hf_crossenc_bench_scale"))
    parser.add_argument("--model", default=None, help="model to train (default: a tiny random BERT built in the work dir)")
    parser.add_argument("--steps", type=int, default=200, help="steps timed after the first one")
    parser.add_argument("--batch", type=int, default=32, help="pairs per batch (listwise: a quarter as many groups of 8)")
    parser.add_argument("--output", default=None, help="also write the table as JSON here")
    parser.add_argument("--verbose", action="store_true", help="show the jobs' logs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("kind", "train_file", "out", "result"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    unknown = sorted(set(args.kinds.split(",")) - set(KINDS))
    if unknown and not args.child:
        parser.error(f"--kinds: unknown {', '.join(unknown)} (choose from {', '.join(KINDS)}, comma-separated)")
    if args.child:
        child(args)
        return
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or tiny_model(work)
    rows = []
    print(f"{'kind':<11}{'pairs':>10}{'cold first step s':>19}{'warm first step s':>19}{'peak RSS MB':>13}{'samples/s':>11}", flush=True)
    for kind in args.kinds.split(","):
        for size in (int(float(s)) for s in args.sizes.split(",")):
            data_file(work, kind, size)
            cache = work / "cache" / f"{kind}-{size}"
            shutil.rmtree(cache, ignore_errors=True)
            cold = run_one(args, kind, size, model, cache, "cold")
            warm = run_one(args, kind, size, model, cache, "warm")
            row = {"kind": kind, "pairs": size, "cold": cold, "warm": warm}
            rows.append(row)
            print(f"#   phases (s) cold {cold['phases_s']}, warm {warm['phases_s']}", flush=True)
            print(
                f"{kind:<11}{size:>10}{cold['first_step_s']:>19.1f}{warm['first_step_s']:>19.1f}"
                f"{max(cold['peak_rss_mb'], warm['peak_rss_mb']):>13.0f}{warm['samples_per_s']:>11.1f}",
                flush=True,
            )
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
