"""Fundamental features: valuation, quality and growth as filed, plus sector-relative valuation.

Point in time (see :mod:`signals.features.pit`): a filing is used from the first bar strictly
after its ``filed_at``; a restatement (same period, later ``filed_at``) replaces the original
only from its own filing date. Sector medians are taken over every sector member's latest
filing available before the bar, so they also never see a filing early. A filing older than
``max_age_days`` is treated as missing rather than carried forward for years.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signals.features.arrays import calendar_cached
from signals.features.events import Events, column
from signals.features.pit import NS_PER_DAY, asof, current_record_positions, to_ns
from signals.features.spec import GICS_SECTORS, canonical_sector, category_frame

VALUATION = ("pe", "pb", "ps", "ev_ebitda")
QUALITY_GROWTH = ("roe", "current_ratio", "debt_to_equity", "revenue_growth", "earnings_growth", "dividend_yield")
METRICS = (*VALUATION, *QUALITY_GROWTH)
#: A quarterly filer misses a year of filings before its numbers stop counting.
MAX_FILING_AGE_DAYS = 400


def _current(fundamentals: Events, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(filed_at ns, values) of one symbol's current records, in filing order."""
    filed = to_ns(column(fundamentals, "filed_at"))
    pos = current_record_positions(filed, to_ns(column(fundamentals, "period_end")))
    values = np.empty((len(pos), len(columns)))
    for k, name in enumerate(columns):
        values[:, k] = column(fundamentals, name, np.float64)[pos]
    return filed[pos], values


def sector_median_timeline(
    sector_fundamentals: pd.DataFrame | None, max_age_days: int = MAX_FILING_AGE_DAYS
) -> pd.DataFrame:
    """Sector medians of the valuation ratios as a step function of availability time.

    Row ``b`` holds the median, across the sector's symbols, of each symbol's current record
    filed on or before ``b`` (and not older than ``max_age_days`` at ``b``). A bar ``t`` must
    read the last row strictly before ``t`` (:func:`sector_medians_at`), which gives exactly
    the strictly-after convention. Breakpoints are filing dates and expiry dates, so the
    medians are exact at every bar without knowing the bar calendar.
    """
    empty = pd.DataFrame(columns=list(VALUATION), index=pd.DatetimeIndex([], name="as_of"), dtype="float64")
    if sector_fundamentals is None or sector_fundamentals.empty:
        return empty
    max_age = max_age_days * NS_PER_DAY
    codes, symbols = pd.factorize(sector_fundamentals["symbol"].to_numpy(), sort=True)
    filed_all = to_ns(sector_fundamentals["filed_at"])
    period_all = to_ns(sector_fundamentals["period_end"])
    values_all = sector_fundamentals[list(VALUATION)].to_numpy(dtype=np.float64)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(symbols) + 1))
    breaks = np.unique(np.concatenate([filed_all, filed_all + max_age]))
    # Per symbol, the row of `values_all` current at each break (-1: none).
    source = np.full((len(symbols), len(breaks)), -1, dtype=np.int64)
    for j in range(len(symbols)):
        rows = order[bounds[j] : bounds[j + 1]]
        keep = rows[current_record_positions(filed_all[rows], period_all[rows])]
        filed = filed_all[keep]
        idx = np.searchsorted(filed, breaks, side="right") - 1
        ok = idx >= 0
        ok &= breaks < filed[np.maximum(idx, 0)] + max_age
        source[j, ok] = keep[idx[ok]]
    # The (breaks, metric, symbol) cube in slices of breaks (the median runs over the
    # contiguous last axis): a whole sector's cube is tens of MB of fresh memory per call.
    medians = np.empty((len(breaks), len(VALUATION)))
    padded = np.vstack([values_all, np.full((1, len(VALUATION)), np.nan)])  # row -1: no filing
    for lo in range(0, len(breaks), _MEDIAN_SLICE):
        picked = padded[source[:, lo : lo + _MEDIAN_SLICE]]  # (symbols, slice, metric)
        medians[lo : lo + _MEDIAN_SLICE] = nan_median(np.ascontiguousarray(picked.transpose(1, 2, 0)), axis=2)
    return pd.DataFrame(
        medians,
        index=pd.DatetimeIndex(breaks.astype("datetime64[ns]"), name="as_of"),
        columns=list(VALUATION),
    )


_MEDIAN_SLICE = 512


def nan_median(values: np.ndarray, axis: int) -> np.ndarray:
    """Median ignoring NaN (NaN where every value is NaN); ``np.nanmedian`` without its slow
    masked-array path."""
    ordered = np.sort(values, axis=axis)  # NaN sort last
    count = np.expand_dims((~np.isnan(values)).sum(axis=axis), axis)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0), axis=axis)
    hi = np.take_along_axis(ordered, count // 2, axis=axis)
    out = np.squeeze((lo + hi) / 2.0, axis=axis)
    out[np.squeeze(count, axis=axis) == 0] = np.nan
    return out


def sector_medians_at(timeline: pd.DataFrame | None, bar_ns: np.ndarray) -> np.ndarray:
    """``(n_bars, 4)`` sector medians as known strictly before each bar (NaN before any filing)."""
    if timeline is None or timeline.empty:
        return np.full((len(bar_ns), len(VALUATION)), np.nan)
    table = timeline.to_numpy(dtype=np.float64) if list(timeline.columns) == list(VALUATION) else timeline[list(VALUATION)].to_numpy(dtype=np.float64)
    values, _ = asof(to_ns(timeline.index), table, bar_ns)
    return values


def fundamental_columns(
    bar_ns: np.ndarray,
    fundamentals: Events | None,
    sector_medians: pd.DataFrame | None,
    sector: str | None,
    max_age_days: int = MAX_FILING_AGE_DAYS,
    *,
    calendar: dict | None = None,
) -> dict[str, np.ndarray]:
    """The fundamental feature columns on bar times ``bar_ns`` (see :func:`compute_fundamental`).

    ``calendar``: a dict shared by symbols with exactly these ``bar_ns``; the sector's
    medians and dummies on that calendar are kept there (the same for every member). The
    returned arrays may then be shared: copy before changing them.
    """
    n = len(bar_ns)
    medians, dummies = calendar_cached(
        calendar,
        ("sector", id(sector_medians), sector),
        lambda: (sector_medians_at(sector_medians, bar_ns), _sector_dummies(sector, n)),
    )
    if fundamentals is not None and not fundamentals.empty:
        filed, table = _current(fundamentals, METRICS)
        values, idx = asof(filed, table, bar_ns, max_age_days)
        age = np.where(idx >= 0, (bar_ns - filed[np.maximum(idx, 0)]) / NS_PER_DAY, np.nan)
    else:
        values = np.full((n, len(METRICS)), np.nan)
        age = np.full(n, np.nan)
    cols: dict[str, np.ndarray] = {m: values[:, i] for i, m in enumerate(METRICS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, m in enumerate(VALUATION):
            med = medians[:, i]
            cols[f"{m}_rel_sector"] = np.where(med > 0, values[:, i] / med, np.nan)
    cols["fundamental_age_days"] = age
    cols.update(dummies)
    return cols


def _sector_dummies(sector: str | None, n: int) -> dict[str, np.ndarray]:
    key = canonical_sector(sector)
    return {f"sector_{s}": np.full(n, np.nan if key is None else float(key == s)) for s in (*GICS_SECTORS, "other")}


def compute_fundamental(
    dates: pd.DatetimeIndex,
    fundamentals: pd.DataFrame | None,
    sector_medians: pd.DataFrame | None,
    sector: str | None,
    max_age_days: int = MAX_FILING_AGE_DAYS,
) -> pd.DataFrame:
    """Fundamental features of one symbol on its bar ``dates``.

    ``fundamentals`` holds only this symbol's filings (columns of
    :data:`signals.data.schemas.FUNDAMENTAL_COLUMNS`); ``sector_medians`` comes from
    :func:`sector_median_timeline`; ``sector`` is the provider's label (None: dummies NaN).
    Relative valuations are NaN where the sector median is not positive (a negative median
    P/E has no meaningful ratio).
    """
    cols = fundamental_columns(to_ns(dates), fundamentals, sector_medians, sector, max_age_days)
    return category_frame("fundamental", cols, dates)
