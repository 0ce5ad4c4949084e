"""The suspicious-data checks as a pure function on tiny frames (the CLI cases are in tests/bad_input)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from signals.data.suspicious import bar_warnings, market_warnings
from signals.data.validation import validate_bars


def _bars(close: list[float], **extra: list[float]) -> pd.DataFrame:
    c = np.asarray(close, dtype=float)
    dates = pd.bdate_range("2020-01-01", periods=len(c))
    return pd.DataFrame({"date": dates, "open": c, "high": c * 1.01, "low": c * 0.99, "close": c,
                         "volume": np.full(len(c), 1e5), **extra})


def _checks(frame: pd.DataFrame, **kw: bool) -> list[tuple[str, str | None, int]]:
    bars, report = validate_bars(frame, "X")
    return [(w.check, w.first_date, w.count) for w in bar_warnings("X", bars, report, **kw)]


def test_a_reverting_spike_is_a_spike_not_a_split() -> None:
    assert _checks(_bars([10, 10, 60, 10, 10])) == [("reverting_spike", "2020-01-03", 1)]


def test_a_lasting_jump_without_adj_close_is_a_likely_split() -> None:
    assert _checks(_bars([10, 10, 5, 5, 5])) == [("unadjusted_split", "2020-01-03", 1)]
    assert _checks(_bars([10, 10, 13, 13, 13])) == []  # +30%: a move
    assert _checks(_bars([10, 10, 5, 5, 5]), adjusted=True) == []  # the source says its closes are adjusted
    frame = _bars([10, 10, 5, 5, 5], adj_close=[5.0, 5, 5, 5, 5])  # adj_close undoes the split
    assert _checks(frame) == []


def test_open_or_close_outside_the_day_range_and_zero_volume() -> None:
    frame = _bars([10, 10, 10, 10])
    frame.loc[1, "open"] = 10.5
    frame.loc[3, "close"] = 9.5
    frame["volume"] = 0.0
    assert _checks(frame) == [("price_outside_range", "2020-01-02", 2), ("zero_volume", "2020-01-01", 4)]


def test_market_series_warned_only_without_any_overlap() -> None:
    days = pd.bdate_range("2015-01-01", periods=10)
    series = pd.DataFrame({"close": np.ones(10)}, index=days)
    first, last = pd.Timestamp("2010-01-01"), pd.Timestamp("2014-12-31")
    assert [w.symbol for w in market_warnings({"VIX": series, "SPY": None}, first, last)] == ["VIX"]
    assert market_warnings({"VIX": series}, first, pd.Timestamp("2015-01-06")) == []  # partly: reported elsewhere
