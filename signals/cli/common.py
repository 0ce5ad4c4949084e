"""Shared CLI plumbing: lazy settings, logging, and turning user errors into exit codes."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable

import click

from signals.core.errors import SignalsError
from signals.core.tables import format_table

log = logging.getLogger("signals")


@dataclass
class Context:
    config_path: str | None = None
    verbose: int = 0
    _settings: Any = field(default=None, repr=False)

    @property
    def settings(self):  # noqa: ANN201 - Settings, imported lazily
        if self._settings is None:
            from signals.settings.model import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    def setup_logging(self) -> None:
        from signals.core.redaction import install_log_redaction

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
        from signals.core.redaction import redact_text

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
