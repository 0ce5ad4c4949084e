"""Column contracts shared by every provider (and by the parquet / SQL layouts)."""

from __future__ import annotations

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")
OPTIONAL_BAR_COLUMNS = ("adj_close",)
#: What close-only bars lack (e.g. a source of adjusted closes only). A symbol has all of
#: them or none: validation turns "none" into NaN columns and flags the symbol close-only.
NON_CLOSE_COLUMNS = ("open", "high", "low", "volume")

UNIVERSE_COLUMNS = ("symbol", "sector", "sector_etf")

FUNDAMENTAL_METRICS = (
    "pe",
    "pb",
    "ps",
    "ev_ebitda",
    "roe",
    "current_ratio",
    "debt_to_equity",
    "revenue_growth",
    "earnings_growth",
    "dividend_yield",
)
FUNDAMENTAL_COLUMNS = ("symbol", "period_end", "filed_at", *FUNDAMENTAL_METRICS)
INSIDER_COLUMNS = ("symbol", "transaction_date", "filed_at", "shares", "value")
SHORT_INTEREST_COLUMNS = ("symbol", "settlement_date", "published_at", "short_interest", "avg_daily_volume")

# Which column of each event table says when the data became *available*: the only
# column point-in-time joins may use.
AVAILABILITY_COLUMN = {
    "fundamentals": "filed_at",
    "insider_transactions": "filed_at",
    "short_interest": "published_at",
}
EVENT_DATE_COLUMNS = {
    "fundamentals": ("period_end", "filed_at"),
    "insider_transactions": ("transaction_date", "filed_at"),
    "short_interest": ("settlement_date", "published_at"),
}
EVENT_COLUMNS = {
    "fundamentals": FUNDAMENTAL_COLUMNS,
    "insider_transactions": INSIDER_COLUMNS,
    "short_interest": SHORT_INTEREST_COLUMNS,
}
