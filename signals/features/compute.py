"""One symbol's full feature frame from its inputs: checks the inputs, runs the five pure
calculators and joins them on the bar dates. No I/O; :mod:`signals.features.store` adds
the provider, the cache and the parallelism around it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signals.data.schemas import EVENT_COLUMNS, NON_CLOSE_COLUMNS
from signals.features.alternative import alternative_columns
from signals.features.arrays import calendar_cached, inf_to_nan
from signals.features.cross_asset import cross_asset_columns
from signals.features.errors import FeatureError
from signals.features.events import EventArrays, Events, column
from signals.features.fundamental import fundamental_columns, sector_median_timeline
from signals.features.pit import to_ns
from signals.features.spec import CATEGORIES, feature_names, names_for, unavailable_rows
from signals.features.technical import absent_bar_fields, ohlcv_arrays, technical_columns
from signals.features.temporal import temporal_columns

# category -> {feature name: column position in the registry-ordered matrix}
_CATEGORY_SLICES: dict[str, dict[str, int]] = {
    cat: {n: feature_names().index(n) for n in names_for(cat)} for cat in CATEGORIES
}


def _check_dated(frame: pd.DataFrame, what: str, columns: tuple[str, ...]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise FeatureError(f"{what}: expected a DataFrame, got {type(frame).__name__}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise FeatureError(f"{what}: expected a DatetimeIndex of bar dates, got {type(frame.index).__name__}")
    if frame.index.tz is not None:
        raise FeatureError(f"{what}: dates must be timezone-naive (got {frame.index.tz})")
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        raise FeatureError(f"{what}: dates must be sorted ascending and unique")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureError(f"{what}: missing column(s) {missing}")


def _check_bars(bars: pd.DataFrame, symbol: str) -> None:
    """Dated bars with a close and either all of open/high/low/volume or none (close-only)."""
    _check_dated(bars, f"bars for {symbol}", ("close",))
    present = [c for c in NON_CLOSE_COLUMNS if c in bars.columns]
    if present and len(present) != len(NON_CLOSE_COLUMNS):
        absent = [c for c in NON_CLOSE_COLUMNS if c not in present]
        raise FeatureError(
            f"bars for {symbol}: missing column(s) {absent} (bars need open/high/low/close/volume, or close only)"
        )


def _events_for(frame: Events | None, table: str, symbol: str) -> Events | None:
    if frame is None:
        return None
    missing = [c for c in EVENT_COLUMNS[table] if c not in frame.columns]
    if missing:
        raise FeatureError(f"{table} for {symbol}: missing column(s) {missing}")
    mine = column(frame, "symbol") == symbol
    if not mine.all():
        frame = frame.take(np.flatnonzero(mine)) if isinstance(frame, EventArrays) else frame[mine]
    return frame


class CalendarMemo:
    """Results that depend only on the bar calendar (benchmarks aligned to it, calendar
    features), shared by the symbols that have exactly that calendar.

    Bounded (most recent ``size`` calendars): symbols listed on different dates have
    different calendars, and each entry holds a dozen arrays of the calendar's length.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: dict[bytes, dict] = {}

    def of(self, bar_ns: np.ndarray) -> dict:
        key = np.ascontiguousarray(bar_ns, dtype=np.int64).tobytes()
        entry = self._entries.pop(key, None)
        if entry is None:
            entry = {}
            while len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry  # most recent last
        return entry


def compute_symbol_features(
    symbol: str,
    bars: pd.DataFrame,
    spy_bars: pd.DataFrame | None = None,
    vix_bars: pd.DataFrame | None = None,
    sector_bars: pd.DataFrame | None = None,
    fundamentals: Events | None = None,
    sector_fundamentals: pd.DataFrame | None = None,
    insider_transactions: Events | None = None,
    short_interest: Events | None = None,
    *,
    sector: str | None = None,
    sector_medians: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every registered feature for ``symbol`` on each of its bar dates (float64, registry order).

    ``sector_fundamentals`` holds the filings of all of the sector's members (including
    ``symbol``); pass a precomputed ``sector_medians`` (from
    :func:`~signals.features.fundamental.sector_median_timeline`) instead to skip recomputing it.
    ``None`` for any optional input means "the source has none": those features are NaN.
    Close-only ``bars`` (open/high/low/volume absent or all NaN) give NaN for every feature
    whose registry entry needs one of those fields, and the same values as full bars for
    the rest.
    """
    dates, values = symbol_feature_matrix(
        symbol, bars, spy_bars, vix_bars, sector_bars, fundamentals, sector_fundamentals, insider_transactions,
        short_interest, sector=sector, sector_medians=sector_medians,
    )
    # values is (features, rows) C-contiguous: its transpose is a frame without a copy.
    return pd.DataFrame(values.T, index=dates, columns=feature_names(), copy=False)


def symbol_feature_matrix(
    symbol: str,
    bars: pd.DataFrame,
    spy_bars: pd.DataFrame | None = None,
    vix_bars: pd.DataFrame | None = None,
    sector_bars: pd.DataFrame | None = None,
    fundamentals: Events | None = None,
    sector_fundamentals: pd.DataFrame | None = None,
    insider_transactions: Events | None = None,
    short_interest: Events | None = None,
    *,
    sector: str | None = None,
    sector_medians: pd.DataFrame | None = None,
    out: np.ndarray | None = None,
    calendars: CalendarMemo | None = None,
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """:func:`compute_symbol_features` as ``(dates, values)``, values ``(features, rows)``.

    Column-major because every consumer wants whole columns: the Parquet cache writes them,
    the panel's block stores them, and the calculators produce them. ``out``, if given, is the
    ``(features, rows)`` array to fill (e.g. the symbol's slot in its build chunk's block); it is
    returned as ``values``. ``calendars`` lets symbols with the same bar dates share the
    calendar-only work.
    """
    _check_bars(bars, symbol)
    for name, frame in (("spy_bars", spy_bars), ("vix_bars", vix_bars), ("sector_bars", sector_bars)):
        if frame is not None:
            _check_dated(frame, name, ("close",))
    fundamentals = _events_for(fundamentals, "fundamentals", symbol)
    insider_transactions = _events_for(insider_transactions, "insider_transactions", symbol)
    short_interest = _events_for(short_interest, "short_interest", symbol)
    if sector_medians is None and sector_fundamentals is not None:
        sector_medians = sector_median_timeline(sector_fundamentals)

    dates = pd.DatetimeIndex(bars.index, name="date")
    bar_ns = to_ns(dates)
    o, h, low, c, v = ohlcv_arrays(bars)
    absent = absent_bar_fields(o, h, low, v)
    names = feature_names()
    if out is None:
        values = np.full((len(names), len(dates)), np.nan)
    elif out.shape != (len(names), len(dates)):
        raise ValueError(f"out has shape {out.shape}, expected {(len(names), len(dates))}")
    else:
        values = out
    if len(dates):
        calendar = None if calendars is None else calendars.of(bar_ns)
        temporal = calendar_cached(calendar, "temporal", lambda: temporal_columns(dates))
        columns = {
            "technical": technical_columns(o, h, low, c, v),
            "fundamental": fundamental_columns(bar_ns, fundamentals, sector_medians, sector, calendar=calendar),
            "cross_asset": cross_asset_columns(bar_ns, c, spy_bars, vix_bars, sector_bars, calendar),
            "alternative": alternative_columns(bar_ns, c, v, insider_transactions, short_interest),
            "temporal": temporal,
        }
        for category, cols in columns.items():
            expected = _CATEGORY_SLICES[category]
            if set(cols) != set(expected):
                raise RuntimeError(f"{category} calculator output does not match the feature spec")
            for name, pos in expected.items():
                values[pos] = cols[name]
        if absent:  # what the calculators made of the NaN fields is not a value (e.g. close_location's 0.5)
            values[unavailable_rows(absent)] = np.nan
        inf_to_nan(values)
    return dates, values
