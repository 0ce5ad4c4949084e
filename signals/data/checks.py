"""A whole-source health check: what ``signals data check`` and ``make run`` print.

``warnings`` lists suspicious but valid data (:mod:`signals.data.suspicious`); the CLI prints
them and ``--strict`` turns them into an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signals.data.base import SPY, VIX
from signals.data.schemas import AVAILABILITY_COLUMN, NON_CLOSE_COLUMNS
from signals.data.sources import get_provider
from signals.data.suspicious import suspicious_data
from signals.data.validation import BarReport

if TYPE_CHECKING:
    import pandas as pd

    from signals.settings.model import Settings


def check_source(settings: "Settings", symbols: list[str] | None = None) -> dict[str, Any]:
    provider = get_provider(settings)
    syms = provider.resolve_symbols(symbols)
    reports = provider.check(syms)
    uni = provider.universe().set_index("symbol")
    etfs = {s: str(uni.at[s, "sector_etf"]).upper() for s in syms}
    tables: list[dict[str, Any]] = []
    markets: dict[str, "pd.DataFrame | None"] = {}
    for market in sorted({SPY, VIX, *etfs.values()} - {""}):
        bars = markets[market] = provider.market_bars(market)
        report = provider.market_report(market) if bars is not None else None
        tables.append(
            {
                "table": f"market/{market}",
                "rows": 0 if bars is None else len(bars),
                "dropped_rows": 0 if report is None else report.dropped_missing_close,
                "symbols": 1 if bars is not None else 0,
                "first_available": None if bars is None or bars.empty else bars.index[0].date().isoformat(),
                "last_available": None if bars is None or bars.empty else bars.index[-1].date().isoformat(),
                "synthetic": "market" in provider.synthetic_tables,
            }
        )
    for table, avail in AVAILABILITY_COLUMN.items():
        frame = getattr(provider, table)(syms)
        tables.append(
            {
                "table": table,
                "rows": len(frame),
                "dropped_rows": 0,
                "symbols": int(frame["symbol"].nunique()),
                "first_available": None if frame.empty else frame[avail].min().date().isoformat(),
                "last_available": None if frame.empty else frame[avail].max().date().isoformat(),
                "synthetic": table in provider.synthetic_tables,
            }
        )
    warnings = suspicious_data({s: provider.bars_with_report(s) for s in syms}, provider.universe(), markets,
                               adjusted=provider.adjusted_closes)
    return {
        "source": provider.describe(),
        "symbols": [r.as_dict() for r in reports],
        "tables": tables,
        "missing_inputs": missing_inputs(reports, etfs, markets, tables),
        "warnings": [w.as_dict() for w in warnings],
    }


def missing_inputs(
    reports: list[BarReport],
    etfs: dict[str, str],
    markets: dict[str, "pd.DataFrame | None"],
    tables: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """What the source lacks for these symbols, and why.

    ``inputs`` are the names the feature spec's ``needs`` use (bar fields, "spy", "vix",
    "sector_etf", event table names), so :mod:`signals.features.availability` can name the
    features each costs. ``scope``: "all" rows of the affected symbols, or "partly"
    (outside a benchmark's coverage).
    """
    out: list[dict[str, Any]] = []

    def add(inputs: tuple[str, ...], what: str, why: str, scope: str = "all") -> None:
        out.append({"inputs": list(inputs), "input": what, "why": why, "scope": scope})

    close_only = [r.symbol for r in reports if r.close_only]
    if close_only:
        add(NON_CLOSE_COLUMNS, "open/high/low/volume",
            f"close-only bars for {len(close_only)} of {len(reports)} symbol(s): {', '.join(close_only)}")
    first = min((r.first for r in reports if r.first is not None), default=None)
    last = max((r.last for r in reports if r.last is not None), default=None)
    for name, key in ((SPY, "spy"), (VIX, "vix")):
        add_market = _market_gap(markets.get(name), first, last)
        if add_market:
            add((key,), name, *add_market)
    no_etf = sorted(s for s, etf in etfs.items() if not etf or markets.get(etf) is None)
    if no_etf:
        add(("sector_etf",), "sector ETF", f"no sector ETF bars for {len(no_etf)} symbol(s): {', '.join(no_etf)}")
    for table in AVAILABILITY_COLUMN:
        row = next(t for t in tables if t["table"] == table)
        if not row["rows"]:
            add((table,), table, "the source has no rows for these symbols")
    return out


def _market_gap(bars: "pd.DataFrame | None", first: Any, last: Any) -> tuple[str, str] | None:
    """(why, scope) when a benchmark is absent or covers less than the symbols' bars; None when it covers them."""
    if bars is None or bars.empty:
        return "the source has no such series", "all"
    lo, hi = bars.index[0], bars.index[-1]
    if first is None or (lo <= first and hi >= last):
        return None
    scope = "all" if hi < first or lo > last else "partly"
    return (f"covers {lo.date()} to {hi.date()} only; the bars span {first.date()} to {last.date()}", scope)
