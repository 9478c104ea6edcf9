"""`hf-crossenc`: one module per command under `hf_crossenc.commands`, each with `add_parser(subparsers)` and
`run(args)`; `hf_crossenc.cli` only assembles them and dispatches."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from hf_crossenc import cli
from hf_crossenc.commands.common import EPILOG

COMMANDS_DIR = Path(cli.__file__).parent / "commands"


def test_every_command_module_has_add_parser_and_run():
    assert list(cli.COMMANDS) == ["evaluate", "predict", "rank", "mine", "publish", "search", "data"]
    for name, module in cli.COMMANDS.items():
        assert module.__name__ == f"hf_crossenc.commands.{name}"
        assert list(inspect.signature(module.add_parser).parameters) == ["subparsers"], name
        assert list(inspect.signature(module.run).parameters) == ["args"], name
        parser = module.add_parser(argparse.ArgumentParser(prog="hf-crossenc").add_subparsers(dest="command"))
        assert isinstance(parser, argparse.ArgumentParser) and parser.prog == f"hf-crossenc {name}"


def test_every_module_of_the_commands_package_is_a_command():
    files = {path.stem for path in COMMANDS_DIR.glob("*.py")} - {"__init__", "common"}
    assert files - {"train"} == set(cli.COMMANDS)  # train: `hf-crossenc train` hands its arguments to the job unparsed


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hf-crossenc ") and EPILOG in out
    assert "{train,evaluate,predict,rank,mine,publish,search,data}" in out
    subparsers = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert all(choice.help for choice in subparsers._choices_actions)


def test_commands_are_dispatched_and_bad_input_exits_2(capsys):
    with pytest.raises(SystemExit) as done:  # a bad number: argparse refuses it, naming the flag
        cli.main(["evaluate", "model", "data.csv", "--bootstrap", "-1"])
    assert done.value.code == 2
    assert capsys.readouterr().err.endswith("error: argument --bootstrap: must be a whole number, 0 or more, got -1\n")
    assert cli.main(["evaluate", "model", "data.csv", "--compare", "other", "--bootstrap", "0"]) == 2  # the command's own check
    assert capsys.readouterr().err == "error: --compare needs resamples: drop --bootstrap 0 (or give a positive number).\n"
    assert cli.main(["rank", "model", "--query", "q", "--passages", "no-such-file.txt"]) == 2
    assert capsys.readouterr().err == "error: file no-such-file.txt: not found.\n"


def test_mine_runs_as_a_module_under_its_command_name():
    repo = Path(cli.__file__).resolve().parents[1]  # `-m` imports from the working directory: this checkout
    command = [sys.executable, "-m", "hf_crossenc.commands.mine", "--help"]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: hf-crossenc mine ") and EPILOG in done.stdout
