"""Alternative-data features: insider trading (Form 4) and short interest.

Point in time (see :mod:`signals.features.pit`): insider trades count from the first bar
strictly after ``filed_at`` (not the transaction date); short interest is used from the
first bar strictly after ``published_at`` (not the settlement date). A republished figure
for the same settlement date replaces the earlier one from its own publication date.

Scale: share and dollar amounts are divided by the symbol's trailing average volume and
dollar volume (63 bars, about the 90-day window), so the features pool across symbols.
Share counts are assumed to be in the same split-adjusted units as the bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from signals.features.arrays import ratio as _ratio
from signals.features.events import Events, column
from signals.features.pit import asof, current_record_positions, to_ns, window_bounds
from signals.features.spec import category_frame

INSIDER_WINDOW_DAYS = 90
ADV_BARS = 63
SHORT_ADV_BARS = 20
#: Short interest is published twice a month; a figure older than this is treated as missing.
MAX_SHORT_INTEREST_AGE_DAYS = 45


def _sma(x: np.ndarray, n: int) -> np.ndarray:
    return talib.SMA(x, timeperiod=n) if len(x) >= n else np.full(len(x), np.nan)


def insider_columns(
    bar_ns: np.ndarray, c: np.ndarray, v: np.ndarray, insider: Events | None, window_days: int = INSIDER_WINDOW_DAYS
) -> dict[str, np.ndarray]:
    """Net buys, shares bought, net shares and net value over the trailing window.

    ``insider=None`` means the source has no insider data (features NaN); an empty frame
    means no filings (counts 0).
    """
    n = len(bar_ns)
    names = ("insider_net_buys_90", "insider_shares_bought_90", "insider_net_shares_90", "insider_net_value_90")
    if insider is None:
        return {k: np.full(n, np.nan) for k in names}
    filed = to_ns(column(insider, "filed_at"))
    order = np.argsort(filed, kind="stable")
    filed = filed[order]
    shares = column(insider, "shares", np.float64)[order]
    value = np.abs(column(insider, "value", np.float64)[order])
    side = np.sign(shares)
    amounts = np.column_stack([side, np.where(shares > 0, shares, 0.0), shares, side * value])
    lo, hi = window_bounds(filed, bar_ns, window_days)
    csum = np.vstack([np.zeros((1, 4)), np.cumsum(amounts, axis=0)])
    sums = csum[hi] - csum[lo]
    adv = _sma(v, ADV_BARS)
    dollar_adv = _sma(c * v, ADV_BARS)
    return {
        "insider_net_buys_90": sums[:, 0],
        "insider_shares_bought_90": _ratio(sums[:, 1], adv),
        "insider_net_shares_90": _ratio(sums[:, 2], adv),
        "insider_net_value_90": _ratio(sums[:, 3], dollar_adv),
    }


def short_interest_columns(
    bar_ns: np.ndarray, v: np.ndarray, short_interest: Events | None, max_age_days: int = MAX_SHORT_INTEREST_AGE_DAYS
) -> dict[str, np.ndarray]:
    """Short-interest ratio (vs current volume), days to cover (as published) and change."""
    n = len(bar_ns)
    if short_interest is None or short_interest.empty:
        return {k: np.full(n, np.nan) for k in ("short_interest_ratio", "days_to_cover", "short_interest_change")}
    published = to_ns(column(short_interest, "published_at"))
    settle = to_ns(column(short_interest, "settlement_date"))
    pos = current_record_positions(published, settle)
    published = published[pos]
    settle = settle[pos]
    si = column(short_interest, "short_interest", np.float64)[pos]
    adv_published = column(short_interest, "avg_daily_volume", np.float64)[pos]
    # The previous settlement's figure is the last record of the preceding settlement-date run.
    new_run = settle[1:] != settle[:-1]
    run = np.concatenate([[0], np.cumsum(new_run)])
    run_last = np.flatnonzero(np.r_[new_run, True])
    prev_si = np.where(run > 0, si[run_last[np.maximum(run - 1, 0)]], np.nan)
    table = np.column_stack([si, _ratio(si, adv_published), _ratio(si, prev_si) - 1.0])
    values, _ = asof(published, table, bar_ns, max_age_days)
    return {
        "short_interest_ratio": _ratio(values[:, 0], _sma(v, SHORT_ADV_BARS)),
        "days_to_cover": values[:, 1],
        "short_interest_change": values[:, 2],
    }


def alternative_columns(
    bar_ns: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    insider_transactions: Events | None,
    short_interest: Events | None,
) -> dict[str, np.ndarray]:
    """The alternative feature columns from bar times, closes, volumes and the event tables."""
    return {**insider_columns(bar_ns, c, v, insider_transactions), **short_interest_columns(bar_ns, v, short_interest)}


def compute_alternative(
    bars: pd.DataFrame,
    insider_transactions: pd.DataFrame | None,
    short_interest: pd.DataFrame | None,
) -> pd.DataFrame:
    """Alternative-data features of one symbol (its own insider and short-interest rows)."""
    c = bars["close"].to_numpy(dtype=np.float64)
    v = bars["volume"].to_numpy(dtype=np.float64)
    cols = alternative_columns(to_ns(bars.index), c, v, insider_transactions, short_interest)
    return category_frame("alternative", cols, bars.index)
