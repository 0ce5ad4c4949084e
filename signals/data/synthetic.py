"""Deterministic synthetic data: event tables for the sample, and whole universes for
benchmarks and tests.

There is no offline public source of fundamentals, insider filings or short interest,
so the sample generates them with realistic *publication lags*: fundamentals are filed
30-60 days after the period end (with occasional restatements filed later still),
Form-4 insider filings arrive 1-2 business days after the trade, and short interest is
published 8 business days after settlement. Every table made here is labelled synthetic
wherever it is logged. Randomness is seeded from the symbol name via SHA-256, so the same
symbol always gets the same data in every process and on every machine.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from pandas.tseries.offsets import BDay

from signals.data.schemas import FUNDAMENTAL_METRICS

# Plausible centre and quarterly volatility of each metric (a mean-reverting walk).
_METRIC_SHAPE = {
    "pe": (20.0, 2.5),
    "pb": (4.0, 0.5),
    "ps": (3.5, 0.4),
    "ev_ebitda": (12.0, 1.5),
    "roe": (0.18, 0.03),
    "current_ratio": (1.8, 0.2),
    "debt_to_equity": (0.6, 0.1),
    "revenue_growth": (0.08, 0.05),
    "earnings_growth": (0.10, 0.08),
    "dividend_yield": (0.015, 0.004),
}
_POSITIVE = {"pe", "pb", "ps", "ev_ebitda", "current_ratio", "debt_to_equity", "dividend_yield"}


def rng_for(symbol: str, salt: str = "") -> np.random.Generator:
    digest = hashlib.sha256(f"{symbol}|{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def synthetic_fundamentals(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Quarterly statements filed 30-60 days after quarter end; ~10% restated ~90 days later."""
    rng = rng_for(symbol, "fundamentals")
    periods = pd.date_range(pd.Timestamp(start) - pd.offsets.QuarterEnd(2), end, freq="QE")
    if len(periods) == 0:
        return pd.DataFrame(columns=["symbol", "period_end", "filed_at", *FUNDAMENTAL_METRICS])
    level = {m: c * rng.uniform(0.7, 1.3) for m, (c, _) in _METRIC_SHAPE.items()}
    rows = []
    for period in periods:
        values = {}
        for m, (centre, vol) in _METRIC_SHAPE.items():
            level[m] = level[m] + 0.3 * (centre - level[m]) + rng.normal(0, vol)
            if m in _POSITIVE:
                level[m] = max(level[m], centre * 0.05)
            values[m] = float(level[m])
        filed = period + pd.Timedelta(days=int(rng.integers(30, 61)))
        rows.append({"symbol": symbol, "period_end": period, "filed_at": filed, **values})
        if rng.random() < 0.1:  # a restatement of the same period, filed later
            restated = {m: v * (1 + rng.normal(0, 0.05)) for m, v in values.items()}
            refiled = filed + pd.Timedelta(days=int(rng.integers(60, 121)))
            rows.append({"symbol": symbol, "period_end": period, "filed_at": refiled, **restated})
    out = pd.DataFrame(rows)
    return out[out["filed_at"] <= end].reset_index(drop=True)


def synthetic_insider(symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
    """About two insider trades a month, filed 1-2 business days after the trade."""
    rng = rng_for(symbol, "insider")
    dates = bars.index
    n = int(len(dates) / 21 * 2)
    if n == 0:
        return pd.DataFrame(columns=["symbol", "transaction_date", "filed_at", "shares", "value"])
    picks = np.sort(rng.integers(0, len(dates), size=n))
    tx = dates[picks]
    side = np.where(rng.random(n) < 0.35, 1.0, -1.0)  # insiders sell more often than they buy
    shares = side * np.round(rng.lognormal(8.5, 1.2, n))
    price = bars["close"].to_numpy()[picks]
    lag = rng.integers(1, 3, size=n)
    filed = pd.DatetimeIndex([d + BDay(int(k)) for d, k in zip(tx, lag)])
    return pd.DataFrame(
        {"symbol": symbol, "transaction_date": tx, "filed_at": filed, "shares": shares, "value": shares * price}
    )


def synthetic_short_interest(symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
    """Twice-monthly settlements (mid-month and month end) published 8 business days later."""
    rng = rng_for(symbol, "short_interest")
    idx = bars.index
    if len(idx) == 0:
        return pd.DataFrame(columns=["symbol", "settlement_date", "published_at", "short_interest", "avg_daily_volume"])
    months = pd.date_range(idx[0].to_period("M").to_timestamp(), idx[-1], freq="MS")
    targets = sorted({d for m in months for d in (m + pd.Timedelta(days=14), m + pd.offsets.MonthEnd(0))})
    vol20 = bars["volume"].rolling(20, min_periods=1).mean()
    ratio = rng.uniform(1.0, 4.0)  # days-to-cover level this name tends to sit at
    rows = []
    for t in targets:
        pos = idx.searchsorted(t, side="right") - 1  # last trading day on or before the target
        if pos < 0:
            continue
        settle = idx[pos]
        ratio = max(0.2, ratio + 0.2 * (2.5 - ratio) + rng.normal(0, 0.3))
        adv = float(vol20.iloc[pos])
        rows.append(
            {
                "symbol": symbol,
                "settlement_date": settle,
                "published_at": settle + BDay(8),
                "short_interest": round(ratio * adv),
                "avg_daily_volume": adv,
            }
        )
    out = pd.DataFrame(rows).drop_duplicates(subset=["settlement_date"])
    return out.reset_index(drop=True)


def synthetic_events(bars_by_symbol: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """All three event tables for a set of symbols' (adjusted) bars."""
    fund, ins, si = [], [], []
    for sym, bars in bars_by_symbol.items():
        fund.append(synthetic_fundamentals(sym, bars.index[0], bars.index[-1]))
        ins.append(synthetic_insider(sym, bars))
        si.append(synthetic_short_interest(sym, bars))
    return {
        "fundamentals": pd.concat(fund, ignore_index=True),
        "insider_transactions": pd.concat(ins, ignore_index=True),
        "short_interest": pd.concat(si, ignore_index=True),
    }


def synthetic_bars(symbol: str, dates: pd.DatetimeIndex, *, drift: float = 0.0003, vol: float = 0.018) -> pd.DataFrame:
    """A geometric random walk with consistent OHLCV, for benchmarks and tests (not the demo)."""
    rng = rng_for(symbol, "bars")
    n = len(dates)
    rets = rng.normal(drift, vol, n)
    close = 20.0 * rng.uniform(0.5, 5.0) * np.exp(np.cumsum(rets))
    open_ = close * np.exp(rng.normal(0, vol / 3, n))
    spread = np.abs(rng.normal(0, vol / 2, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = np.round(rng.lognormal(13, 0.5, n))
    return pd.DataFrame(
        {"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


def synthetic_universe(n_symbols: int, n_days: int, *, start: str = "2010-01-04", n_sectors: int = 5) -> dict:
    """A whole synthetic universe in the parquet-layout shape (see ``signals.data.parquet``).

    Returns ``{"universe", "bars", "market", <event tables>}`` with raw frames.
    """
    dates = pd.bdate_range(start, periods=n_days, name="date")
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    sectors = [f"Sector{i % n_sectors}" for i in range(n_symbols)]
    etfs = [f"XS{i % n_sectors}" for i in range(n_symbols)]
    universe = pd.DataFrame({"symbol": symbols, "sector": sectors, "sector_etf": etfs})
    bars = {s: synthetic_bars(s, dates) for s in symbols}
    market = {m: synthetic_bars(m, dates, vol=0.011) for m in ["SPY", *sorted(set(etfs))]}
    vix = synthetic_bars("VIX", dates, drift=0.0, vol=0.05)
    market["VIX"] = vix.assign(volume=0.0)
    indexed = {s: b.set_index("date") for s, b in bars.items()}
    return {"universe": universe, "bars": bars, "market": market, **synthetic_events(indexed)}
