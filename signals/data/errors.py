"""Errors raised by the data layer. Each names the symbol, the column and the first bad row."""

from __future__ import annotations

from typing import Any

from signals.core.errors import SignalsError


class DataError(SignalsError, ValueError):
    """Base class for data problems the user must fix."""


class UnknownSymbolError(DataError, KeyError):
    def __init__(self, symbol: str, known: list[str]) -> None:
        shown = ", ".join(sorted(known)[:20]) + (" ..." if len(known) > 20 else "")
        super().__init__(f"unknown symbol {symbol!r}; the data source has: {shown or 'no symbols'}")
        self.symbol = symbol

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DataValidationError(DataError):
    def __init__(
        self,
        symbol: str | None,
        problem: str,
        column: str | None = None,
        row: Any = None,
    ) -> None:
        where = [f"symbol {symbol!r}" if symbol else "table"]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"first bad row {row}")
        super().__init__(f"{', '.join(where)}: {problem}")
        self.symbol = symbol
        self.column = column
        self.row = row
        self.problem = problem


class DataReadError(DataError):
    """A source file (or other raw input) that cannot be read at all: truncated, empty, corrupt."""

    def __init__(self, subject: str, path: object, reason: str) -> None:
        where = f" ({path})" if path else ""
        super().__init__(f"cannot read {subject}{where}: {reason}")
        self.subject = subject
        self.path = None if path is None else str(path)
        self.reason = reason
