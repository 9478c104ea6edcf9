"""The report of a grid search: runs aggregated by grid point (mean over seeds, on the validation split), the best point,
and the tables and notes `hf-crossenc search` prints and writes to search.md."""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

NOT_METRICS = frozenset({"n", "threshold", "queries", "skipped_queries"})
"""Entries of a results.json split that are counts or settings, not metrics."""
TEST_LABEL = "test (not used for selection)"
MAX_VALUE_CHARS = 40
ABBREVIATIONS = {
    "learning_rate": "lr",
    "teacher_weight": "tw",
    "teacher_temperature": "tt",
    "teacher": "teacher",
    "silver_pairs": "sp",
    "num_train_epochs": "ep",
    "per_device_train_batch_size": "bs",
    "gradient_accumulation_steps": "ga",
    "weight_decay": "wd",
    "warmup_steps": "wu",
    "lr_scheduler_type": "sched",
    "max_length": "len",
    "dropout": "do",
    "train_group_size": "gs",
    "train_pair_order": "order",
    "max_train_samples": "n",
    "loss": "loss",
    "seed": "s",
}
"""Short run-name prefixes of common flags; any other flag appears under its own name."""


def _safe(value: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._+-]+", "-", value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 9] + "-" + hashlib.sha1(value.encode()).hexdigest()[:8]
    return text


def run_name(values: dict[str, Any]) -> str:
    """A filesystem-safe folder name encoding a run's values in order, e.g. `lr3e-5_tw0.3_s42`.

    Common flags get short prefixes (`ABBREVIATIONS`), others their own name; characters other than
    letters, digits and `._+-` become `-`, and very long values are shortened with a hash.
    """
    if not values:
        raise ConfigError("a run needs at least one grid value or seed to be named.")
    return "_".join(f"{ABBREVIATIONS.get(key, key)}{_safe(str(value))}" for key, value in values.items())


def metric_values(split: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (split or {}).items() if k not in NOT_METRICS and isinstance(v, (int, float))}


def _mean_std(values: list[float]) -> dict[str, float | None]:
    finite = all(math.isfinite(v) for v in values)
    mean = statistics.fmean(values) if finite else math.nan
    std = statistics.stdev(values) if finite and len(values) > 1 else None
    return {"mean": mean, "std": std}


def _interval(runs: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The validation `metric`'s bootstrap interval (results.json's ``intervals``), averaged over the runs' bounds;
    None unless every run has one."""
    found = [((r.get("validation") or {}).get("intervals") or {}) for r in runs]
    bounds = [f.get("bounds", {}).get(metric) for f in found]
    if not runs or any(b is None or len(b) != 2 or not all(math.isfinite(x) for x in b) for b in bounds):
        return None
    return {
        "low": statistics.fmean(b[0] for b in bounds),
        "high": statistics.fmean(b[1] for b in bounds),
        "level": found[0].get("level"),
        "resampled": found[0].get("resampled"),
    }


def aggregate(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """One row per grid point (runs grouped by `row["point"]`), best first by mean validation `metric`.

    `rows` are run records: `point` (grid values), `seed`, `name`, `status` ("failed" or not),
    `validation` and `test` (the splits of results.json), `runtime_s`. Each aggregated row has the
    mean and sample std over its successful seeds of every validation and test metric, `n` (runs
    averaged), `failed` (runs that failed) and `score` (the mean validation `metric`: the sort key;
    NaN or missing sorts last). Test metrics are carried for display only and never affect the order.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(json.dumps(row["point"], sort_keys=True), []).append(row)
    out = []
    for members in groups.values():
        ok = [r for r in members if r.get("status") != "failed"]
        for r in ok:
            if metric not in metric_values(r.get("validation")):
                available = sorted(metric_values(r.get("validation")))
                raise ConfigError(
                    f"run {r.get('name')}: no validation {metric!r} in its results (available: {available or 'none'}). "
                    "The search selects on the validation split: give a validation file, or choose --metric from those."
                )
        validation = (
            {m: _mean_std([metric_values(r["validation"])[m] for r in ok]) for m in metric_values(ok[0]["validation"])} if ok else {}
        )
        tests = [metric_values(r.get("test")) for r in ok]
        test_names = [m for m in (tests[0] if tests else {}) if all(m in t for t in tests)]
        runtimes = [float(r["runtime_s"]) for r in ok if r.get("runtime_s") is not None]
        score = validation[metric]["mean"] if ok else math.nan
        out.append(
            {
                "point": dict(members[0]["point"]),
                "runs": [r.get("name") for r in members],
                "seeds": [r.get("seed") for r in members if r.get("seed") is not None],
                "n": len(ok),
                "failed": len(members) - len(ok),
                "score": score,
                "std": validation[metric]["std"] if ok else None,
                "interval": _interval(ok, metric),
                "validation": validation,
                "test": {m: _mean_std([t[m] for t in tests]) for m in test_names},
                "runtime_s": statistics.fmean(runtimes) if runtimes else None,
            }
        )
    # best first; then points with a NaN score (e.g. a collapsed model), then points with no finished run
    out.sort(key=lambda row: (not math.isfinite(row["score"]), row["n"] == 0, -row["score"] if math.isfinite(row["score"]) else 0.0))
    for rank, row in enumerate(out, 1):
        row["rank"] = rank
    return out


def best_of(aggregated: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chosen grid point: the highest mean validation score among points whose runs all succeeded
    (else among any point with a score); None if no run has a finite score."""
    scored = [row for row in aggregated if math.isfinite(row["score"])]
    complete = [row for row in scored if row["failed"] == 0]
    return (complete or scored or [None])[0]


def _fmt(stat: dict[str, float | None] | None) -> str:
    if stat is None:
        return "–"
    mean, std = stat["mean"], stat["std"]
    text = "nan" if mean is None or not math.isfinite(mean) else f"{mean:.4f}"
    return text if std is None else f"{text} ± {std:.4f}"


def markdown_table(aggregated: list[dict[str, Any]], metric: str, keys: Sequence[str], best: dict[str, Any] | None = None) -> str:
    """A Markdown table of the aggregated rows: grid values, seeds, validation metrics (the selection
    `metric` first, mean ± std over seeds) and, in columns labelled "test (not used for selection)",
    the test metrics; the chosen row is marked **best**."""
    val_names = [metric] + sorted({m for row in aggregated for m in row["validation"]} - {metric})
    test_names = sorted({m for row in aggregated for m in row["test"]}, key=lambda m: (m != metric, m))
    header = ["rank", "run", *keys, "seeds"]
    header += [f"validation {m}" + (" (selection)" if m == metric else "") for m in val_names]
    header += [f"{TEST_LABEL}: {m}" for m in test_names]
    header.append("train time")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in aggregated:
        name = run_name(row["point"]) if row["point"] else ", ".join(row["runs"])
        seeds = ", ".join(str(s) for s in row["seeds"]) or "–"
        if row["failed"]:
            seeds += f" ({row['failed']} of {row['failed'] + row['n']} failed)"
        cells = [str(row["rank"]) + (" **best**" if row is best else ""), name, *(row["point"].get(k, "–") for k in keys), seeds]
        cells += [_fmt(row["validation"].get(m)) for m in val_names]
        cells += [_fmt(row["test"].get(m)) for m in test_names]
        cells.append("–" if row["runtime_s"] is None else f"{row['runtime_s']:.1f} s")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_text(
    aggregated: list[dict[str, Any]],
    best: dict[str, Any] | None,
    metric: str | None,
    keys: list[str],
    records: list[dict[str, Any]],
    notes: list[str],
    deleted: list[str],
    output_root: str | Path,
) -> str:
    """What the command prints: the table, the choice, failures and notes (also the top of search.md)."""
    blocks = []
    if metric:
        blocks.append(f"Selected on validation {metric} (mean over seeds, higher is better); test metrics are shown for reference only.")
        blocks.append(markdown_table(aggregated, metric, keys, best))
    if best is not None:
        spread = f" ± {best['std']:.4f}" if best["std"] is not None else ""
        dirs = ", ".join(str(Path(output_root) / name) for name in best["runs"])
        values = ", ".join(f"{k}={v}" for k, v in best["point"].items()) or "(seeds only)"
        blocks.append(f"Best: {values} — validation {metric} {best['score']:.4f}{spread} over {best['n']} run(s): {dirs}")
        if best.get("interval"):
            blocks.append(noise_note(aggregated, best, metric, output_root))
    else:
        blocks.append("No run finished with a usable validation score: nothing was chosen.")
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        listing = "".join(f"\n- {r['name']}: exit code {r['exit_code']} (log: {r['log']})" for r in failed)
        blocks.append(f"{len(failed)} of {len(records)} run(s) failed:{listing}")
    if deleted:
        blocks.append(
            f"Deleted the weights and checkpoints of the runs not chosen ({len(deleted)} paths); results.json, README.md and logs are kept."
        )
    blocks += [f"Note: {note}" for note in notes]
    return "\n\n".join(block.rstrip("\n") for block in blocks) + "\n"


def noise_note(aggregated: list[dict[str, Any]], best: dict[str, Any], metric: str, output_root: str | Path) -> str:
    """How far the validation split can tell the best point from the others: its metric's bootstrap interval, and
    the points whose mean score lies inside it."""
    ci = best["interval"]
    level = f"{100 * ci['level']:g}%" if isinstance(ci.get("level"), (int, float)) else "the"
    close = [row for row in aggregated if row is not best and math.isfinite(row["score"]) and ci["low"] <= row["score"] <= ci["high"]]
    seeds = f"; the bounds of its {best['n']} runs averaged" if best["n"] > 1 else ""
    text = (
        f"The best point's validation {metric} has a {level} bootstrap interval of {ci['low']:.4f} – {ci['high']:.4f} "
        f"(resampling the validation split's {ci.get('resampled') or 'pairs'}, the model fixed{seeds}). "
    )
    if not close:
        return text + "No other point scores inside it."
    names = ", ".join(run_name(row["point"]) if row["point"] else ", ".join(row["runs"]) for row in close)
    return text + (
        f"{len(close)} other point(s) score inside it ({names}): their scores alone do not show them worse than the best. "
        f"A paired comparison may still separate them: `hf-crossenc evaluate {Path(output_root) / best['runs'][0]} "
        f"VALIDATION_FILE --compare {Path(output_root) / close[0]['runs'][0]}` (keep their weights with --keep_models)."
    )


def markdown_report(
    summary: str,
    aggregated: list[dict[str, Any]],
    records: list[dict[str, Any]],
    metric: str | None,
    keys: list[str],
    config: str | None,
) -> str:
    """search.md: the summary, every run (when averaged over seeds) and the exact commands."""
    parts = ["# Hyperparameter search\n", f"Config: `{config}`" if config else "Config: none (flags only)", "", summary]
    if metric and any(r.get("seed") is not None for r in records) and len(records) > len(aggregated):
        per_run = aggregate([{**r, "point": {**r["point"], "seed": str(r["seed"])}} for r in records], metric)
        parts += ["## Every run\n", markdown_table(per_run, metric, [*keys, "seed"])]
    parts.append("## Commands\n")
    parts += [f"- `{r['name']}` ({r['status']}): `{r['command_line']}`" for r in records]
    return "\n".join(parts) + "\n"
