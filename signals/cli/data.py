"""``signals data ...``: inspect and validate a data source."""

from __future__ import annotations

import click

from signals.cli.common import Context, echo_json, pass_ctx, print_table
from signals.data.errors import DataError
from signals.data.parquet import export_provider
from signals.data.sources import get_provider
from signals.data.sql import load_layout_to_sql
from signals.features.availability import check_source_features

# signals.data.sources.PROVIDERS, spelled out: importing it here would load pandas for every command (a test keeps them equal)
PROVIDER_CHOICES = ("sample", "skfolio", "parquet", "sql")


@click.group()
def data() -> None:
    """Inspect and validate the configured data source."""


@data.command("check")
@click.option("--symbols", "-s", multiple=True, help="Symbols to check (repeatable; default: the whole universe).")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default=None, help="Override data.provider.")
@click.option("--path", default=None, help="Override data.path (parquet layout directory).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--strict", is_flag=True, help="Treat warnings about suspicious data as errors (exit 1).")
@pass_ctx
def check(ctx: Context, symbols: tuple[str, ...], provider: str | None, path: str | None, as_json: bool,
          strict: bool) -> None:
    """Validate bars and event tables; print per-symbol coverage, the features the source cannot provide,
    and warnings about suspicious data (unadjusted splits, prices outside the day's range, spikes, ...)."""

    settings = ctx.settings
    if provider or path:
        settings = settings.model_copy(
            update={"data": settings.data.model_copy(update={k: v for k, v in {"provider": provider, "path": path}.items() if v})}
        )
    summary = check_source_features(settings, list(symbols) or settings.data.symbols or None)
    if as_json:
        echo_json(summary)
        _fail_if_strict(summary["warnings"], strict)
        return
    click.echo(f"source: {summary['source']}")
    print_table(summary["symbols"], ["symbol", "rows", "first", "last", "gaps", "adjusted_rows", "bars", "fixes"])
    click.echo("")
    print_table(summary["tables"], ["table", "rows", "dropped_rows", "symbols", "first_available", "last_available", "synthetic"])
    if summary["unavailable"]:
        click.echo("\nunavailable features (NaN):")
        for item in summary["unavailable"]:
            where = "" if item["scope"] == "all" else f" ({item['scope']})"
            click.echo(f"  {item['input']}: {item['why']}")
            click.echo(f"    {item['n_features']} feature(s){where}: {', '.join(item['features'])}")
    echo_data_warnings(summary["warnings"])
    _fail_if_strict(summary["warnings"], strict)


def echo_data_warnings(warnings: list[dict]) -> None:
    """The suspicious-data warnings (:mod:`signals.data.suspicious`), one line each, on stdout."""
    if not warnings:
        return
    click.echo(f"\nwarnings ({len(warnings)}): suspicious but valid data")
    for w in warnings:
        when = f" from {w['first_date']}" if w["first_date"] else ""
        rows = f", {w['count']} row(s)" if w["count"] else ""
        click.echo(f"  {w['symbol']}: {w['check']}{when}{rows}: {w['detail']}")


def _fail_if_strict(warnings: list[dict], strict: bool) -> None:
    if strict and warnings:
        names = ", ".join(sorted({f"{w['check']} ({w['symbol']})" for w in warnings}))
        raise DataError(f"data check --strict: {len(warnings)} warning(s) about suspicious data: {names}")


@data.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option("--symbols", "-s", multiple=True, help="Symbols to export (default: all).")
@pass_ctx
def export(ctx: Context, directory: str, symbols: tuple[str, ...]) -> None:
    """Write the configured source (e.g. the sample) as a parquet-layout DIRECTORY."""

    root = export_provider(get_provider(ctx.settings), directory, list(symbols) or None)
    click.echo(f"wrote parquet layout to {root}")


@data.command("load-sql")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--url", envvar="SA_DATA__SQL_URL", required=True, help="SQLAlchemy URL, e.g. postgresql://user@127.0.0.1:5432/db.")
@click.option("--schema", default=None, help="Database schema to create/fill (default: the connection's).")
def load_sql(directory: str, url: str, schema: str | None) -> None:
    """Load a parquet-layout DIRECTORY into SQL tables (one transaction; replaces those symbols)."""

    counts = load_layout_to_sql(directory, url, schema)
    print_table([{"table": k, "rows": v} for k, v in counts.items()], ["table", "rows"])
