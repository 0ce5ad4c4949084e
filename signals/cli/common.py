"""Shared CLI plumbing: lazy settings, logging, and turning user errors into exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable

import click

from signals.core.errors import SignalsError
from signals.core.redaction import install_log_redaction, redact_text
from signals.core.tables import format_table
from signals.lifecycle.params import ParameterError, opt_date, opt_symbols
from signals.settings.model import load_settings

log = logging.getLogger("signals")


@dataclass
class Context:
    config_path: str | None = None
    verbose: int = 0
    _settings: Any = field(default=None, repr=False)

    @property
    def settings(self):  # noqa: ANN201 - Settings, imported lazily
        if self._settings is None:

            self._settings = load_settings(self.config_path)
        return self._settings

    def setup_logging(self) -> None:

        level = logging.WARNING - 10 * min(self.verbose, 2)
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        install_log_redaction()
        logging.getLogger("signals").setLevel(min(level, logging.INFO))


pass_ctx = click.make_pass_decorator(Context)


def run_cli(group: click.Group) -> None:
    """Run the click group; a :class:`SignalsError` becomes ``Error: ...`` (credentials masked) and exit 1."""
    try:
        group.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SignalsError as exc:

        click.echo(f"Error: {redact_text(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


def print_table(rows: Iterable[dict[str, Any]], columns: list[str] | None = None) -> None:
    """A plain fixed-width table (:func:`signals.core.tables.format_table`)."""
    for line in format_table(rows, columns):
        click.echo(line)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


# ------------------------------------------------------------------ the shared parameter path
# The MLproject entry points parse MLflow's strings with signals.lifecycle.params; these click
# options run the same parsers, so a value is validated, and fails, the same way either way.
def _via(parse: Any) -> Any:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        try:
            return parse(value)
        except (ParameterError, argparse.ArgumentTypeError) as exc:
            raise click.BadParameter(str(exc)) from None
    return callback


class SymbolList(click.ParamType):
    """``-s AAPL,MSFT`` and ``-s AAPL -s MSFT`` alike: each value is split on commas (the MLproject
    parser's rule, :func:`signals.lifecycle.params.opt_symbols`); used with ``multiple=True``."""

    name = "SYMBOLS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        try:
            return opt_symbols(value) or []
        except (ParameterError, argparse.ArgumentTypeError) as exc:
            self.fail(str(exc), param, ctx)


SYMBOLS = SymbolList()


def _joined_symbols(ctx: click.Context, param: click.Parameter, values: tuple[list[str], ...]) -> list[str] | None:
    """All ``-s`` values in order, each symbol once; None when none was given (= the configured default)."""
    out = list(dict.fromkeys(s for part in values or () for s in part))
    return out or None


def symbols_opt(help: str = "Symbols (repeatable or comma-separated; default: data.symbols, else the whole universe).") -> Any:
    """The one ``--symbols/-s`` option every command shares (a list, or None for the default)."""
    return click.option("--symbols", "-s", type=SYMBOLS, multiple=True, callback=_joined_symbols, help=help)


symbols_option = symbols_opt()


def _date(name: str) -> Any:
    parse = opt_date(name)
    return lambda value: None if value is None else parse(value)

start_option = click.option("--start", default=None, callback=_via(_date("start")), help="First date (ISO; default data.start).")
end_option = click.option("--end", default=None, callback=_via(_date("end")), help="Last date (ISO; default data.end).")


def check_date_order(start: str | None, end: str | None) -> None:
    if start and end and start >= end:
        raise click.BadParameter(f"--start ({start}) must be before --end ({end})")
