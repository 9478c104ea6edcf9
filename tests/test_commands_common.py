"""hf_crossenc.commands.common: what every command shares."""

from __future__ import annotations

import argparse

from hf_crossenc.commands.common import add_both_orders_flag, exit_code_of
from hf_crossenc.errors import ConfigError


def test_both_orders_flag_and_its_deprecated_spelling(capsys):
    parser = argparse.ArgumentParser()
    add_both_orders_flag(parser)
    assert [parser.parse_args(argv).both_orders for argv in ([], ["--both_orders"], ["--no-both_orders"])] == [None, True, False]
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["--symmetric"]).both_orders is True
    assert "--symmetric is deprecated" in capsys.readouterr().err
    assert parser.parse_args(["--no-symmetric"]).both_orders is False
    assert "use --no-both_orders" in capsys.readouterr().err
    assert "--symmetric" not in parser.format_help() and "--both_orders" in parser.format_help()


def test_user_errors_become_one_line_and_exit_code_2(capsys):
    def failing(_: object) -> int:
        raise ConfigError("--flag must be positive")

    assert exit_code_of(failing, None) == 2
    assert capsys.readouterr().err == "error: --flag must be positive\n"
    assert exit_code_of(lambda _: None, None) == 0 and exit_code_of(lambda _: 3, None) == 3


def test_precision_defaults_auto_for_scoring_and_fp32_for_evaluate():
    """predict and rank run where the hardware is fastest (bf16 where native); evaluate scores in fp32, so its metrics
    reproduce the job's results.json; every command takes the other settings."""
    from hf_crossenc.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["predict", "m", "--pair", "a", "b"]).precision == "auto"
    assert parser.parse_args(["rank", "m", "--query", "q", "--passage", "p"]).precision == "auto"
    assert parser.parse_args(["evaluate", "m", "data.csv"]).precision == "fp32"
    assert parser.parse_args(["predict", "m", "--pair", "a", "b", "--precision", "fp32"]).precision == "fp32"
    assert parser.parse_args(["evaluate", "m", "data.csv", "--precision", "auto"]).precision == "auto"
