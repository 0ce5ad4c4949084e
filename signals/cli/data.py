"""``signals data ...``: inspect and validate a data source."""

from __future__ import annotations

from typing import Any

import click

from signals.cli.common import Context, echo_json, pass_ctx, print_table, symbols_opt
from signals.core.tables import format_table
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
@symbols_opt("Symbols to check (repeatable or comma-separated; default: data.symbols, else the whole universe).")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default=None, help="Override data.provider.")
@click.option("--path", default=None, help="Override data.path (parquet layout directory).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--strict", is_flag=True, help="Treat warnings about suspicious data as errors (exit 1).")
@pass_ctx
def check(ctx: Context, symbols: list[str] | None, provider: str | None, path: str | None, as_json: bool,
          strict: bool) -> None:
    """Validate bars and event tables; print per-symbol coverage, the features the source cannot provide,
    and warnings about suspicious data (unadjusted splits, prices outside the day's range, spikes, ...)."""

    settings = ctx.settings
    if provider or path:
        settings = settings.model_copy(
            update={"data": settings.data.model_copy(update={k: v for k, v in {"provider": provider, "path": path}.items() if v})}
        )
    summary = check_source_features(settings, symbols or settings.data.symbols or None)
    if as_json:
        echo_json(summary)
        _fail_if_strict(summary["warnings"], strict)
        return
    for line in render_check(summary):
        click.echo(line)
    _fail_if_strict(summary.get("warnings") or [], strict)


def render_check(summary: dict[str, Any]) -> list[str]:
    """The ``data check`` report as lines a person reads (``--json`` prints the same dict as is).

    One function over the report dict, so whatever the check adds (e.g. ``warnings``) is shown
    without a change elsewhere: known sections get tables; any other list or value is listed.
    """
    lines: list[str] = []
    source = dict(summary.get("source") or {})
    width = max((len(str(k)) for k in source), default=0)
    for key, value in source.items():
        text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        lines.append(f"{key + ':':<{width + 1}}  {text or 'none'}")
    sections = (
        ("symbols", "bars per symbol", ["symbol", "rows", "first", "last", "gaps", "adjusted_rows", "bars", "fixes"]),
        ("tables", "market series and event tables", ["table", "rows", "dropped_rows", "symbols", "first_available",
                                                       "last_available", "synthetic"]),
    )
    for key, title, columns in sections:
        rows = summary.get(key) or []
        if rows:
            lines += ["", f"{title}:"]
            cols = [c for c in columns if any(c in r for r in rows)]
            cols += [c for c in rows[0] if c not in cols]
            lines += format_table([{**r, **({"synthetic": "yes" if r.get("synthetic") else "no"}
                                            if "synthetic" in r else {})} for r in rows], cols)
    if summary.get("unavailable"):
        lines += ["", "unavailable features (NaN):"]
        for item in summary["unavailable"]:
            where = "" if item.get("scope") == "all" else f" ({item.get('scope')})"
            lines.append(f"  {item['input']}: {item['why']}")
            lines.append(f"    {item['n_features']} feature(s){where}: {', '.join(item['features'])}")
    for key, value in summary.items():  # anything else the check reports, e.g. warnings
        if key in ("source", "symbols", "tables", "unavailable") or value in (None, [], {}, ""):
            continue
        if key == "warnings" and all(isinstance(w, dict) and "check" in w for w in value):
            lines += data_warning_lines(value)
            continue
        lines += ["", f"{key}:"]
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, dict):
                text = item.get("message") or "; ".join(f"{k}: {v}" for k, v in item.items())
            else:
                text = str(item)
            lines.append(f"  - {text}")
    return lines


def data_warning_lines(warnings: list[dict]) -> list[str]:
    """The suspicious-data warnings (:mod:`signals.data.suspicious`), one line each."""
    lines = ["", f"warnings ({len(warnings)}): suspicious but valid data"]
    for w in warnings:
        when = f" from {w['first_date']}" if w.get("first_date") else ""
        rows = f", {w['count']} row(s)" if w.get("count") else ""
        lines.append(f"  {w['symbol']}: {w['check']}{when}{rows}: {w['detail']}")
    return lines


def _fail_if_strict(warnings: list[dict], strict: bool) -> None:
    if strict and warnings:
        names = ", ".join(sorted({f"{w['check']} ({w['symbol']})" for w in warnings}))
        raise DataError(f"data check --strict: {len(warnings)} warning(s) about suspicious data: {names}")


@data.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@symbols_opt("Symbols to export (repeatable or comma-separated; default: all).")
@pass_ctx
def export(ctx: Context, directory: str, symbols: list[str] | None) -> None:
    """Write the configured source (e.g. the sample) as a parquet-layout DIRECTORY."""

    root = export_provider(get_provider(ctx.settings), directory, symbols)
    click.echo(f"wrote parquet layout to {root}")


@data.command("load-sql")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--url", envvar="SA_DATA__SQL_URL", required=True, help="SQLAlchemy URL, e.g. postgresql://user@127.0.0.1:5432/db.")
@click.option("--schema", default=None, help="Database schema to create/fill (default: the connection's).")
def load_sql(directory: str, url: str, schema: str | None) -> None:
    """Load a parquet-layout DIRECTORY into SQL tables (one transaction; replaces those symbols)."""

    counts = load_layout_to_sql(directory, url, schema)
    print_table([{"table": k, "rows": v} for k, v in counts.items()], ["table", "rows"])
