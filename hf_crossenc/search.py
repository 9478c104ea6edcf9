"""`hf-crossenc search`: a small grid search over training flags that selects on the validation split only.

Every combination of the `--grid` values (times every `--seeds` seed) is trained by its own
`hf-crossenc train` subprocess, one run after another, in the caller's working directory (so
relative paths in the config resolve as for `hf-crossenc train`), into `<output_root>/<run-name>`.
A run whose folder already holds results.json is reused, not retrained, so an interrupted search
continues where it stopped. The best grid point is the one with the highest mean validation metric;
test metrics are reported beside it, never used to choose.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import itertools
import json
import logging
import math
import os
import re
import shlex
import shutil
import site
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoints import resumable
from .errors import ConfigError

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

NOT_METRICS = frozenset({"n", "threshold", "queries", "skipped_queries"})
"""Entries of a results.json split that are counts or settings, not metrics."""

KNOWN_METRICS = ("pearson", "spearman", "accuracy", "f1", "auc", "average_precision", "map", "mrr@10", "ndcg@10")
RESERVED = {"output_dir": "the search sets it per run (see --output_root)", "config": "pass it to the search as --config"}
MODEL_FILES = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json")
TAIL_LINES = 20
MAX_VALUE_CHARS = 40
TEST_LABEL = "test (not used for selection)"

logger = logging.getLogger(__name__)


# ---- the grid -----------------------------------------------------------------------------


def expand_grid(grid: list[str]) -> list[dict[str, str]]:
    """The cartesian product of `KEY=V1,V2,...` items, the first key varying slowest.

    >>> expand_grid(["lr=1,2", "tw=a,b"])
    [{'lr': '1', 'tw': 'a'}, {'lr': '1', 'tw': 'b'}, {'lr': '2', 'tw': 'a'}, {'lr': '2', 'tw': 'b'}]

    Only the syntax is checked here (`ConfigError` for a missing `=`, an empty or repeated value, a
    key given twice); `check_grid_keys` checks the keys against the training flags. Values are
    split on commas, so a value that itself contains a comma (e.g. a label scale) belongs in the config.
    """
    keys: list[str] = []
    choices: list[list[str]] = []
    for item in grid:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ConfigError(f"--grid {item!r}: expected KEY=VALUE1,VALUE2,... (e.g. learning_rate=3e-5,5e-5).")
        values = [v.strip() for v in raw.split(",")]
        if any(not v for v in values):
            raise ConfigError(f"--grid {item!r}: empty value; give comma-separated values such as {key}=1,2.")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"--grid {item!r}: value {repeated[0]!r} is listed twice.")
        if key in keys:
            raise ConfigError(f"--grid: key {key!r} is given twice; list all its values in one --grid {key}=...")
        keys.append(key)
        choices.append(values)
    return [dict(zip(keys, combination)) for combination in itertools.product(*choices)]


def training_flags() -> dict[str, argparse.Action]:
    """Every training flag name (without dashes, both spellings, e.g. `learning_rate` and `learning-rate`) → its action."""
    from .config import build_parser

    flags: dict[str, argparse.Action] = {}
    for action in build_parser()._actions:
        if action.dest == "help":
            continue
        for option in action.option_strings:
            flags.setdefault(option.lstrip("-"), action)
    return flags


def canonical_flag(name: str, flags: dict[str, argparse.Action], where: str) -> str:
    """The destination (`learning_rate`) of a training flag name; `ConfigError` naming the closest valid flag otherwise."""
    if name in RESERVED:
        raise ConfigError(f"{where}: --{name} cannot be set here: {RESERVED[name]}.")
    action = flags.get(name)
    if action is None:
        dests = sorted({a.dest for a in flags.values()})
        close = difflib.get_close_matches(name, dests, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: unknown training flag {name!r}.{hint} See `hf-crossenc train --help` for every valid flag.")
    return action.dest


def check_grid_keys(points: list[dict[str, str]], flags: dict[str, argparse.Action] | None = None) -> list[dict[str, str]]:
    """The grid points with every key checked against the training flags (and renamed to its canonical form)
    and every value converted once with the flag's type and choices, so a typo fails before any run starts."""
    flags = training_flags() if flags is None else flags
    if not points or not points[0]:
        return points
    renamed = {key: canonical_flag(key, flags, f"--grid {key}") for key in points[0]}
    if len(set(renamed.values())) < len(renamed):
        raise ConfigError(f"--grid: two keys name the same flag: {sorted(renamed)}.")
    if "seed" in renamed.values():
        raise ConfigError("--grid seed=...: use --seeds 42,1234 instead (runs are averaged over seeds, not selected by seed).")
    for key, dest in renamed.items():
        action = flags[dest]
        for value in sorted({point[key] for point in points}):
            _check_value(action, dest, value)
    return [{renamed[key]: value for key, value in point.items()} for point in points]


def _check_value(action: argparse.Action, dest: str, value: str) -> None:
    converted: Any = value
    if action.type is not None and callable(action.type):
        try:
            converted = action.type(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
            raise ConfigError(f"--grid {dest}: invalid value {value!r} ({err or 'wrong type'}).") from None
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(f"--grid {dest}: invalid value {value!r}; choose from {list(action.choices)}.")


def parse_seeds(text: str | None) -> list[int]:
    """`"42,1234"` → `[42, 1234]`; None → [] (each run keeps the seed of its config)."""
    if text is None:
        return []
    seeds = []
    for part in text.split(","):
        try:
            seeds.append(int(part.strip()))
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 42,1234.") from None
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {text!r}: a seed is listed twice.")
    return seeds


def normalise_metric(name: str) -> str:
    """`eval_spearman` → `spearman` (the Trainer's name for a validation metric → the name in results.json)."""
    return name[len("eval_") :] if name.startswith("eval_") else name


# ---- run names and commands -----------------------------------------------------------------


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


@dataclass
class PlannedRun:
    """One training run of the search: its grid point, seed, folder and command."""

    name: str
    point: dict[str, str]
    seed: int | None
    output_dir: Path
    train_args: list[str]
    """The `hf-crossenc train` arguments that define the run."""
    extra: list[str] = field(default_factory=list)
    """`--resume` (a complete checkpoint, or a finished earlier round, is there) or `--overwrite_output_dir` (a partial folder)."""
    action: str = "train"
    """train, reuse (results.json exists), resume or overwrite."""

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "hf_crossenc.cli", "train", *self.train_args, *self.extra]

    @property
    def log(self) -> Path:
        return self.output_dir.with_name(self.output_dir.name + ".log")


def check_train_args(train_args: list[str], grid_keys: list[str], seeds: list[int], flags: dict[str, argparse.Action]) -> list[str]:
    """The flags after `--` (passed to every run), checked: valid training flags, none that the search sets itself."""
    if train_args and train_args[0] == "--":
        train_args = train_args[1:]
    if train_args and not train_args[0].startswith("--"):
        raise ConfigError(f"training flags after `--` must start with a flag, got {train_args[0]!r}.")
    for token in train_args:
        if not token.startswith("--") or token == "--":
            continue
        dest = canonical_flag(token[2:].split("=", 1)[0], flags, f"training flag {token.split('=', 1)[0]}")
        if dest in grid_keys:
            raise ConfigError(f"training flag --{dest} after `--` is also a --grid key: give it in one place only.")
        if dest == "seed" and seeds:
            raise ConfigError("training flag --seed after `--` conflicts with --seeds: give it in one place only.")
    return train_args


def plan_runs(
    points: list[dict[str, str]], seeds: list[int], output_root: Path, config: str | None, train_args: list[str]
) -> list[PlannedRun]:
    """Every run of the search, in order (grid points, then seeds), with what will happen to it."""
    runs = []
    for point in points:
        for seed in seeds or [None]:
            values: dict[str, Any] = dict(point) if seed is None else {**point, "seed": seed}
            name = run_name(values)
            out = output_root / name
            args = ["--config", config] if config else []
            for key, value in point.items():
                args += [f"--{key}", value]
            if seed is not None:
                args += ["--seed", str(seed)]
            args += [*train_args, "--output_dir", str(out)]
            runs.append(PlannedRun(name, dict(point), seed, out, args))
    names = [run.name for run in runs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"two runs would share the folder {clash[0]!r} (values that differ only in special characters).")
    for run in runs:
        if run.output_dir.exists() and not run.output_dir.is_dir():
            raise ConfigError(f"run folder {run.output_dir} exists and is not a directory.")
        if (run.output_dir / "results.json").is_file():
            run.action = "reuse"
        elif resumable(run.output_dir, averaged=_averages(run.train_args)):
            run.action, run.extra = "resume", ["--resume"]
        elif run.output_dir.is_dir() and any(run.output_dir.iterdir()):
            run.action, run.extra = "overwrite", ["--overwrite_output_dir"]
    return runs


def _averages(args: list[str]) -> bool:
    """Whether a run with these scripts/train.py arguments averages its epochs (its checkpoints then need the sum)."""
    from .config import parse_job_arguments  # here, not at the top: it imports transformers

    return bool(parse_job_arguments(args)[3].average_checkpoints)


def _child_env() -> dict[str, str]:
    """The caller's environment; from a source checkout, with this copy of hf_crossenc first on PYTHONPATH."""
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[1]
    site_dirs = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root not in site_dirs:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return env


def _launch(command: list[str], log: Path) -> int:
    """Run one training command in the caller's working directory, its output going to `log`; the exit code."""
    with log.open("w", encoding="utf-8") as out:
        out.write(f"# {shlex.join(command)}\n# cwd: {os.getcwd()}\n")
        out.flush()
        done = subprocess.run(
            command, cwd=os.getcwd(), env=_child_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    return done.returncode


def _tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]


# ---- results ---------------------------------------------------------------------------------


def _metrics(split: dict[str, Any] | None) -> dict[str, float]:
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
            if metric not in _metrics(r.get("validation")):
                available = sorted(_metrics(r.get("validation")))
                raise ConfigError(
                    f"run {r.get('name')}: no validation {metric!r} in its results (available: {available or 'none'}). "
                    "The search selects on the validation split: give a validation file, or choose --metric from those."
                )
        validation = {m: _mean_std([_metrics(r["validation"])[m] for r in ok]) for m in _metrics(ok[0]["validation"])} if ok else {}
        tests = [_metrics(r.get("test")) for r in ok]
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


def _read_results(run: PlannedRun) -> dict[str, Any]:
    path = run.output_dir / "results.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the run's results ({err}); delete {run.output_dir} to retrain it.") from None


def _previous_runs(path: Path) -> dict[str, dict[str, Any]]:
    """Run records of an earlier search.json in the same output root (to notice reused runs made differently)."""
    if not path.is_file():
        return {}
    try:
        return {run["name"]: run for run in json.loads(path.read_text(encoding="utf-8")).get("runs", [])}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        logger.warning("ignoring the unreadable earlier search record %s (%s): reused runs are not compared with it", path, err)
        return {}


RUN_RECORD = "search_run.json"
"""Written into each run folder a search trains: the flags and config file (sha256) that made it."""


def check_reused_runs(runs: list[PlannedRun], previous: dict[str, dict[str, Any]], config_sha: str | None) -> None:
    """Refuse to reuse a finished run that was made with other flags or another config file (its own
    `search_run.json`, else the earlier search.json), so a table never mixes runs of different recipes."""
    for run in runs:
        if run.action != "reuse":
            continue
        own = run.output_dir / RUN_RECORD
        try:
            made = json.loads(own.read_text(encoding="utf-8")) if own.is_file() else previous.get(run.name)
        except ValueError as err:
            raise ConfigError(f"{own} is not valid JSON ({err}): delete {run.output_dir} to retrain that run.") from None
        if made is None:
            continue  # made outside a search (or before runs recorded their flags): nothing to compare with
        if (made.get("train_args"), made.get("config_sha256")) != (run.train_args, config_sha):
            raise ConfigError(
                f"run {run.name} in {run.output_dir} was trained with other flags or another config file "
                f"(then: {shlex.join(made.get('train_args') or [])!r}; now: {shlex.join(run.train_args)!r}). "
                "Delete its folder to retrain it, or choose another --output_root."
            )


def _file_sha256(path: str | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None


def _has_model(folder: Path) -> bool:
    return any(any(folder.glob(pattern)) for pattern in MODEL_FILES)


def _delete_models(folder: Path) -> list[str]:
    """Remove the weights and checkpoints of a finished run, earlier distillation rounds' included
    (results.json, README.md and logs stay)."""
    removed = []
    for pattern in (*MODEL_FILES, "checkpoint-*", *(f"rounds/*/{name}" for name in MODEL_FILES)):
        for path in sorted(folder.glob(pattern)):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(str(path))
    return removed


# ---- running the search ------------------------------------------------------------------


def _do_run(run: PlannedRun, i: int, total: int, config_sha: str | None, notes: list[str]) -> dict[str, Any]:
    """Train (or reuse) one run; its record for search.json."""
    record: dict[str, Any] = {
        "name": run.name,
        "point": run.point,
        "seed": run.seed,
        "output_dir": str(run.output_dir),
        "log": str(run.log),
        "command": run.command,
        "command_line": shlex.join(run.command),
        "train_args": run.train_args,
        "config_sha256": config_sha,
    }
    if run.action == "reuse":
        print(f"[{i}/{total}] {run.name}: reused (results.json exists in {run.output_dir}; not retrained)", file=sys.stderr)
        status, code, wall = "reused", 0, None
    else:
        verb = {"resume": "resuming from its newest checkpoint", "overwrite": "retraining into its partial folder"}.get(
            run.action, "training"
        )
        print(f"[{i}/{total}] {run.name}: {verb} (log: {run.log})", file=sys.stderr)
        started = time.perf_counter()
        code = _launch(run.command, run.log)
        wall = round(time.perf_counter() - started, 2)
        status = "trained" if code == 0 else "failed"
    record.update(status=status, exit_code=code, wall_time_s=wall)
    if status == "trained" and not (run.output_dir / "results.json").is_file():
        status = record["status"] = "failed"
        with run.log.open("a", encoding="utf-8") as log:
            log.write("# exit code 0 but no results.json was written\n")
    if status == "failed":
        tail = _tail(run.log)
        with run.log.open("a", encoding="utf-8") as log:
            log.write(f"# hf-crossenc search: run failed with exit code {code}\n")
        record["stderr_tail"] = tail
        print(f"[{i}/{total}] {run.name}: FAILED with exit code {code}; last lines of {run.log}:", file=sys.stderr)
        print("".join(f"    {line}\n" for line in tail), end="", file=sys.stderr)
        return record
    results = _read_results(run)
    record["validation"] = results.get("validation")
    record["test"] = results.get("test")
    record["runtime_s"] = (results.get("run") or {}).get("train_runtime_s")
    record["metric_for_best_model"] = (results.get("run") or {}).get("metric_for_best_model")
    if status == "trained":
        print(f"[{i}/{total}] {run.name}: done in {wall:.0f} s", file=sys.stderr)
        made = {"train_args": run.train_args, "config_sha256": config_sha}
        (run.output_dir / RUN_RECORD).write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
    return record


def _check_run_metric(record: dict[str, Any], metric: str | None, explicit: bool) -> str:
    """The selection metric (`--metric`, else the runs' metric_for_best_model), checked against a finished
    run as soon as it is there, so a search that cannot select stops after one run rather than after all."""
    own = normalise_metric(record.get("metric_for_best_model") or "")
    if metric is None:
        if not own:
            raise ConfigError(f"run {record['name']}: results.json names no metric_for_best_model; pass --metric.")
        metric = own
    elif not explicit and own and own != metric:
        raise ConfigError(
            f"the runs pick their checkpoints by different metrics ({metric!r}, {own!r}): pass --metric to say which "
            "validation metric selects the best run."
        )
    validation = _metrics(record.get("validation"))
    if metric not in validation:
        raise ConfigError(
            f"run {record['name']}: no validation {metric!r} in {record['output_dir']}/results.json "
            f"(available: {sorted(validation) or 'none'}). The search selects on the validation split: give the "
            "runs a validation file, or choose --metric among those."
        )
    return metric


def _summary(
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
            blocks.append(_noise_note(aggregated, best, metric, output_root))
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


def _noise_note(aggregated: list[dict[str, Any]], best: dict[str, Any], metric: str, output_root: str | Path) -> str:
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


def _markdown_report(
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
