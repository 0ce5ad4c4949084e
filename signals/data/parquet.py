"""A directory of Parquet files in the documented layout::

    <root>/
      universe.csv                 symbol, sector, sector_etf
      bars/<SYMBOL>.parquet        date, open, high, low, close, volume[, adj_close]
      market/<SYMBOL>.parquet      same columns; SPY, VIX and the sector ETFs
      fundamentals.parquet         symbol, period_end, filed_at, pe, pb, ps, ev_ebitda, roe,
                                   current_ratio, debt_to_equity, revenue_growth,
                                   earnings_growth, dividend_yield           (optional)
      insider_transactions.parquet symbol, transaction_date, filed_at, shares (+buy/-sell), value (optional)
      short_interest.parquet       symbol, settlement_date, published_at, short_interest,
                                   avg_daily_volume                         (optional)
      synthetic.json               {"synthetic_tables": [...]}: which tables were generated,
                                   not observed (optional; reported like the sample's)

Only ``universe.csv`` and ``bars/`` are required.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa

from signals.core.io import atomic_write_parquet
from signals.data.base import DataProvider
from signals.data.errors import DataError
from signals.data.reading import read_csv, read_parquet, read_parquet_table, reading
from signals.data.schemas import BAR_COLUMNS
from signals.data.validation import BarReport, clean_bar_arrays, validate_bars


def _clean_table(table: pa.Table, symbol: str) -> tuple[pd.DataFrame, BarReport] | None:
    """:func:`clean_bar_arrays` on an Arrow table's columns (None: use the full checks)."""
    names = {n.lower(): i for i, n in enumerate(table.column_names)}
    if len(names) != table.num_columns or "date" not in names:
        return None
    date_col = table.column(names["date"])
    kind = date_col.type
    if not (pa.types.is_timestamp(kind) and kind.tz is None and kind.unit == "ns") or date_col.null_count:
        return None
    columns = {}
    for c in (*BAR_COLUMNS, "adj_close"):
        if c in names:
            col = table.column(names[c])
            if col.null_count or not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
                return None
            columns[c] = col.to_numpy()
    return clean_bar_arrays(date_col.to_numpy(), columns, symbol)


#: Optional file naming the layout's generated tables (see the module docstring).
SYNTHETIC_MARKER = "synthetic.json"


class ParquetProvider(DataProvider):
    name = "parquet"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root).absolute()  # the same files from a worker process started elsewhere
        if not (self.root / "universe.csv").is_file():
            raise DataError(f"parquet data directory {self.root} has no universe.csv (see the README's data layout)")
        if not (self.root / "bars").is_dir():
            raise DataError(f"parquet data directory {self.root} has no bars/ folder")
        self._bars_dir = str(self.root / "bars")
        marker = self.root / SYNTHETIC_MARKER
        if marker.is_file():
            try:
                self.synthetic_tables = frozenset(json.loads(marker.read_text())["synthetic_tables"])
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{marker} is not a JSON object with a 'synthetic_tables' list: {exc}") from exc

    def _raw_universe(self) -> pd.DataFrame:
        uni = read_csv(self.root / "universe.csv", "the universe (universe.csv)", dtype=str)
        uni.columns = [c.strip().lower() for c in uni.columns]
        if "symbol" in uni.columns:
            uni["symbol"] = uni["symbol"].str.strip().str.upper()
        return uni

    def _bars_path(self, symbol: str) -> str:
        # A plain string: building and printing a Path per file cost ~50 us of the ~1 ms a
        # feature build spends per symbol reading it.
        path = os.path.join(self._bars_dir, f"{symbol}.parquet")
        if not os.path.isfile(path):
            raise DataError(f"symbol {symbol!r} is in universe.csv but {path} does not exist")
        return path

    def _raw_bars(self, symbol: str) -> pd.DataFrame:
        return read_parquet(self._bars_path(symbol), f"bars of symbol {symbol!r}")

    def _load_bars(self, symbol: str) -> tuple[pd.DataFrame, BarReport]:
        # Clean files (the usual case) are checked on the Arrow columns directly; anything
        # else goes through pandas and the full checks, which name the problem.
        path = self._bars_path(symbol)
        subject = f"bars of symbol {symbol!r}"
        table = read_parquet_table(path, subject)
        clean = _clean_table(table, symbol)
        if clean is not None:
            return clean
        with reading(subject, path):
            frame = table.to_pandas()
        return validate_bars(frame, symbol)

    def _raw_market(self, symbol: str) -> pd.DataFrame | None:
        path = self.root / "market" / f"{symbol}.parquet"
        return read_parquet(path, f"market series {symbol!r}") if path.is_file() else None

    def _raw_events(self, table: str) -> pd.DataFrame | None:
        path = self.root / f"{table}.parquet"
        return read_parquet(path, f"table {table}") if path.is_file() else None

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "path": str(self.root.resolve())}


def write_layout(root: str | os.PathLike[str], tables: dict) -> Path:
    """Write ``{"universe", "bars": {sym: df}, "market": {sym: df}, <event tables>}`` as a layout.

    An optional ``"synthetic_tables"`` entry (table names) is written to ``synthetic.json``.
    """
    root = Path(root)
    (root / "bars").mkdir(parents=True, exist_ok=True)
    (root / "market").mkdir(parents=True, exist_ok=True)
    tables["universe"].to_csv(root / "universe.csv", index=False)
    for folder in ("bars", "market"):
        for sym, df in tables.get(folder, {}).items():
            has_date = any(str(c).lower() == "date" for c in df.columns)
            frame = df if has_date else df.rename_axis("date").reset_index()
            atomic_write_parquet(frame, root / folder / f"{sym}.parquet", write_page_checksum=True)
    for table in ("fundamentals", "insider_transactions", "short_interest"):
        if table in tables and tables[table] is not None:
            atomic_write_parquet(tables[table], root / f"{table}.parquet", write_page_checksum=True)
    if tables.get("synthetic_tables"):
        marker = {"synthetic_tables": sorted(tables["synthetic_tables"])}
        (root / SYNTHETIC_MARKER).write_text(json.dumps(marker) + "\n")
    return root


def export_provider(provider: DataProvider, root: str | os.PathLike[str], symbols: list[str] | None = None) -> Path:
    """Copy a provider's (already adjusted) data into the parquet layout."""
    syms = provider.resolve_symbols(symbols)
    uni = provider.universe()
    uni = uni[uni["symbol"].isin(syms)]
    market_syms = {"SPY", "VIX", *uni["sector_etf"]}
    market = {m: df for m in sorted(market_syms) if (df := provider.market_bars(m)) is not None}
    return write_layout(
        root,
        {
            "universe": uni,
            "bars": {s: provider.bars(s) for s in syms},
            "market": market,
            "fundamentals": provider.fundamentals(syms),
            "insider_transactions": provider.insider_transactions(syms),
            "short_interest": provider.short_interest(syms),
        },
    )
