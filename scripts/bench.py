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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_profile import cpu_description, describe  # noqa: E402


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


def peer_bf16(args: argparse.Namespace) -> bool:
    """The peer at its best user-settable setting: bf16 where the CPU computes it natively, unless --peer_fp32."""
    from hf_crossenc.training_args import bf16_is_fast

    return not args.peer_fp32 and bf16_is_fast(use_cpu=True)


def run_peer(args: argparse.Namespace, work: Path) -> dict:
    import torch
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
    bf16 = peer_bf16(args)  # what its docs tell a user who wants speed: bf16=True (use_cpu=True on a CPU-only machine)
    targs = CrossEncoderTrainingArguments(
        output_dir=str(work / "peer"), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_steps=0.1, seed=args.seed, save_strategy="no", eval_strategy="no",
        report_to="none", logging_steps=100, disable_tqdm=True, bf16=bf16, use_cpu=bf16,
    )  # fmt: skip
    trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=train, loss=BinaryCrossEntropyLoss(model))
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    if bf16:  # bf16 weights for scoring: the fastest inference a user of the peer gets on this CPU
        model.to(torch.bfloat16)
    predict_s, predict_times, scores = timed(
        lambda: model.predict(test_pairs, batch_size=args.predict_batch_size, show_progress_bar=False), args.predict_repeats
    )
    return {"train_s": train_s, "train_examples": len(pairs) * args.epochs, "predict_s": predict_s,
            "predict_times_s": predict_times, "predict_pairs": len(test_pairs), "bf16": bf16,
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
    exact = CrossEncoderPredictor.from_pretrained(out, precision="fp32")
    predict_fp32_s, predict_fp32_times, exact_scores = timed(
        lambda: exact.predict(test_pairs, batch_size=args.predict_batch_size), args.predict_repeats
    )
    fast = CrossEncoderPredictor.from_pretrained(out, precision=args.ours_precision)
    predict_s, predict_times, scores = timed(lambda: fast.predict(test_pairs, batch_size=args.predict_batch_size), args.predict_repeats)
    train_pairs, train_labels = load_stsb(args.data_dir / "train.csv", args.max_train_samples)
    train_lengths = token_lengths(exact.tokenizer, train_pairs, args.max_length)
    test_lengths = sorted(token_lengths(exact.tokenizer, test_pairs, args.max_length))
    result = {"train_s": run["train_runtime_s"], "train_examples": run["train_examples_per_epoch"] * args.epochs,
              "predict_s": predict_s, "predict_times_s": predict_times, "predict_pairs": len(test_pairs),
              "precision": fast.precision, "test_spearman": spearman(scores, test_labels),
              "predict_fp32_s": predict_fp32_s, "predict_fp32_times_s": predict_fp32_times,
              "test_spearman_fp32": spearman(exact_scores, test_labels),
              "real_tokens": sum(train_lengths) * args.epochs, "test_tokens": sum(test_lengths),
              "test_scores": [float(x) for x in scores]}  # fmt: skip
    return result


def token_lengths(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[int]:
    enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=max_length)
    return [len(ids) for ids in enc["input_ids"]]


def run_profile(args: argparse.Namespace, work: Path) -> dict:
    """The real-shape ceilings of scoring (the test pairs in length-sorted batches, as predict runs them) and of training
    (forward + backward products over the epoch's batches), and op profiles of both passes, on the bundled MiniLM (its
    speed does not depend on its weights), in a process of its own so that the other sides' peak RSS is their own."""
    from bench_profile import linear_ceiling, linear_shapes, profile_inference, profile_training

    from hf_crossenc import CrossEncoderPredictor
    from hf_crossenc.modeling import bundled_model_path

    predictor = CrossEncoderPredictor.from_pretrained(bundled_model_path(), precision=args.ours_precision)
    test_pairs, _ = load_stsb(args.data_dir / "test.csv", args.max_eval_samples)
    train_pairs, train_labels = load_stsb(args.data_dir / "train.csv", args.max_train_samples)
    test_lengths = sorted(token_lengths(predictor.tokenizer, test_pairs, args.max_length))
    train_lengths = token_lengths(predictor.tokenizer, train_pairs, args.max_length)
    shapes = linear_shapes(predictor.model)
    size, batch = args.predict_batch_size, args.batch_size
    predict_batches = [sum(test_lengths[i : i + size]) for i in range(0, len(test_lengths), size)]
    train_batches = [sum(train_lengths[i : i + batch]) for i in range(0, len(train_lengths), batch)] * max(1, round(args.epochs))
    return {
        "linear_shapes": {f"{k[0]}x{k[1]}": v for k, v in shapes.items()},
        "inference_ceiling": linear_ceiling(shapes, predict_batches, passes=1),
        "training_ceiling": linear_ceiling(shapes, train_batches, passes=3),
        "inference": profile_inference(predictor, test_pairs, size),
        "training": profile_training(bundled_model_path(), train_pairs, train_labels, batch, args.learning_rate, work),
    }


def side_main(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="hf_crossenc_bench_") as tmp:
        started = time.perf_counter()
        result = {"peer": run_peer, "ours": run_ours, "profile": run_profile}[args.side](args, Path(tmp))
        result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("@@BENCH@@" + json.dumps(result), flush=True)


def launch_side(side: str, argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--side", side, *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{side} side failed:\n{proc.stderr[-4000:]}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("@@BENCH@@"))
    result = json.loads(line[len("@@BENCH@@") :])
    if side == "profile":
        return result
    result["samples_per_s"] = result["train_examples"] / result["train_s"]
    result["pairs_per_s"] = result["predict_pairs"] / result["predict_s"]
    if "predict_fp32_s" in result:
        result["pairs_per_s_fp32"] = result["predict_pairs"] / result["predict_fp32_s"]
    return result


SPEEDS = ("samples_per_s", "pairs_per_s", "pairs_per_s_fp32", "wall_s")


def combine(rounds: list[dict]) -> dict:
    """One side's result over alternating rounds: the medians of the speeds and wall time, the largest peak RSS;
    everything else (test scores, token and FLOP counts) from the first round; every round's numbers under ``rounds``."""
    import statistics

    result = dict(rounds[0])
    for key in SPEEDS:
        if key in result:
            result[key] = statistics.median(r[key] for r in rounds)
    result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rounds)
    keep = (*SPEEDS, "peak_rss_mb", "test_spearman", "test_spearman_fp32")
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
    peer, ours = results.get("sentence-transformers"), results["hf_crossenc"]
    print(f"CPU: {describe(results['cpu'])}")
    if peer:
        print(f"peer: sentence-transformers CrossEncoderTrainer {'bf16=True, use_cpu=True; bf16 weights for predict' if peer['bf16'] else 'fp32 (--peer_fp32 or no native bf16)'}; "
              f"hf_crossenc: its defaults, predict precision={ours['precision']}")  # fmt: skip
    rows = [("training samples/s", "samples_per_s", "samples_per_s", True),
            ("inference pairs/s", "pairs_per_s", "pairs_per_s", True),
            ("inference pairs/s, ours fp32", "pairs_per_s", "pairs_per_s_fp32", True),
            ("wall time (s)", "wall_s", "wall_s", False), ("peak RSS (MB)", "peak_rss_mb", "peak_rss_mb", False),
            ("test Spearman", "test_spearman", "test_spearman", None),
            ("test Spearman, ours fp32 scoring", "test_spearman", "test_spearman_fp32", None)]  # fmt: skip
    if peer:
        results["test_spearman_difference"] = quality_difference(peer, ours)
    for side in (peer, ours):  # the per-pair scores served the comparison; the report keeps the summaries
        for key in ("test_scores", "test_labels"):
            (side or {}).pop(key, None)
    print(f"{'metric':<34} {'sentence-transformers':>22} {'hf_crossenc':>12} {'ratio':>8}")
    for label, peer_key, key, higher_better in rows:
        p = peer[peer_key] if peer else float("nan")
        o = ours[key]
        ratio = "" if higher_better is None or not peer else f"{(o / p if higher_better else p / o):.2f}x"
        print(f"{label:<34} {p:>22.4f} {o:>12.4f} {ratio:>8}")
    if peer and len(ours.get("rounds", [])) > 1:
        for label, key in (("training", "samples_per_s"), ("inference", "pairs_per_s")):
            per_round = [o[key] / p[key] for p, o in zip(peer["rounds"], ours["rounds"])]
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
    if "profile" in ours:
        print_profile(ours, peer)
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


def print_profile(ours: dict, peer: dict | None) -> None:
    """The real-shape ceilings (a pass bound by its linear layers' matrix products alone, at their measured bf16
    GFLOP/s) against the measured speeds, and where the time of each pass goes."""
    prof = ours["profile"]
    for name, ceiling_key, count, speed_key, unit in (  # speeds: the medians over rounds
        ("inference", "inference_ceiling", ours["predict_pairs"], "pairs_per_s", "pairs/s"),
        ("training", "training_ceiling", ours["train_examples"], "samples_per_s", "samples/s"),
    ):
        ceiling = prof[ceiling_key]
        limit = count / ceiling["seconds"]
        ours[f"{name}_ceiling_per_s"] = limit
        achieved = ceiling["gflops"] * ours[speed_key] / count
        line = (f"{name} ceiling (linear layers alone at their measured bf16 rate, {ceiling['gflop_per_s']:.0f} GFLOP/s): "
                f"{limit:.0f} {unit}; ours {ours[speed_key]:.0f} = {ours[speed_key] / limit:.1%} of it "
                f"({achieved:.0f} GFLOP/s in the linear layers)")  # fmt: skip
        if peer:
            line += f"; the peer {peer[speed_key] / limit:.1%}"
        print(line)
        split = prof[name]
        print(f"  {name} profile ({split['wall_s']:.2f} s profiled): matrix products {split['matmul_share']:.1%}, "
              f"other ops {split['other_ops_share']:.1%}, outside ops {split['outside_ops_share']:.1%}; top: "
              + ", ".join(f"{k} {v:.1%}" for k, v in split["top_ops"][:5]))  # fmt: skip


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
    parser.add_argument(
        "--peer_fp32", action="store_true", help="train and score the peer in fp32 (default: bf16 where the CPU computes it natively)"
    )
    parser.add_argument("--ours_precision", choices=["fp32", "bf16", "auto"], default="auto", help="our predict precision (default: auto)")
    parser.add_argument("--skip_profile", action="store_true", help="no ceilings or op profiles (faster)")
    parser.add_argument("--ours_flags", default="", help="extra scripts/train.py flags for our side, e.g. '--freeze_embeddings true'")
    parser.add_argument("--output", type=Path, default=Path("bench_results.json"))
    parser.add_argument("--plot", type=Path, default=None, help="the bar plot (default: beside --output, as .png)")
    parser.add_argument("--side", choices=["peer", "ours", "profile"], default=None, help=argparse.SUPPRESS)
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
    results["cpu"] = cpu_description()
    if not args.skip_profile:
        results["hf_crossenc"]["profile"] = launch_side("profile", argv)
    report(results, args.output, args.plot or args.output.with_suffix(".png"))


if __name__ == "__main__":
    main()
