"""`hf-crossenc search`: a grid search over training flags (`hf_crossenc.search`), selecting on the validation split only."""

from __future__ import annotations

import argparse
import difflib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..search import (
    KNOWN_METRICS,
    PlannedRun,
    check_grid_keys,
    check_reused_runs,
    check_run_metric,
    check_train_args,
    delete_models,
    execute_run,
    expand_grid,
    file_sha256,
    has_model,
    normalise_metric,
    parse_seeds,
    plan_runs,
    previous_runs,
    training_flags,
)
from ..search_report import aggregate, best_of, markdown_report, summary_text


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("search", help="grid search over training flags, selecting on the validation split only")
    parser.add_argument("--config", default=None, help="YAML training config shared by every run (as for `hf-crossenc train`)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FLAG=V1,V2",
        help="a training flag and its values, e.g. learning_rate=3e-5,5e-5 (repeatable: the runs are the cartesian product)",
    )
    parser.add_argument("--output_root", required=True, help="folder holding one sub-folder per run, search.md and search.json")
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        default=None,
        metavar="S1,S2",
        help="train every grid point with each seed and average (default: the config's seed)",
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="validation metric to select on, higher is better (default: the runs' metric_for_best_model, e.g. spearman)",
    )
    parser.add_argument("--keep_models", action="store_true", help="keep the weights and checkpoints of every run, not only the best")
    parser.add_argument("--dry_run", action="store_true", help="print the planned commands and exit without training")
    parser.add_argument("train_args", nargs="*", metavar="-- TRAINING_FLAGS", help="further training flags after `--`, passed to every run")
    parser.description = parser.description or (
        "Train every combination of --grid values (x --seeds) as a separate `hf-crossenc train` run, one at a time, and "
        "choose the best by the mean VALIDATION metric; test metrics are shown but never used for the choice."
    )
    parser.epilog = (
        "Runs whose folder already has results.json are reused, so re-running a search continues it. Unless --keep_models, "
        "the model weights and checkpoints of the runs that were not chosen are deleted. "
        "Exit codes: 0 success, 2 bad input (flags, grid, config), 1 if any run failed (see <run folder>.log)."
    )
    return parser


def _seed_list(text: str) -> str:
    """argparse ``type=`` of --seeds: the text, if `parse_seeds` accepts it (else exit 2 naming the flag)."""
    try:
        parse_seeds(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix(f"--seeds {text!r}: ")) from None
    return text


def _checked_request(args: argparse.Namespace) -> tuple[list[dict[str, str]], list[int], list[str], list[str], str | None]:
    """The grid points, seeds, grid keys, training flags after `--` and selection metric (None: the runs'), all
    checked before any run starts (`ConfigError`)."""
    flags = training_flags()
    points = check_grid_keys(expand_grid(list(args.grid or [])), flags)
    seeds = parse_seeds(args.seeds)
    keys = list(points[0]) if points else []
    if not keys and not seeds:
        raise ConfigError("nothing to search: give at least one --grid FLAG=V1,V2 (or --seeds S1,S2).")
    train_args = check_train_args(list(args.train_args or []), keys, seeds, flags)
    if args.config:
        from ..config import build_parser, load_config_file

        load_config_file(args.config, build_parser())
    metric = normalise_metric(args.metric) if args.metric else None
    if metric is not None and metric not in KNOWN_METRICS:
        close = difflib.get_close_matches(metric, KNOWN_METRICS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"--metric {args.metric!r} is not a validation metric.{hint} Choose from {list(KNOWN_METRICS)}.")
    return points, seeds, keys, train_args, metric


def _print_dry_run(runs: list[PlannedRun]) -> None:
    for run in runs:
        note = {
            "reuse": "  # reused: results.json exists",
            "resume": "  # resumes its newest complete checkpoint",
            "overwrite": "  # retrains into its partial folder",
        }.get(run.action, "")
        print(shlex.join(run.command) + note)
    print(f"# {len(runs)} run(s), {sum(r.action != 'reuse' for r in runs)} to train; dry run: nothing was started.")


def run(args: argparse.Namespace) -> int:
    """Validate everything, train the missing runs, print and write the summary; the exit code."""
    points, seeds, keys, train_args, metric = _checked_request(args)
    root = Path(args.output_root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--output_root {root} exists and is not a directory.")
    runs = plan_runs(points, seeds, root, args.config, train_args)
    config_sha = file_sha256(args.config)
    check_reused_runs(runs, previous_runs(root / "search.json"), config_sha)

    if args.dry_run:
        _print_dry_run(runs)
        return 0

    root.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    explicit = metric is not None
    for i, planned in enumerate(runs, 1):
        record = execute_run(planned, i, len(runs), config_sha, report=_to_stderr)
        if record["status"] != "failed":
            metric = check_run_metric(record, metric, explicit)
        records.append(record)

    failed = [r for r in records if r["status"] == "failed"]
    aggregated = aggregate(records, metric or "")  # no metric: every run failed, nothing to check
    best = best_of(aggregated) if metric else None
    deleted: list[str] = []
    if best is not None and not args.keep_models:
        keep = set(best["runs"])
        for planned, record in zip(runs, records):
            if planned.name not in keep and record["status"] != "failed":
                deleted += delete_models(planned.output_dir)
    if best is not None and not any(has_model(root / name) for name in best["runs"]):
        notes.append(
            f"the chosen runs' weights are gone (deleted by an earlier search without --keep_models): "
            f"delete {root / best['runs'][0]} and re-run this search to retrain it."
        )

    summary = summary_text(aggregated, best, metric, keys, records, notes, deleted, args.output_root)
    print(summary, end="")
    (root / "search.md").write_text(markdown_report(summary, aggregated, records, metric, keys, args.config), encoding="utf-8")
    report = {
        "metric": metric,
        "selection_split": "validation",
        "config": args.config,
        "config_sha256": config_sha,
        "grid": {key: list(dict.fromkeys(p[key] for p in points)) for key in keys},
        "seeds": seeds,
        "train_args": train_args,
        "runs": records,
        "aggregated": aggregated,
        "best": None if best is None else {**best, "output_dirs": [str(root / name) for name in best["runs"]]},
        "deleted": deleted,
        "notes": notes,
    }
    (root / "search.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {root / 'search.md'} and {root / 'search.json'}", file=sys.stderr)
    return 1 if failed or best is None else 0


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)
