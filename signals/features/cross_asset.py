"""Cross-asset features: co-movement with and strength relative to SPY and the sector ETF,
and the VIX level.

Benchmark closes are aligned to the symbol's bar dates by taking the last benchmark close on
or before each date (never a later one), and only if it is at most ``MAX_MARKET_GAP_DAYS``
old: a benchmark that stops, starts late or is absent gives NaN, never an invented value.
The sample's VIX (2014-2019) does not overlap its stocks (2000-2013), so VIX features are
all NaN there, which is correct.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signals.features.arrays import calendar_cached, inf_to_nan, ratio
from signals.features.pit import NS_PER_DAY, to_ns
from signals.features.spec import category_frame

MAX_MARKET_GAP_DAYS = 7
CORR_WINDOW = 60


def align_close(market: pd.DataFrame | None, bar_ns: np.ndarray, max_gap_days: int = MAX_MARKET_GAP_DAYS) -> np.ndarray:
    """The benchmark's last close on or before each bar time (NaN if none within ``max_gap_days``)."""
    out = np.full(len(bar_ns), np.nan)
    if market is None or market.empty:
        return out
    m_ns = to_ns(market.index)
    pos = np.searchsorted(m_ns, bar_ns, side="right") - 1
    ok = pos >= 0
    ok &= (bar_ns - m_ns[np.maximum(pos, 0)]) <= max_gap_days * NS_PER_DAY
    out[ok] = market["close"].to_numpy(dtype=np.float64)[pos[ok]]
    return out


def _pct_change(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n:] = x[n:] / x[:-n] - 1.0
    return inf_to_nan(out)


def rolling_corr_beta(r: np.ndarray, rb: np.ndarray, window: int = CORR_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Trailing-window correlation of ``r`` with ``rb`` and beta of ``r`` on ``rb``.

    A window containing any NaN (a gap in benchmark coverage) gives NaN. Not TA-Lib's
    CORREL/BETA: their running sums let one interior NaN poison every later value.
    """
    ok = np.isfinite(r) & np.isfinite(rb)
    x = np.where(ok, r, 0.0)
    y = np.where(ok, rb, 0.0)
    # The six trailing-window sums, from prefix sums in one pass (causal: the sum at t uses
    # values up to t only). One 2-D cumsum instead of six 1-D ones: a fifth of the numpy
    # calls, and the same values (cumsum adds sequentially either way).
    terms = np.empty((6, len(r) + 1))
    terms[:, 0] = 0.0
    terms[0, 1:] = ok
    terms[1, 1:] = x
    terms[2, 1:] = y
    np.multiply(x, x, out=terms[3, 1:])
    np.multiply(y, y, out=terms[4, 1:])
    np.multiply(x, y, out=terms[5, 1:])
    sums = np.full((6, len(r)), np.nan)
    if len(r) >= window:
        np.cumsum(terms, axis=1, out=terms)
        np.subtract(terms[:, window:], terms[:, :-window], out=sums[:, window - 1 :])
    count, sx, sy, sxx, syy, sxy = sums
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sxy - sx * sy / window
        vx = sxx - sx * sx / window
        vy = syy - sy * sy / window
        valid = (count == window) & (vx > 0) & (vy > 0)
        corr = np.where(valid, cov / np.sqrt(vx * vy), np.nan)
        beta = np.where(valid, cov / vy, np.nan)
    return np.clip(corr, -1.0, 1.0), beta


def benchmark_series(market: pd.DataFrame | None, bar_ns: np.ndarray) -> dict[str, np.ndarray]:
    """What the features need of one benchmark on one bar calendar (shareable across symbols)."""
    close = align_close(market, bar_ns)
    return {
        "close": close,
        "ret_1": _pct_change(close, 1),
        "ret_5": _pct_change(close, 5),
        "growth_20": 1.0 + _pct_change(close, 20),
        "growth_60": 1.0 + _pct_change(close, 60),
    }


def _relative(growth: np.ndarray, bench_growth: np.ndarray) -> np.ndarray:
    return ratio(growth, bench_growth) - 1.0


def cross_asset_columns(
    bar_ns: np.ndarray,
    c: np.ndarray,
    spy_bars: pd.DataFrame | None,
    vix_bars: pd.DataFrame | None,
    sector_bars: pd.DataFrame | None,
    calendar: dict | None = None,
) -> dict[str, np.ndarray]:
    """The cross-asset feature columns from bar times, closes and the benchmarks' bars.

    ``calendar``: a dict shared by symbols with exactly these ``bar_ns``, where the
    benchmarks' aligned series are kept so each is computed once per calendar.
    """

    def bench(frame: pd.DataFrame | None) -> dict[str, np.ndarray]:
        return calendar_cached(calendar, ("benchmark", id(frame)), lambda: benchmark_series(frame, bar_ns))

    spy, sec, vix = bench(spy_bars), bench(sector_bars), bench(vix_bars)
    r = _pct_change(c, 1)
    growth_20, growth_60 = 1.0 + _pct_change(c, 20), 1.0 + _pct_change(c, 60)
    spy_corr, spy_beta = rolling_corr_beta(r, spy["ret_1"])
    sec_corr, _ = rolling_corr_beta(r, sec["ret_1"])
    return {
        "spy_corr_60": spy_corr,
        "spy_beta_60": spy_beta,
        "rs_spy_20": _relative(growth_20, spy["growth_20"]),
        "rs_spy_60": _relative(growth_60, spy["growth_60"]),
        "sector_corr_60": sec_corr,
        "rs_sector_20": _relative(growth_20, sec["growth_20"]),
        "rs_sector_60": _relative(growth_60, sec["growth_60"]),
        "vix_level": vix["close"],
        "vix_change_5": vix["ret_5"],
    }


def compute_cross_asset(
    bars: pd.DataFrame,
    spy_bars: pd.DataFrame | None,
    vix_bars: pd.DataFrame | None,
    sector_bars: pd.DataFrame | None,
) -> pd.DataFrame:
    """Cross-asset features of one symbol; every benchmark argument may be None."""
    c = bars["close"].to_numpy(dtype=np.float64)
    cols = cross_asset_columns(to_ns(bars.index), c, spy_bars, vix_bars, sector_bars)
    return category_frame("cross_asset", cols, bars.index)
