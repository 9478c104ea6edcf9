"""Errors that mean "the user's input is wrong" (the CLI turns them into exit code 2)."""

from __future__ import annotations


class UserInputError(ValueError):
    """An error in the user's data, configuration or paths: reported in one paragraph, no traceback."""

    exit_code = 2


class DataError(UserInputError):
    """A problem in a data file, located by file, row (1-based, as a spreadsheet shows it) and column."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.row = row
        self.column = column
        self.hint = hint
        where = [f"file {source}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        text = f"{', '.join(where)}: {message}"
        if hint:
            text += f" {hint}"
        super().__init__(text)


class ConfigError(UserInputError):
    """A problem in the command line or in a `--config` file."""
