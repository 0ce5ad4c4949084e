"""The one small interface every data source implements, and the factory that picks one."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Iterable

import pandas as pd

from signals.data.errors import DataValidationError, UnknownSymbolError
from signals.data.reading import reading
from signals.data.schemas import UNIVERSE_COLUMNS
from signals.data.validation import BarReport, drop_missing_closes, slice_dates, validate_bars, validate_events

log = logging.getLogger(__name__)

SPY = "SPY"
VIX = "VIX"


class DataProvider(ABC):
    """Daily bars plus optional event tables, validated and split-adjusted.

    Subclasses implement the ``_raw_*`` readers; this base class owns validation,
    adjustment, date slicing, the unknown-symbol check, the market series' NaN policy and
    the read-error guard (an unreadable source is a :class:`~signals.data.errors.DataReadError`
    naming the symbol or table), so every source behaves alike.
    """

    name: str = "abstract"
    #: tables whose contents are generated, not observed (labelled wherever logged): event
    #: tables, or also "bars"/"market" for a wholly synthetic layout
    synthetic_tables: frozenset[str] = frozenset()
    #: the source's closes are split-adjusted already (no adj_close column needed): a large one-day
    #: move is then a move, not a likely unadjusted split (see signals.data.suspicious)
    adjusted_closes: bool = False

    def __init__(self) -> None:
        self._bars_cache: dict[str, tuple[pd.DataFrame, BarReport]] = {}
        self._market_cache: dict[str, tuple[pd.DataFrame, BarReport]] = {}
        self._events_cache: dict[str, pd.DataFrame] = {}
        self._universe: pd.DataFrame | None = None
        self._known: frozenset[str] | None = None  # the universe's symbols, for membership checks

    def __getstate__(self) -> dict[str, object]:
        """A provider travels to another process as how to read its source, not what it has read."""
        state = dict(self.__dict__)
        state.update(_bars_cache={}, _market_cache={}, _events_cache={})
        return state

    # --------------------------------------------------------------- raw readers
    @abstractmethod
    def _raw_universe(self) -> pd.DataFrame: ...

    @abstractmethod
    def _raw_bars(self, symbol: str) -> pd.DataFrame: ...

    @abstractmethod
    def _raw_market(self, symbol: str) -> pd.DataFrame | None: ...

    @abstractmethod
    def _raw_events(self, table: str) -> pd.DataFrame | None: ...

    # --------------------------------------------------------------- public API
    def universe(self) -> pd.DataFrame:
        """Columns symbol, sector, sector_etf; one row per tradable symbol (read once, then cached)."""
        if self._universe is None:
            self._universe = self._validated_universe()
        return self._universe.copy()

    def _validated_universe(self) -> pd.DataFrame:
        with reading("the universe"):
            uni = self._raw_universe()
        missing = [c for c in UNIVERSE_COLUMNS if c not in uni.columns]
        if missing:
            raise DataValidationError(None, f"universe: missing required column(s) {missing}", missing[0])
        if uni.empty:
            raise DataValidationError(None, "universe: no symbols (empty frame)")
        dup = uni["symbol"].duplicated()
        if dup.any():
            raise DataValidationError(str(uni["symbol"][dup].iloc[0]), "universe: duplicate symbol", "symbol")
        uni = uni[list(UNIVERSE_COLUMNS)].reset_index(drop=True)
        # No sector ETF is a blank, never the string "nan": its features are NaN, not an unknown symbol.
        uni["sector_etf"] = uni["sector_etf"].fillna("").astype(str).str.strip()
        return uni

    def symbols(self) -> list[str]:
        if self._universe is None:
            self.universe()
        return list(self._universe["symbol"])  # type: ignore[index]

    def resolve_symbols(self, requested: Iterable[str] | None) -> list[str]:
        """The requested symbols (upper-cased) after checking each exists; all if none given."""
        known = self.symbols()
        if not requested:
            return known
        out = []
        for sym in requested:
            s = sym.strip().upper()
            if s not in known:
                raise UnknownSymbolError(s, known)
            out.append(s)
        return out

    def sector_of(self, symbol: str) -> tuple[str, str]:
        uni = self.universe().set_index("symbol")
        if symbol not in uni.index:
            raise UnknownSymbolError(symbol, list(uni.index))
        row = uni.loc[symbol]
        return str(row["sector"]), str(row["sector_etf"])

    def _load_bars(self, symbol: str) -> tuple[pd.DataFrame, BarReport]:
        """Read and validate one symbol's bars; columnar providers override it with a faster read."""
        return validate_bars(self._raw_bars(symbol), symbol)

    def bars_with_report(self, symbol: str) -> tuple[pd.DataFrame, BarReport]:
        symbol = symbol.upper()
        if symbol not in self._bars_cache:
            if self._known is None:
                self._known = frozenset(self.symbols())
            if symbol not in self._known:
                raise UnknownSymbolError(symbol, self.symbols())
            with reading(f"bars of symbol {symbol!r}"):
                self._bars_cache[symbol] = self._load_bars(symbol)
        return self._bars_cache[symbol]

    def bars(self, symbol: str, start: object = None, end: object = None) -> pd.DataFrame:
        """Validated, split-adjusted daily bars (open, high, low, close, volume) by date.

        Close-only symbols have NaN open/high/low/volume (their report says ``close_only``).
        """
        frame, _ = self.bars_with_report(symbol)
        return slice_dates(frame, symbol.upper(), start, end).copy()

    def market_bars(self, symbol: str, start: object = None, end: object = None) -> pd.DataFrame | None:
        """Benchmark bars (SPY, VIX, sector ETFs); ``None`` when the source has none (or no name is given).

        Rows with no close (holidays) are dropped and counted, in every provider: see
        :func:`~signals.data.validation.drop_missing_closes` and :meth:`market_report`.
        """
        symbol = symbol.upper()
        if not symbol:
            return None
        if symbol not in self._market_cache:
            with reading(f"market series {symbol!r}"):
                raw = self._raw_market(symbol)
            if raw is None:
                return None
            raw, dropped = drop_missing_closes(raw)
            frame, report = validate_bars(raw, symbol, require_volume=False)
            if dropped:
                report.dropped_missing_close = dropped
                msg = f"dropped {dropped} row(s) with no close (market holidays)"
                report.fixes.append(msg)
                log.info("market series %s: %s", symbol, msg)
            self._market_cache[symbol] = (frame, report)
        frame = self._market_cache[symbol][0]
        lo = pd.Timestamp(start) if start is not None else None
        hi = pd.Timestamp(end) if end is not None else None
        return frame.loc[lo:hi].copy()

    def market_report(self, symbol: str) -> BarReport | None:
        """What validation did to a market series (rows, fixes, dropped holiday rows); None without one."""
        if self.market_bars(symbol) is None:
            return None
        return self._market_cache[symbol.upper()][1]

    def _events(self, table: str, symbols: Iterable[str] | None) -> pd.DataFrame:
        if table not in self._events_cache:
            with reading(f"table {table}"):
                raw = self._raw_events(table)
            self._events_cache[table] = validate_events(raw, table)
        frame = self._events_cache[table]
        if symbols is not None:
            frame = frame[frame["symbol"].isin([s.upper() for s in symbols])]
        return frame.reset_index(drop=True).copy()

    def fundamentals(self, symbols: Iterable[str] | None = None) -> pd.DataFrame:
        return self._events("fundamentals", symbols)

    def insider_transactions(self, symbols: Iterable[str] | None = None) -> pd.DataFrame:
        return self._events("insider_transactions", symbols)

    def short_interest(self, symbols: Iterable[str] | None = None) -> pd.DataFrame:
        return self._events("short_interest", symbols)

    def describe(self) -> dict[str, object]:
        """Where the data comes from, for logs and MLflow dataset sources."""
        return {"provider": self.name, "synthetic_tables": sorted(self.synthetic_tables)}

    def check(self, symbols: Iterable[str] | None = None) -> list[BarReport]:
        """Validate every requested symbol; raises on the first bad one."""
        return [self.bars_with_report(s)[1] for s in self.resolve_symbols(symbols)]


def data_source_description(provider: DataProvider, symbols: Iterable[str], start: object, end: object) -> dict[str, object]:
    """Where a panel comes from (provider, symbols, window, synthetic tables): logged with every dataset."""
    desc = dict(provider.describe())
    synthetic = list(desc.get("synthetic_tables") or [])
    desc.update(
        symbols=",".join(symbols),
        start=str(start) if start is not None else "",
        end=str(end) if end is not None else "",
        synthetic=("synthetic tables: " + ", ".join(synthetic)) if synthetic else "none",
    )
    return desc
