"""A small grid search over training flags that selects on the validation split only.

Every combination of the `--grid` values (times every `--seeds` seed) is one training run: its flags (the config, the
grid values, the seed and the flags after `--`) are parsed into the job's arguments and `hf_crossenc.job.train` runs in a
child process of its own (spawned, so each run starts with a fresh process and hands its memory back when it ends), one
run after another, in the caller's working directory (so relative paths in the config resolve as for `hf-crossenc
train`), into `<output_root>/<run-name>`.
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
import multiprocessing
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .checkpoints import resumable
from .errors import ConfigError, UserInputError
from .search_report import metric_values, run_name
from .tasks import WEIGHT_FILES
from .validation import MAX_SEED, RANGES, check_value

KNOWN_METRICS = ("pearson", "spearman", "accuracy", "f1", "auc", "average_precision", "map", "mrr@10", "ndcg@10")
RESERVED = {"output_dir": "the search sets it per run (see --output_root)", "config": "pass it to the search as --config"}
TAIL_LINES = 20
ACTION_FLAGS = {"resume": ["--resume"], "overwrite": ["--overwrite_output_dir"]}
"""What a planned run's action adds to its training arguments."""

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
    rule = RANGES.get(dest)
    if rule is not None and rule.when is None:  # the training flag's range (one that depends on other flags: the run checks it)
        try:
            check_value(dest, converted, rule)
        except ConfigError as err:
            raise ConfigError(f"--grid {dest}={value}: {err}") from None


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
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:  # the range of the training flag --seed
            raise ConfigError(f"--seeds {text!r}: each seed must lie in [0, {MAX_SEED}], got {seed}.")
    return seeds


def normalise_metric(name: str) -> str:
    """`eval_spearman` → `spearman` (the Trainer's name for a validation metric → the name in results.json)."""
    return name[len("eval_") :] if name.startswith("eval_") else name


# ---- run names and commands -----------------------------------------------------------------


@dataclass
class PlannedRun:
    """One training run of the search: its grid point, seed, folder and command."""

    name: str
    point: dict[str, str]
    seed: int | None
    output_dir: Path
    train_args: list[str]
    """The `hf-crossenc train` arguments that define the run."""
    action: str = "train"
    """train, reuse (results.json exists), resume (a complete checkpoint, or a finished earlier round, is there: the run
    goes on from it) or overwrite (a partial folder: the run trains into it anew)."""

    @property
    def command(self) -> list[str]:
        """The run as a command line, for search.md and --dry_run (the search itself calls `train` in a child process)."""
        return ["hf-crossenc", "train", *self.train_args, *ACTION_FLAGS.get(self.action, [])]

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
            run.action = "resume"
        elif run.output_dir.is_dir() and any(run.output_dir.iterdir()):
            run.action = "overwrite"
    return runs


def _averages(args: list[str]) -> bool:
    """Whether a run with these scripts/train.py arguments averages its epochs (its checkpoints then need the sum)."""
    from .config import parse_job_arguments  # here, not at the top: it imports transformers

    return bool(parse_job_arguments(args)[3].average_checkpoints)


def _launch(run: PlannedRun) -> int:
    """Train one run in a spawned child process in the caller's working directory, its output going to the run's log;
    the exit code (0, 2 for bad input, 1 for a failure, negative for a signal)."""
    with run.log.open("w", encoding="utf-8") as out:
        out.write(f"# {shlex.join(run.command)}\n# cwd: {os.getcwd()}\n")
    child = multiprocessing.get_context("spawn").Process(target=train_in_child, args=(run.train_args, run.action, str(run.log)))
    child.start()
    child.join()
    return int(child.exitcode if child.exitcode is not None else 1)


def train_in_child(train_args: list[str], action: str, log: str) -> None:
    """A search run's child process: its output appended to `log`, the run's flags parsed into the job's arguments (with
    ``resume`` or ``overwrite_output_dir`` as its `action` says), then `train`; bad input exits with code 2."""
    with open(log, "a", encoding="utf-8") as out:  # noqa: PTH123 - the descriptor is duplicated onto stdout and stderr
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    from .config import parse_job_arguments
    from .job import train
    from .logs import setup_logging

    setup_logging()
    try:
        model_args, data_args, teacher_args, training_args = parse_job_arguments(train_args)
        if action == "resume":
            training_args = replace(training_args, resume=True)
        elif action == "overwrite":
            training_args = replace(training_args, overwrite_output_dir=True)
        train(model_args, data_args, training_args, teacher_args)
    except UserInputError as err:
        logger.error("%s", err)  # into the run's log, whose tail the search shows
        sys.exit(err.exit_code)


def _tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]


def _read_results(run: PlannedRun) -> dict[str, Any]:
    path = run.output_dir / "results.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the run's results ({err}); delete {run.output_dir} to retrain it.") from None


def previous_runs(path: Path) -> dict[str, dict[str, Any]]:
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


def file_sha256(path: str | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None


def has_model(folder: Path) -> bool:
    return any(any(folder.glob(pattern)) for pattern in WEIGHT_FILES)


def delete_models(folder: Path) -> list[str]:
    """Remove the weights and checkpoints of a finished run, earlier distillation rounds' included
    (results.json, README.md and logs stay)."""
    removed = []
    for pattern in (*WEIGHT_FILES, "checkpoint-*", *(f"rounds/*/{name}" for name in WEIGHT_FILES)):
        for path in sorted(folder.glob(pattern)):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(str(path))
    return removed


# ---- running the search ------------------------------------------------------------------


def execute_run(run: PlannedRun, i: int, total: int, config_sha: str | None, report: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """Train (or reuse) one run; its record for search.json. Progress lines go to `report`."""
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
        report(f"[{i}/{total}] {run.name}: reused (results.json exists in {run.output_dir}; not retrained)")
        status, code, wall = "reused", 0, None
    else:
        verb = {"resume": "resuming from its newest checkpoint", "overwrite": "retraining into its partial folder"}.get(
            run.action, "training"
        )
        report(f"[{i}/{total}] {run.name}: {verb} (log: {run.log})")
        started = time.perf_counter()
        code = _launch(run)
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
        report(f"[{i}/{total}] {run.name}: FAILED with exit code {code}; last lines of {run.log}:")
        report("".join(f"    {line}\n" for line in tail).rstrip("\n"))
        return record
    results = _read_results(run)
    record["validation"] = results.get("validation")
    record["test"] = results.get("test")
    record["runtime_s"] = (results.get("run") or {}).get("train_runtime_s")
    record["metric_for_best_model"] = (results.get("run") or {}).get("metric_for_best_model")
    if status == "trained":
        report(f"[{i}/{total}] {run.name}: done in {wall:.0f} s")
        made = {"train_args": run.train_args, "config_sha256": config_sha}
        (run.output_dir / RUN_RECORD).write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
    return record


def check_run_metric(record: dict[str, Any], metric: str | None, explicit: bool) -> str:
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
    validation = metric_values(record.get("validation"))
    if metric not in validation:
        raise ConfigError(
            f"run {record['name']}: no validation {metric!r} in {record['output_dir']}/results.json "
            f"(available: {sorted(validation) or 'none'}). The search selects on the validation split: give the "
            "runs a validation file, or choose --metric among those."
        )
    return metric
