"""Validation and split adjustment of daily bars and event tables.

Every check either raises :class:`DataValidationError` naming the symbol, the column and
the first bad row, or applies a fix that is safe (sorting, dropping exact duplicate rows)
and records it in the returned report so it is logged and counted, never silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from signals.data.errors import DataValidationError
from signals.data.schemas import BAR_COLUMNS, EVENT_COLUMNS, EVENT_DATE_COLUMNS, NON_CLOSE_COLUMNS, PRICE_COLUMNS

log = logging.getLogger(__name__)

# Two trading days more than this many calendar days apart count as a gap (a long
# weekend plus a holiday is 4 days).
GAP_CALENDAR_DAYS = 5


@dataclass
class BarReport:
    """What validation saw and did for one symbol's bars."""

    symbol: str
    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    gaps: int = 0
    adjusted_rows: int = 0
    fixes: list[str] = field(default_factory=list)
    #: the source has closes only: open/high/low/volume are NaN, and so is every feature needing them
    close_only: bool = False
    #: market series only: rows dropped because their close was missing (holidays; see drop_missing_closes)
    dropped_missing_close: int = 0
    #: the source gave an adj_close column (prices were adjusted by it); without one a split shows as a jump
    has_adj_close: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "rows": self.rows,
            "first": None if self.first is None else self.first.date().isoformat(),
            "last": None if self.last is None else self.last.date().isoformat(),
            "gaps": self.gaps,
            "adjusted_rows": self.adjusted_rows,
            "bars": "close only" if self.close_only else "ohlcv",
            "fixes": "; ".join(self.fixes),
        }


def _row_label(df: pd.DataFrame, mask: np.ndarray | pd.Series) -> str:
    pos = int(np.flatnonzero(np.asarray(mask))[0])
    label = df.index[pos] if "date" not in df.columns else df["date"].iloc[pos]
    if isinstance(label, pd.Timestamp):
        label = label.date().isoformat()
    return f"#{pos} ({label})"


def to_naive_dates(values: pd.Series | pd.Index, symbol: str | None, column: str) -> pd.DatetimeIndex:
    """Parse dates, rejecting mixes of tz-aware and naive values.

    Uniformly tz-aware values keep their local calendar date (a daily bar stamped
    2024-01-02 00:00-05:00 is the 2 January bar), then become naive.
    """
    raw = pd.Series(values)
    if raw.dtype == object:
        kinds = {
            (getattr(v, "tzinfo", None) is not None)
            for v in raw.dropna()
            if isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "tzinfo")
        }
        if len(kinds) > 1:
            aware = raw.map(lambda v: getattr(v, "tzinfo", None) is not None)
            first = int(np.flatnonzero(aware.to_numpy() != aware.iloc[0])[0])
            raise DataValidationError(
                symbol, "mixes timezone-aware and naive timestamps", column, f"#{first} ({raw.iloc[first]})"
            )
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or (raw.dtype.kind == "M"):
        # Already datetimes: to_datetime would only add its per-element cache probing.
        parsed = raw if raw.dtype == "datetime64[ns]" or isinstance(raw.dtype, pd.DatetimeTZDtype) else pd.to_datetime(raw)
    else:
        try:
            parsed = pd.to_datetime(raw, errors="raise")
        except (ValueError, TypeError) as exc:
            bad = pd.to_datetime(raw, errors="coerce").isna() & raw.notna()
            row = f"#{int(np.flatnonzero(bad.to_numpy())[0])} ({raw[bad].iloc[0]!r})" if bad.any() else None
            raise DataValidationError(symbol, f"cannot parse dates: {exc}", column, row) from None
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    if parsed.isna().any():
        raise DataValidationError(symbol, "missing date", column, _row_label(pd.DataFrame(index=raw.index), parsed.isna()))
    return pd.DatetimeIndex(parsed.dt.normalize(), name="date")


def validate_bars(
    df: pd.DataFrame,
    symbol: str,
    *,
    require_volume: bool = True,
    adjust: bool = True,
) -> tuple[pd.DataFrame, BarReport]:
    """Return clean, split-adjusted bars indexed by a naive ``date`` index, and a report.

    ``df`` has a ``date`` column (or a DatetimeIndex) and open/high/low/close/volume,
    optionally ``adj_close``. When ``adj_close`` is present the prices are scaled by
    ``adj_close / close`` and volume inversely, so splits and dividends are not returns.

    Close-only bars (``date``, ``close``[, ``adj_close``]; open/high/low/volume absent or
    entirely empty) are accepted too: those four come back as NaN columns and the report
    says ``close_only``. Having some of the four but not all stays an error, and so does a
    column with some values missing.
    """
    if df is None or len(df) == 0:
        raise DataValidationError(symbol, "no rows (empty frame)")
    clean = _clean_bars_fast(df, symbol, require_volume=require_volume, adjust=adjust)
    if clean is not None:
        return clean
    return _validate_bars_full(df, symbol, require_volume=require_volume, adjust=adjust)


def _validate_bars_full(
    df: pd.DataFrame, symbol: str, *, require_volume: bool, adjust: bool
) -> tuple[pd.DataFrame, BarReport]:
    """Every check with a named error, and the safe fixes (sort, drop exact duplicates)."""
    report = BarReport(symbol=symbol)
    frame = df.copy()
    frame.columns = [str(c).lower() for c in frame.columns]  # before looking for "date": "Date" is common
    if "date" not in frame.columns:
        frame = frame.reset_index().rename(columns={frame.index.name or "index": "date"})
        frame.columns = [str(c).lower() for c in frame.columns]
    report.close_only = has_close_only(frame)
    if report.close_only:
        frame = frame.drop(columns=[c for c in NON_CLOSE_COLUMNS if c in frame.columns])
        needed = ["date", "close"]
    else:
        needed = ["date", *(BAR_COLUMNS if require_volume else PRICE_COLUMNS)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        expected = "open/high/low/close/volume" if require_volume else "open/high/low/close"
        raise DataValidationError(
            symbol,
            f"missing required column(s) {missing}; have {list(frame.columns)} (bars need {expected}, or close only)",
            missing[0],
        )
    if "volume" not in frame.columns and not report.close_only:
        frame["volume"] = 0.0

    dates = to_naive_dates(frame["date"], symbol, "date")
    frame = frame.drop(columns="date")
    frame.index = dates

    numeric_cols = [c for c in (*BAR_COLUMNS, "adj_close") if c in frame.columns]
    for col in numeric_cols:
        if frame[col].dtype.kind in "fiu":
            # Fast path for the usual numeric column: one numpy pass; any NaN/inf falls
            # through to the checks below, which name the column and row.
            arr = frame[col].to_numpy(dtype=np.float64)
            if np.isfinite(arr).all():
                frame[col] = arr
                continue
        converted = pd.to_numeric(frame[col], errors="coerce")
        bad = converted.isna() & frame[col].notna()
        if bad.any():
            raise DataValidationError(
                symbol, f"non-numeric value {frame[col][bad].iloc[0]!r}", col, _row_label(frame, bad)
            )
        if converted.isna().any():
            raise DataValidationError(symbol, "missing value (NaN)", col, _row_label(frame, converted.isna()))
        frame[col] = converted.astype("float64")
        if not np.isfinite(frame[col].to_numpy()).all():
            raise DataValidationError(symbol, "infinite value", col, _row_label(frame, ~np.isfinite(frame[col])))

    for col in (c for c in (*PRICE_COLUMNS, "adj_close") if c in frame.columns):
        bad = frame[col] <= 0
        if bad.any():
            raise DataValidationError(symbol, f"non-positive price {frame[col][bad].iloc[0]}", col, _row_label(frame, bad))
    if not report.close_only:
        bad = frame["volume"] < 0
        if bad.any():
            raise DataValidationError(symbol, "negative volume", "volume", _row_label(frame, bad))
        bad = frame["high"] < frame["low"]
        if bad.any():
            raise DataValidationError(symbol, "high is below low", "high", _row_label(frame, bad))

    if not frame.index.is_monotonic_increasing:
        order = np.argsort(frame.index.values, kind="stable")
        n_moved = int((order != np.arange(len(order))).sum())
        frame = frame.iloc[order]
        msg = f"sorted unsorted dates ({n_moved} rows moved)"
        report.fixes.append(msg)
        log.warning("%s: %s", symbol, msg)
    dup = frame.index.duplicated(keep="first")
    if dup.any():
        cols = list(frame.columns)
        exact = frame.reset_index().duplicated(keep="first").to_numpy()
        conflicting = dup & ~exact
        if conflicting.any():
            raise DataValidationError(
                symbol, "duplicate date with different values", "date", _row_label(frame, conflicting)
            )
        frame = frame[~dup][cols]
        msg = f"dropped {int(dup.sum())} exact duplicate row(s)"
        report.fixes.append(msg)
        log.warning("%s: %s", symbol, msg)

    report.has_adj_close = "adj_close" in frame.columns
    if adjust and "adj_close" in frame.columns:
        factor = frame["adj_close"] / frame["close"]
        report.adjusted_rows = int((~np.isclose(factor, 1.0, rtol=1e-9, atol=0)).sum())
        for col in (c for c in PRICE_COLUMNS if c in frame.columns):
            frame[col] = frame[col] * factor
        if "volume" in frame.columns:
            frame["volume"] = frame["volume"] / factor
    if report.close_only:
        frame = frame.assign(**{c: np.nan for c in NON_CLOSE_COLUMNS})
    frame = frame[list(BAR_COLUMNS)]

    report.rows = len(frame)
    report.first, report.last = frame.index[0], frame.index[-1]
    if len(frame) > 1:
        report.gaps = int((np.diff(frame.index.values).astype("timedelta64[D]").astype(int) > GAP_CALENDAR_DAYS).sum())
    return frame, report


def drop_missing_closes(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The one NaN policy for market series (SPY, VIX, sector ETFs), in every provider.

    A benchmark's source often carries a row for every weekday with an empty close on its
    holidays (arch's VIX does): such a row is no bar, so it is dropped and counted rather than
    rejected. Stock bars keep the strict rule (a missing value is an error naming the row),
    because a hole in a traded symbol's prices is a data fault, not a calendar.
    """
    close = next((c for c in df.columns if str(c).lower() == "close"), None)
    if close is None:
        return df, 0
    missing = df[close].isna().to_numpy()
    n = int(missing.sum())
    return (df[~missing], n) if n else (df, 0)


def has_close_only(frame: pd.DataFrame) -> bool:
    """True when ``frame`` (lower-case columns) has a close but no value at all in open/high/low/volume.

    An entirely empty column counts as absent: a parquet file or SQL table written from
    close-only bars carries the four columns as NaN / NULL.
    """
    if "close" not in frame.columns:
        return False
    return all(c not in frame.columns or bool(frame[c].isna().all()) for c in NON_CLOSE_COLUMNS)


_DAY_NS = 86_400 * 10**9


def _clean_bars_fast(
    df: pd.DataFrame, symbol: str, *, require_volume: bool, adjust: bool
) -> tuple[pd.DataFrame, BarReport] | None:
    """:func:`validate_bars` for the usual input (clean, sorted, midnight dates) in numpy only.

    Returns None as soon as anything needs the full path (a fix to apply, an error to name,
    an unusual dtype); otherwise exactly what the full path returns, which a test checks.
    Worth it because the feature store validates every symbol's bars on every build.
    """
    lower = {str(c).lower(): c for c in df.columns}
    if len(lower) != len(df.columns):
        return None
    if "date" in lower:
        raw_dates = df[lower["date"]].to_numpy()
    elif isinstance(df.index, pd.DatetimeIndex):
        raw_dates = df.index.to_numpy()
    else:
        return None
    columns = {c: df[lower[c]].to_numpy() for c in (*BAR_COLUMNS, "adj_close") if c in lower}
    return clean_bar_arrays(raw_dates, columns, symbol, require_volume=require_volume, adjust=adjust)


def clean_bar_arrays(
    raw_dates: np.ndarray, columns: dict[str, np.ndarray], symbol: str, *, require_volume: bool = True, adjust: bool = True
) -> tuple[pd.DataFrame, BarReport] | None:
    """The fast path on plain arrays (dates; lower-case open/high/low/close/volume[/adj_close],
    or close[/adj_close] alone for close-only bars).

    Providers that read columnar data (Parquet) call it before building any DataFrame and
    fall back to :func:`validate_bars` when it returns None.
    """
    if raw_dates.dtype != np.dtype("datetime64[ns]") or len(raw_dates) == 0:
        return None
    ns = raw_dates.view("int64")
    if (ns % _DAY_NS).any() or (len(ns) > 1 and not (np.diff(ns) > 0).all()) or (ns == np.iinfo(np.int64).min).any():
        return None  # time of day, unsorted/duplicate or missing dates: the full path fixes or names them
    close_only = "close" in columns and not any(c in columns for c in NON_CLOSE_COLUMNS)
    needed = ("close",) if close_only else BAR_COLUMNS if require_volume else PRICE_COLUMNS
    if any(c not in columns for c in needed):
        return None
    cols: dict[str, np.ndarray] = {}
    for c in (*BAR_COLUMNS, "adj_close"):
        if c not in columns:
            continue
        arr = columns[c]
        if arr.dtype.kind not in "fiu":
            return None
        arr = arr.astype(np.float64, copy=False)
        if not np.isfinite(arr).all():
            return None
        cols[c] = arr
    if "volume" not in cols and not close_only:
        cols["volume"] = np.zeros(len(ns))
    for c in (*PRICE_COLUMNS, "adj_close"):
        if c in cols and not (cols[c] > 0).all():
            return None
    if not close_only and ((cols["volume"] < 0).any() or (cols["high"] < cols["low"]).any()):
        return None
    report = BarReport(symbol=symbol, close_only=close_only, has_adj_close="adj_close" in cols)
    if adjust and "adj_close" in cols:
        factor = cols["adj_close"] / cols["close"]
        report.adjusted_rows = int((~np.isclose(factor, 1.0, rtol=1e-9, atol=0)).sum())
        for c in PRICE_COLUMNS:
            if c in cols:
                cols[c] = cols[c] * factor
        if "volume" in cols:
            cols["volume"] = cols["volume"] / factor
    block = np.empty((len(BAR_COLUMNS), len(ns)))
    for k, c in enumerate(BAR_COLUMNS):
        block[k] = cols[c] if c in cols else np.nan
    index = pd.DatetimeIndex(raw_dates, name="date")
    frame = pd.DataFrame(block.T, index=index, columns=list(BAR_COLUMNS), copy=False)
    report.rows = len(frame)
    report.first, report.last = index[0], index[-1]
    if len(ns) > 1:
        report.gaps = int((np.diff(ns) > GAP_CALENDAR_DAYS * _DAY_NS).sum())
    return frame, report


def slice_dates(df: pd.DataFrame, symbol: str, start: object = None, end: object = None) -> pd.DataFrame:
    """Inclusive date slice; an empty result is an error naming the range."""
    if start is None and end is None:
        return df
    lo = pd.Timestamp(start) if start is not None else None
    hi = pd.Timestamp(end) if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise DataValidationError(symbol, f"start {lo.date()} is after end {hi.date()}")
    out = df.loc[lo:hi]
    if out.empty:
        raise DataValidationError(
            symbol,
            f"no data between {lo.date() if lo is not None else 'the beginning'} and "
            f"{hi.date() if hi is not None else 'the end'} (data covers {df.index[0].date()} to {df.index[-1].date()})",
        )
    return out


def validate_events(df: pd.DataFrame | None, table: str) -> pd.DataFrame:
    """Check an event table (fundamentals, insider_transactions, short_interest).

    Dates become naive timestamps; rows are sorted by (symbol, availability date). An
    availability date earlier than its event date is impossible and rejected.
    """
    cols = EVENT_COLUMNS[table]
    if df is None:
        return empty_events(table)
    frame = df.copy()
    frame.columns = [str(c).lower() for c in frame.columns]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataValidationError(None, f"{table}: missing required column(s) {missing}", missing[0])
    if frame.empty:
        return empty_events(table)
    event_col, avail_col = EVENT_DATE_COLUMNS[table]
    for col in (event_col, avail_col):
        frame[col] = to_naive_dates(frame[col], None, f"{table}.{col}").to_numpy()
    frame["symbol"] = frame["symbol"].astype(str)
    for col in cols:
        if col in ("symbol", event_col, avail_col):
            continue
        converted = pd.to_numeric(frame[col], errors="coerce")
        bad = converted.isna() & frame[col].notna()
        if bad.any():
            raise DataValidationError(
                str(frame["symbol"][bad].iloc[0]), f"{table}: non-numeric value {frame[col][bad].iloc[0]!r}", col,
                f"#{int(np.flatnonzero(bad.to_numpy())[0])}",
            )
        frame[col] = converted.astype("float64")
    early = frame[avail_col] < frame[event_col]
    if early.any():
        pos = int(np.flatnonzero(early.to_numpy())[0])
        raise DataValidationError(
            str(frame["symbol"].iloc[pos]), f"{table}: {avail_col} is before {event_col}", avail_col, f"#{pos}"
        )
    return frame[list(cols)].sort_values(["symbol", avail_col, event_col], kind="stable").reset_index(drop=True)


def empty_events(table: str) -> pd.DataFrame:
    cols = EVENT_COLUMNS[table]
    dates = set(EVENT_DATE_COLUMNS[table])
    return pd.DataFrame(
        {c: pd.Series(dtype="datetime64[ns]" if c in dates else ("object" if c == "symbol" else "float64")) for c in cols}
    )
