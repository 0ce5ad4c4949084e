"""A whole-source health check: what ``signals data check`` and ``make run`` print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signals.data.providers import SPY, VIX, get_provider
from signals.data.schemas import AVAILABILITY_COLUMN

if TYPE_CHECKING:
    from signals.config import Settings


def check_source(settings: "Settings", symbols: list[str] | None = None) -> dict[str, Any]:
    provider = get_provider(settings)
    syms = provider.resolve_symbols(symbols)
    reports = provider.check(syms)
    uni = provider.universe().set_index("symbol")
    tables: list[dict[str, Any]] = []
    for market in sorted({SPY, VIX, *uni.loc[syms, "sector_etf"]}):
        bars = provider.market_bars(market)
        tables.append(
            {
                "table": f"market/{market}",
                "rows": 0 if bars is None else len(bars),
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
                "symbols": int(frame["symbol"].nunique()),
                "first_available": None if frame.empty else frame[avail].min().date().isoformat(),
                "last_available": None if frame.empty else frame[avail].max().date().isoformat(),
                "synthetic": table in provider.synthetic_tables,
            }
        )
    return {
        "source": provider.describe(),
        "symbols": [r.as_dict() for r in reports],
        "tables": tables,
    }
