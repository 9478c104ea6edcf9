"""Side-by-side benchmark: hf_crossenc vs sentence-transformers' CrossEncoderTrainer on the same job.

Both sides fine-tune the bundled MiniLM-L6-H384 on STS-B train with the same plain recipe (BCE on
labels/5, batch size, learning rate, warmup, no weight decay, epochs, seed, threads), then score the STS-B test
pairs. Each side runs in its own subprocess, so peak RSS is its own. Prints samples/s, pairs/s,
wall time, peak RSS and test Spearman for each, and the ratios; writes JSON and a plot.

    pip install -c constraints.txt -e ".[bench]"
    HF_HUB_OFFLINE=1 python scripts/bench.py                    # full: all of STS-B train, 1 epoch
    HF_HUB_OFFLINE=1 python scripts/bench.py --rounds 3         # peer, ours, peer, ours, ...: medians
    HF_HUB_OFFLINE=1 python scripts/bench.py --quick            # smoke: 256 pairs

On a shared machine one side's speed moves by ±10% from one run to the next; `--rounds N` alternates the
sides N times and reports each side's median (peak RSS: the largest), with every round's numbers and ratios.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def load_stsb(path: Path, limit: int | None) -> tuple[list[tuple[str, str]], list[float]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:limit]
    return [(r["sentence1"], r["sentence2"]) for r in rows], [float(r["similarity_score"]) / 5.0 for r in rows]


def spearman(scores, labels) -> float:
    from scipy import stats

    return float(stats.spearmanr(scores, labels)[0])


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    """Median wall time of `repeats` calls of fn (the first call pays one-off kernel set-up for each
    batch shape; the median is the steady speed a scoring service sees), all times, and the last result."""
    import statistics

    times, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def run_peer(args: argparse.Namespace, work: Path) -> dict:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import set_seed

    from hf_crossenc.modeling import bundled_model_path

    pairs, labels = load_stsb(args.data_dir / "train.csv", args.max_train_samples)
    test_pairs, test_labels = load_stsb(args.data_dir / "test.csv", args.max_eval_samples)
    # The peer's classifier head is initialised when the model is built, before its Trainer seeds anything:
    # unseeded, its 1-epoch test Spearman moved over 0.754-0.766 between runs of the same command. Seeded here,
    # as hf_crossenc seeds its own head, both sides are reproducible.
    set_seed(args.seed)
    model = CrossEncoder(str(bundled_model_path()), num_labels=1, max_length=args.max_length)
    train = Dataset.from_dict({"sentence1": [a for a, _ in pairs], "sentence2": [b for _, b in pairs], "label": labels})
    targs = CrossEncoderTrainingArguments(
        output_dir=str(work / "peer"), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_steps=0.1, seed=args.seed, save_strategy="no", eval_strategy="no",
        report_to="none", logging_steps=100, disable_tqdm=True,
    )  # fmt: skip
    trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=train, loss=BinaryCrossEntropyLoss(model))
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    predict_s, predict_times, scores = timed(
        lambda: model.predict(test_pairs, batch_size=args.predict_batch_size, show_progress_bar=False), args.predict_repeats
    )
    return {"train_s": train_s, "train_examples": len(pairs) * args.epochs, "predict_s": predict_s,
            "predict_times_s": predict_times, "predict_pairs": len(test_pairs),
            "test_spearman": spearman(scores, test_labels), "test_scores": [float(x) for x in scores],
            "test_labels": test_labels}  # fmt: skip


def run_ours(args: argparse.Namespace, work: Path) -> dict:
    from hf_crossenc import CrossEncoderPredictor, parse_job_arguments, train

    out = work / "ours"
    flags = [
        "--train_file", str(args.data_dir / "train.csv"), "--label_scale", "0,5", "--output_dir", str(out),
        "--num_train_epochs", str(args.epochs), "--per_device_train_batch_size", str(args.batch_size),
        "--learning_rate", str(args.learning_rate), "--seed", str(args.seed), "--max_length", str(args.max_length),
        "--teacher_weight", "0", "--train_pair_order", "none", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "false", "--logging_steps", "100", "--disable_tqdm", "true",
        "--weight_decay", "0.0",  # the peer's TrainingArguments default (ours is 0.01)
    ]  # fmt: skip
    if args.max_train_samples:
        flags += ["--max_train_samples", str(args.max_train_samples)]
    flags += args.ours_flags.split()
    model_args, data_args, teacher_args, training_args = parse_job_arguments(flags)
    run = train(model_args, data_args, training_args, teacher_args).run
    test_pairs, test_labels = load_stsb(args.data_dir / "test.csv", args.max_eval_samples)
    predictor = CrossEncoderPredictor.from_pretrained(out)
    predict_s, predict_times, scores = timed(
        lambda: predictor.predict(test_pairs, batch_size=args.predict_batch_size), args.predict_repeats
    )
    fast = CrossEncoderPredictor.from_pretrained(out, precision="bf16")
    predict_bf16_s, predict_bf16_times, fast_scores = timed(
        lambda: fast.predict(test_pairs, batch_size=args.predict_batch_size), args.predict_repeats
    )
    train_pairs, _ = load_stsb(args.data_dir / "train.csv", args.max_train_samples)
    enc = predictor.tokenizer([a for a, _ in train_pairs], [b for _, b in train_pairs], truncation=True, max_length=args.max_length)
    real_tokens = sum(len(ids) for ids in enc["input_ids"]) * args.epochs
    test_enc = predictor.tokenizer([a for a, _ in test_pairs], [b for _, b in test_pairs], truncation=True, max_length=args.max_length)
    test_tokens = sum(len(ids) for ids in test_enc["input_ids"])
    params = sum(p.numel() for n, p in predictor.model.named_parameters() if "embeddings" not in n)
    return {"train_s": run["train_runtime_s"], "train_examples": run["train_examples_per_epoch"] * args.epochs,
            "predict_s": predict_s, "predict_times_s": predict_times, "predict_pairs": len(test_pairs),
            "test_spearman": spearman(scores, test_labels), "predict_bf16_s": predict_bf16_s,
            "predict_bf16_times_s": predict_bf16_times, "test_spearman_bf16": spearman(fast_scores, test_labels),
            "train_gflops": 6 * params * real_tokens / 1e9, "real_tokens": real_tokens, "non_embedding_params": params,
            "predict_gflops": 2 * params * test_tokens / 1e9, "test_scores": [float(x) for x in scores]}  # fmt: skip


def matmul_peak(threads: int, dtype_name: str, size: int = 2048, repeats: int = 8) -> float:
    """Measured GFLOP/s of a square matmul (the machine's practical peak for this dtype and thread count)."""
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def side_main(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="hf_crossenc_bench_") as tmp:
        started = time.perf_counter()
        result = (run_peer if args.side == "peer" else run_ours)(args, Path(tmp))
        result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("@@BENCH@@" + json.dumps(result), flush=True)


def launch_side(side: str, argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--side", side, *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{side} side failed:\n{proc.stderr[-4000:]}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("@@BENCH@@"))
    result = json.loads(line[len("@@BENCH@@") :])
    result["samples_per_s"] = result["train_examples"] / result["train_s"]
    result["pairs_per_s"] = result["predict_pairs"] / result["predict_s"]
    if "predict_bf16_s" in result:
        result["pairs_per_s_bf16"] = result["predict_pairs"] / result["predict_bf16_s"]
        result["train_gflop_per_s"] = result["train_gflops"] / result["train_s"]
    return result


SPEEDS = ("samples_per_s", "pairs_per_s", "pairs_per_s_bf16", "train_gflop_per_s", "wall_s")


def combine(rounds: list[dict]) -> dict:
    """One side's result over alternating rounds: the medians of the speeds and wall time, the largest peak RSS;
    everything else (test scores, token and FLOP counts) from the first round; every round's numbers under ``rounds``."""
    import statistics

    result = dict(rounds[0])
    for key in SPEEDS:
        if key in result:
            result[key] = statistics.median(r[key] for r in rounds)
    result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rounds)
    keep = (*SPEEDS, "peak_rss_mb", "test_spearman", "test_spearman_bf16")
    result["rounds"] = [{k: r[k] for k in keep if k in r} for r in rounds]
    return result


def quality_difference(peer: dict, ours: dict, resamples: int = 1000) -> dict:
    """Ours minus the peer in test Spearman, paired: both models' scores of the same test pairs (the first round's
    models), with the 95% percentile-bootstrap interval of the difference over resampled pairs."""
    import numpy as np

    from hf_crossenc.evaluation import bootstrap_difference

    got = bootstrap_difference(
        "regression", np.asarray(ours["test_scores"]), np.asarray(peer["test_scores"]), np.asarray(peer["test_labels"]), resamples=resamples
    )
    return {
        "spearman": got["difference"]["spearman"],
        "interval": got["bounds"]["spearman"],
        "share_above_zero": got["share_above_zero"]["spearman"],
        "resamples": resamples,
    }


def report(results: dict[str, dict], output: Path, plot: Path | None) -> None:
    rows = [("training samples/s", "samples_per_s", "samples_per_s", True),
            ("inference pairs/s", "pairs_per_s", "pairs_per_s", True),
            ("inference pairs/s, ours bf16", "pairs_per_s", "pairs_per_s_bf16", True),
            ("wall time (s)", "wall_s", "wall_s", False), ("peak RSS (MB)", "peak_rss_mb", "peak_rss_mb", False),
            ("test Spearman", "test_spearman", "test_spearman", None),
            ("test Spearman, ours bf16", "test_spearman", "test_spearman_bf16", None)]  # fmt: skip
    peer, ours = results.get("sentence-transformers"), results["hf_crossenc"]
    if peer:
        results["test_spearman_difference"] = quality_difference(peer, ours)
    for side in (peer, ours):  # the per-pair scores served the comparison; the report keeps the summaries
        for key in ("test_scores", "test_labels"):
            (side or {}).pop(key, None)
    print(f"{'metric':<30} {'sentence-transformers':>22} {'hf_crossenc':>12} {'ratio':>8}")
    for label, peer_key, key, higher_better in rows:
        p = peer[peer_key] if peer else float("nan")
        o = ours[key]
        ratio = "" if higher_better is None or not peer else f"{(o / p if higher_better else p / o):.2f}x"
        print(f"{label:<30} {p:>22.4f} {o:>12.4f} {ratio:>8}")
    if peer and len(ours.get("rounds", [])) > 1:
        for label, peer_key, key in (("training", "samples_per_s", "samples_per_s"), ("bf16 inference", "pairs_per_s", "pairs_per_s_bf16")):
            per_round = [o[key] / p[peer_key] for p, o in zip(peer["rounds"], ours["rounds"])]
            print(
                f"{label} ratio by round: "
                + ", ".join(f"{r:.2f}x" for r in per_round)
                + f" (rows above: medians of {len(per_round)} rounds)"
            )
    if peer:
        diff = results["test_spearman_difference"]
        low, high = diff["interval"]
        print(
            f"test Spearman, ours minus the peer, paired over the same test pairs: {diff['spearman']:+.4f} "
            f"(95% bootstrap interval {low:+.4f} to {high:+.4f}; ours higher in {diff['share_above_zero']:.1%} of "
            f"{diff['resamples']} resamples)"
        )
    peaks = results.get("matmul_peak_gflops", {})
    if peaks:
        share = ours["train_gflop_per_s"] / peaks["bfloat16"]
        print(
            f"compute: {ours['train_gflop_per_s']:.1f} GFLOP/s achieved in training (6 x {ours['non_embedding_params'] / 1e6:.1f}M "
            f"non-embedding params x {ours['real_tokens']} real tokens / train time) = {share:.1%} of the measured bf16 matmul peak "
            f"({peaks['bfloat16']:.0f} GFLOP/s; fp32 {peaks['float32']:.0f})"
        )
        # Ceilings: the speed if every FLOP ran at the measured bf16 matmul peak (attention, norms, optimizer free).
        train_ceiling = ours["train_examples"] / (ours["train_gflops"] / peaks["bfloat16"])
        predict_ceiling = ours["predict_pairs"] / (ours["predict_gflops"] / peaks["bfloat16"])
        ours["train_ceiling_samples_per_s"], ours["predict_ceiling_pairs_per_s"] = train_ceiling, predict_ceiling
        line = f"ceilings at the bf16 matmul peak: training {train_ceiling:.0f} samples/s, inference {predict_ceiling:.0f} pairs/s"
        if peer:
            line += f" (= {train_ceiling / peer['samples_per_s']:.2f}x / {predict_ceiling / peer['pairs_per_s']:.2f}x the peer)"
        print(line)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {output}")
    if plot is not None and peer:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(7, 3), dpi=110)
        for ax, key, title in ((axes[0], "samples_per_s", "training samples/s"), (axes[1], "pairs_per_s", "inference pairs/s")):
            ax.bar(["sentence-transformers", "hf_crossenc"], [peer[key], ours[key]], color=["tab:grey", "tab:blue"])
            ax.set_title(title)
        fig.tight_layout()
        fig.savefig(plot)
        print(f"written {plot}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=Path("../shared/data/stsb"))
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=2e-5)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--predict_batch_size", type=int, default=64)
    parser.add_argument(
        "--predict_repeats", type=int, default=3, help="score the test pairs this many times on each side; pairs/s uses the median"
    )
    parser.add_argument("--rounds", type=int, default=1, help="run the sides alternately this many times; report medians (default: 1)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--max_eval_samples", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 256 training pairs, 256 test pairs")
    parser.add_argument("--skip_peer", action="store_true", help="only run hf_crossenc")
    parser.add_argument("--ours_flags", default="", help="extra scripts/train.py flags for our side, e.g. '--freeze_embeddings true'")
    parser.add_argument("--output", type=Path, default=Path("bench_results.json"))
    parser.add_argument("--plot", type=Path, default=None, help="the bar plot (default: beside --output, as .png)")
    parser.add_argument("--side", choices=["peer", "ours"], default=None, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = build_parser()
    args, _ = parser.parse_known_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.quick:
        args.max_train_samples = args.max_train_samples or 256
        args.max_eval_samples = args.max_eval_samples or 256
    if args.side:
        side_main(args)
        return
    argv = [a for a in sys.argv[1:] if a not in ("--skip_peer",)]
    if args.quick:
        argv += ["--max_train_samples", str(args.max_train_samples), "--max_eval_samples", str(args.max_eval_samples)]
    rounds: dict[str, list[dict]] = {"sentence-transformers": [], "hf_crossenc": []}
    for _ in range(args.rounds):  # alternate the sides, so a slow spell of the machine hits both
        if not args.skip_peer:
            rounds["sentence-transformers"].append(launch_side("peer", argv))
        rounds["hf_crossenc"].append(launch_side("ours", argv))
    results = {side: combine(runs) for side, runs in rounds.items() if runs}
    results["matmul_peak_gflops"] = {name: matmul_peak(args.threads, name) for name in ("float32", "bfloat16")}
    report(results, args.output, args.plot or args.output.with_suffix(".png"))


if __name__ == "__main__":
    main()
