"""A SQL data provider (PostgreSQL / TimescaleDB, or anything SQLAlchemy speaks) reading the
same tables as the parquet layout, and the loader behind ``signals data load-sql``.

Schema (what an ingestion job fills; ``bars`` and ``market_bars`` can be TimescaleDB
hypertables on ``date``)::

    universe(symbol PK, sector, sector_etf)
    bars(symbol, date, open NULL, high NULL, low NULL, close, volume NULL, adj_close NULL)  PK (symbol, date)
    market_bars(same columns)                                                              PK (symbol, date)
    fundamentals(symbol, period_end, filed_at, pe, pb, ps, ev_ebitda, roe, current_ratio,
                 debt_to_equity, revenue_growth, earnings_growth, dividend_yield)
    insider_transactions(symbol, transaction_date, filed_at, shares, value)
    short_interest(symbol, settlement_date, published_at, short_interest, avg_daily_volume)

Event tables are optional (missing table = no events). The availability columns
(``filed_at``, ``published_at``) are the ones point-in-time joins use.

Close-only symbols (a source of closes only) store NULL open/high/low/volume; a symbol has
all four or none (validation enforces it). Tables created before close-only bars existed
declared those columns NOT NULL; loading close-only symbols into them needs, once per table::

    ALTER TABLE bars ALTER COLUMN open DROP NOT NULL, ALTER COLUMN high DROP NOT NULL,
      ALTER COLUMN low DROP NOT NULL, ALTER COLUMN volume DROP NOT NULL;   -- and market_bars
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from signals.data.base import DataProvider
from signals.data.errors import DataError
from signals.data.parquet import ParquetProvider
from signals.data.reading import read_parquet
from signals.data.schemas import (
    BAR_COLUMNS,
    EVENT_COLUMNS,
    EVENT_DATE_COLUMNS,
    FUNDAMENTAL_METRICS,
    NON_CLOSE_COLUMNS,
    UNIVERSE_COLUMNS,
)
from signals.data.validation import drop_missing_closes, has_close_only

# close is always there; the other four are NULL for close-only symbols
_BAR_DDL = ", ".join(f"{c} DOUBLE PRECISION{'' if c in NON_CLOSE_COLUMNS else ' NOT NULL'}" for c in BAR_COLUMNS)


def schema_ddl(schema: str | None = None) -> list[str]:
    """CREATE TABLE statements for the layout (idempotent)."""
    q = f"{schema}." if schema else ""
    metrics = ", ".join(f"{m} DOUBLE PRECISION" for m in FUNDAMENTAL_METRICS)
    stmts = [f"CREATE SCHEMA IF NOT EXISTS {schema}"] if schema else []
    stmts += [
        f"CREATE TABLE IF NOT EXISTS {q}universe (symbol TEXT PRIMARY KEY, sector TEXT NOT NULL, sector_etf TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {q}bars (symbol TEXT NOT NULL, date DATE NOT NULL, {_BAR_DDL}, "
        "adj_close DOUBLE PRECISION, PRIMARY KEY (symbol, date))",
        f"CREATE TABLE IF NOT EXISTS {q}market_bars (symbol TEXT NOT NULL, date DATE NOT NULL, {_BAR_DDL}, "
        "adj_close DOUBLE PRECISION, PRIMARY KEY (symbol, date))",
        f"CREATE TABLE IF NOT EXISTS {q}fundamentals (symbol TEXT NOT NULL, period_end DATE NOT NULL, "
        f"filed_at TIMESTAMP NOT NULL, {metrics})",
        f"CREATE TABLE IF NOT EXISTS {q}insider_transactions (symbol TEXT NOT NULL, transaction_date DATE NOT NULL, "
        "filed_at TIMESTAMP NOT NULL, shares DOUBLE PRECISION NOT NULL, value DOUBLE PRECISION)",
        f"CREATE TABLE IF NOT EXISTS {q}short_interest (symbol TEXT NOT NULL, settlement_date DATE NOT NULL, "
        "published_at TIMESTAMP NOT NULL, short_interest DOUBLE PRECISION NOT NULL, avg_daily_volume DOUBLE PRECISION)",
        f"CREATE INDEX IF NOT EXISTS fundamentals_sym_filed ON {q}fundamentals (symbol, filed_at)",
        f"CREATE INDEX IF NOT EXISTS insider_sym_filed ON {q}insider_transactions (symbol, filed_at)",
        f"CREATE INDEX IF NOT EXISTS short_sym_pub ON {q}short_interest (symbol, published_at)",
    ]
    return stmts


def _engine(url: str):
    from sqlalchemy import create_engine

    return create_engine(url, pool_pre_ping=True)


class SqlProvider(DataProvider):
    name = "sql"

    def __init__(self, url: str, schema: str | None = None) -> None:
        super().__init__()
        if not url:
            raise DataError("data.sql_url is empty")
        self.url = url
        self.schema = schema or None
        self.engine = _engine(url)

    def _table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def _read(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect() as conn:
                return pd.read_sql(text(sql), conn, params=params)
        except SQLAlchemyError as exc:
            raise DataError(f"SQL data source {self.engine.url.render_as_string(hide_password=True)}: {exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0]}") from None

    def _has_table(self, name: str) -> bool:
        from sqlalchemy import inspect

        return inspect(self.engine).has_table(name, schema=self.schema)

    def _raw_universe(self) -> pd.DataFrame:
        return self._read(f"SELECT {', '.join(UNIVERSE_COLUMNS)} FROM {self._table('universe')} ORDER BY symbol")

    def _bars_from(self, table: str, symbol: str) -> pd.DataFrame:
        return self._read(
            f"SELECT date, {', '.join(BAR_COLUMNS)}, adj_close FROM {self._table(table)} "
            "WHERE symbol = :symbol ORDER BY date",
            {"symbol": symbol},
        )

    def _raw_bars(self, symbol: str) -> pd.DataFrame:
        df = self._bars_from("bars", symbol)
        if df.empty:
            raise DataError(f"symbol {symbol!r} is in the universe table but has no rows in bars")
        return df if df["adj_close"].notna().any() else df.drop(columns="adj_close")

    def _raw_market(self, symbol: str) -> pd.DataFrame | None:
        if not self._has_table("market_bars"):
            return None
        df = self._bars_from("market_bars", symbol)
        if df.empty:
            return None
        return df if df["adj_close"].notna().any() else df.drop(columns="adj_close")

    def _raw_events(self, table: str) -> pd.DataFrame | None:
        if not self._has_table(table):
            return None
        return self._read(f"SELECT {', '.join(EVENT_COLUMNS[table])} FROM {self._table(table)}")

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "url": self.engine.url.render_as_string(hide_password=True), "schema": self.schema}


def _null_rejected(table: str, exc: Exception) -> Exception:
    """A table from before close-only bars rejects their NULLs: say how to fix it (other errors pass)."""
    if "null" not in str(getattr(exc, "orig", exc)).lower():
        return exc
    drop = ", ".join(f"ALTER COLUMN {c} DROP NOT NULL" for c in NON_CLOSE_COLUMNS)
    return DataError(
        f"table {table} rejects the NULL open/high/low/volume of close-only bars (it was created before "
        f"they existed); run once: ALTER TABLE {table} {drop}; nothing was loaded"
    )


def load_layout_to_sql(root: str | os.PathLike[str], url: str, schema: str | None = None) -> dict[str, int]:
    """Load a parquet-layout directory into SQL, replacing the rows of the symbols it holds.

    Everything happens in one transaction: a failure leaves the database as it was.
    Rows are validated first (through :class:`ParquetProvider`), so bad data never lands.
    """
    from sqlalchemy import bindparam, text
    from sqlalchemy.exc import IntegrityError


    src = ParquetProvider(root)
    universe = src.universe()
    symbols = list(universe["symbol"])
    bars = []
    for sym in symbols:
        raw = src._raw_bars(sym)
        src.bars(sym)  # validate (raises with symbol/column/row on bad data)
        frame = raw if "date" in raw.columns else raw.rename_axis("date").reset_index()
        bars.append(frame.assign(symbol=sym))
    market_dir = Path(root) / "market"
    market = []
    for path in sorted(market_dir.glob("*.parquet")) if market_dir.is_dir() else []:
        raw, _ = drop_missing_closes(read_parquet(path, f"market series {path.stem!r}"))  # holidays: not bars
        src.market_bars(path.stem)  # validate
        frame = raw if "date" in raw.columns else raw.rename_axis("date").reset_index()
        market.append(frame.assign(symbol=path.stem))
    events = {t: src._events(t, None) for t in EVENT_COLUMNS}

    def prep(df: pd.DataFrame) -> pd.DataFrame:
        """One symbol's validated rows in the table's columns (one symbol: close-only or not is per symbol)."""
        out = df.copy()
        out.columns = [str(c).lower() for c in out.columns]
        # validated: a full symbol can only lack volume (a market series; 0 as the provider reads it)
        absent = np.nan if has_close_only(out) else 0.0
        for c in BAR_COLUMNS:
            if c not in out.columns:
                out[c] = absent
        if "adj_close" not in out.columns:
            out["adj_close"] = np.nan
        out["date"] = pd.to_datetime(out["date"]).dt.tz_localize(None).dt.date
        return out[["symbol", "date", *BAR_COLUMNS, "adj_close"]]

    q = f"{schema}." if schema else ""
    counts: dict[str, int] = {}
    engine = _engine(url)
    with engine.begin() as conn:
        for stmt in schema_ddl(schema):
            conn.execute(text(stmt))
        market_syms = [m["symbol"].iloc[0] for m in market]
        for table, syms in (("universe", symbols), ("bars", symbols), ("market_bars", market_syms),
                            *((t, symbols) for t in EVENT_COLUMNS)):
            if syms:
                conn.execute(
                    text(f"DELETE FROM {q}{table} WHERE symbol IN :syms").bindparams(bindparam("syms", expanding=True)),
                    {"syms": list(syms)},
                )
        universe.to_sql("universe", conn, schema=schema, if_exists="append", index=False)
        counts["universe"] = len(universe)
        frames = {"bars": pd.concat([prep(f) for f in bars], ignore_index=True) if bars else None,
                  "market_bars": pd.concat([prep(f) for f in market], ignore_index=True) if market else None}
        for table, out in frames.items():
            if out is not None:
                try:
                    out.to_sql(table, conn, schema=schema, if_exists="append", index=False, chunksize=5000, method="multi")
                except IntegrityError as exc:
                    raise _null_rejected(f"{q}{table}", exc) from None
                counts[table] = len(out)
        for table, frame in events.items():
            if not frame.empty:
                frame = frame.copy()
                event_col, _ = EVENT_DATE_COLUMNS[table]
                frame[event_col] = frame[event_col].dt.date
                frame.to_sql(table, conn, schema=schema, if_exists="append", index=False, chunksize=5000, method="multi")
            counts[table] = len(frame)
    engine.dispose()
    return counts
