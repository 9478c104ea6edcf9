"""Texts given on the command line or in a plain text file, validated as training validates the texts of its data
files (`hf_crossenc.data.text_problem`, `_decode_utf8`): an empty query, pair text or passage, or a file that is not
UTF-8, is a `UserInputError` (exit code 2) naming the flag, or the file and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .data import _decode_utf8, text_problem
from .errors import ConfigError, DataError


def flag_text(value: object, flag: str) -> str:
    """`value`, a text given with `flag`, or a `ConfigError` naming the flag and what is wrong with it."""
    problem = text_problem(value)
    if problem is not None:
        raise ConfigError(f"{flag}: {problem} Give a non-empty text.")
    return str(value)


def flag_pairs(pairs: Sequence[Sequence[str]], flag: str = "--pair") -> list[tuple[str, str]]:
    """The (text_a, text_b) pairs of a repeatable two-text flag, each text validated (`flag_text`)."""
    out = []
    for number, (a, b) in enumerate(pairs, start=1):
        where = f"{flag} (pair {number})" if len(pairs) > 1 else flag
        out.append((flag_text(a, f"{where}, first text"), flag_text(b, f"{where}, second text")))
    return out


def read_text_lines(path: str | Path, flag: str) -> list[str]:
    """The non-blank lines of a UTF-8 text file given with `flag`, stripped (split on newlines only: str.splitlines()
    also breaks at U+2028, form feeds...). A missing file or one that is not UTF-8 is a `DataError` naming the file (and
    the line of the first bad byte)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("not found.", source=str(path))
    text = _decode_utf8(path.read_bytes(), str(path), "txt")
    return [line.strip() for line in text.split("\n") if line.strip()]
