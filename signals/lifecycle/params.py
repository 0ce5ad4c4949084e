"""Parameters as the MLproject entry points and the CLI receive them, parsed in one place.

MLflow passes every entry-point parameter as a string (an empty string meaning "from the
configuration"); the CLI gets the same values from click. Both go through these functions, so a
parameter is validated once and fails with the same message either way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.core.redaction import install_log_redaction, redact_text


class ParameterError(SignalsError):
    """A parameter value that cannot be used (named in the message)."""


def prefer_passive_openmp() -> None:
    """Default ``OMP_WAIT_POLICY=PASSIVE`` for this process (a user's setting wins).

    XGBoost's OpenMP threads spin while waiting by default. When the machine has more runnable
    threads than cores (parallel Optuna trials, other jobs) spinning threads steal the cores the
    working threads need: measured here on 2 cores under load, a 2-thread fit was 10-17x slower
    than a 1-thread fit with the default policy, and on par with it with PASSIVE. It only takes
    effect if called before ``xgboost`` is first imported, so the CLI commands and ``main()``
    functions call it first thing.
    """

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ------------------------------------------------------------------------------- parameters
_NONE_STRINGS = {"", "none", "null"}


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", "", "none"}


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParameterError(f"parameter {name} must be true or false, got {value!r}")


def parse_version(value: Any, name: str = "version") -> str | None:
    """A registry version number, or None for "" / "none" / "null" (MLproject defaults are strings)."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("", "none", "null"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise ParameterError(f"parameter {name} must be a registry version number (1, 2, ...), got {value!r}")
    return str(int(text))


def opt_str(value: str | None) -> str | None:
    if value is None or value.strip().lower() in _NONE_STRINGS:
        return None
    return value.strip()


def opt_int(name: str, minimum: int = 1) -> Callable[[str], int | None]:
    def parse(value: str) -> int | None:
        v = opt_str(value)
        if v is None:
            return None
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} must be an integer, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"--{name} must be >= {minimum}, got {n}")
        return n

    return parse


def opt_date(name: str) -> Callable[[str], str | None]:
    def parse(value: str) -> str | None:
        v = opt_str(value)
        if v is None:
            return None
        try:
            return pd.Timestamp(v).date().isoformat()
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"--{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None

    return parse


def opt_symbols(value: str) -> list[str] | None:
    v = opt_str(value)
    if v is None:
        return None
    syms = [s.strip().upper() for s in v.replace(";", ",").replace(" ", ",").split(",") if s.strip()]
    if not syms:
        raise argparse.ArgumentTypeError(f"--symbols must be a comma-separated list, got {value!r}")
    return syms


def check_date_order(parser: argparse.ArgumentParser, start: str | None, end: str | None) -> None:
    if start and end and pd.Timestamp(start) >= pd.Timestamp(end):
        parser.error(f"--start ({start}) must be before --end ({end})")


def common_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", type=opt_str, default=None, help="settings file (default config/settings.yaml)")
    p.add_argument("--symbols", type=opt_symbols, default=None, help="comma-separated symbols (default: all)")
    p.add_argument("--start", type=opt_date("start"), default=None, help="first date (ISO)")
    p.add_argument("--end", type=opt_date("end"), default=None, help="last date (ISO)")
    return p


def run_main(fn: Callable[[], int | None]) -> None:
    """Run an entry point's body: user errors become a one-line message and exit code 1.

    Log lines and the error message pass through :mod:`signals.core.redaction` (no credential leaves).
    """

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_log_redaction()
    try:
        code = fn()
    except SignalsError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj
