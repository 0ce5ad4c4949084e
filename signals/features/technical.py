"""Technical features from one symbol's daily bars, computed with TA-Lib.

Every output is scale-free (a ratio, a return or a bounded oscillator) so one model can be
pooled across symbols: price-unit indicators (MACD, ATR, moving averages, VWAP) are divided
by the close, OBV is turned into a bounded 20-bar flow, volume into a ratio to its average.

Causality: TA-Lib's windowed functions only look back, and its EMA-family functions (EMA,
MACD, RSI, ADX, ATR) are seeded at the first bar, so values at ``t`` depend only on bars up
to ``t`` *given the same first bar*. Warm-up rows are NaN; nothing is back-filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from signals.core.vocabulary import TRADING_DAYS_PER_YEAR
from signals.features.arrays import inf_to_nan, ratio
from signals.features.spec import category_frame, names_for

ANNUALISATION = np.sqrt(float(TRADING_DAYS_PER_YEAR))
RETURN_HORIZONS = (1, 5, 20, 60)


_OHLCV = ("open", "high", "low", "close", "volume")


def ohlcv_arrays(bars: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Contiguous float64 open, high, low, close, volume arrays (what TA-Lib needs).

    A column the frame lacks (close-only bars may come without open/high/low/volume) is all NaN.
    """
    columns = list(bars.columns)
    if len(set(columns)) == len(columns) and all(c in columns for c in _OHLCV):
        values = bars.to_numpy()  # one float block (what the providers build): a view, no Series per column
        if values.dtype == np.float64:
            return tuple(np.ascontiguousarray(values[:, columns.index(c)]) for c in _OHLCV)
    return tuple(
        np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64)) if c in columns else np.full(len(bars), np.nan)
        for c in _OHLCV
    )


def absent_bar_fields(o: np.ndarray, h: np.ndarray, low: np.ndarray, v: np.ndarray) -> frozenset[str]:
    """The bar fields among open/high/low/volume with no value at all (close-only bars: all four).

    Reads the first value before scanning a column, so full bars cost four scalar reads.
    """
    return frozenset(
        name
        for name, x in (("open", o), ("high", h), ("low", low), ("volume", v))
        if len(x) and x[0] != x[0] and bool(np.isnan(x).all())
    )


def frame_absent_bar_fields(bars: pd.DataFrame) -> frozenset[str]:
    """:func:`absent_bar_fields` of a bar frame, without copying its columns (a missing column is absent)."""
    columns = list(bars.columns)
    values = bars.to_numpy()
    if values.dtype != np.float64:
        values = bars.to_numpy(dtype=np.float64)
    nan = np.full(len(bars), np.nan)
    o, h, low, v = (values[:, columns.index(c)] if c in columns else nan for c in ("open", "high", "low", "volume"))
    return absent_bar_fields(o, h, low, v)


def talib_indicators(
    o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, v: np.ndarray
) -> dict[str, np.ndarray]:
    """Every TA-Lib call the technical features need, and nothing else.

    Kept separate so the benchmark can time "TA-Lib alone" on exactly the same calls.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ret = np.empty_like(c)
        log_ret[0] = np.nan
        log_ret[1:] = np.diff(np.log(c))
        typical = (h + low + c) / 3.0
        bar_range = h - low
    macd, macd_signal, macd_hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    stoch_k, stoch_d = talib.STOCH(h, low, c, fastk_period=14, slowk_period=3, slowk_matype=0, slowd_period=3, slowd_matype=0)
    bb_upper, bb_middle, bb_lower = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    out = {
        "rsi_14": talib.RSI(c, timeperiod=14),
        "macd": macd,
        "macd_signal": macd_signal,
        "macd_hist": macd_hist,
        "rocp_10": talib.ROCP(c, timeperiod=10),
        "stoch_k": stoch_k,
        "stoch_d": stoch_d,
        "willr_14": talib.WILLR(h, low, c, timeperiod=14),
        "cci_20": talib.CCI(h, low, c, timeperiod=20),
        "mfi_14": talib.MFI(h, low, c, v, timeperiod=14),
        "sma_20": talib.SMA(c, timeperiod=20),
        "sma_50": talib.SMA(c, timeperiod=50),
        "sma_200": talib.SMA(c, timeperiod=200),
        "ema_12": talib.EMA(c, timeperiod=12),
        "ema_26": talib.EMA(c, timeperiod=26),
        "adx_14": talib.ADX(h, low, c, timeperiod=14),
        "plus_di_14": talib.PLUS_DI(h, low, c, timeperiod=14),
        "minus_di_14": talib.MINUS_DI(h, low, c, timeperiod=14),
        "atr_14": talib.ATR(h, low, c, timeperiod=14),
        "bb_upper": bb_upper,
        "bb_middle": bb_middle,
        "bb_lower": bb_lower,
        "std_20": talib.STDDEV(log_ret, timeperiod=20, nbdev=1.0),
        "std_60": talib.STDDEV(log_ret, timeperiod=60, nbdev=1.0),
        "obv": talib.OBV(c, v),
        "vol_sum_20": talib.SUM(v, timeperiod=20),
        "pv_sum_20": talib.SUM(typical * v, timeperiod=20),
        "vol_sma_20": talib.SMA(v, timeperiod=20),
        "high_252": talib.MAX(h, timeperiod=252),
        "low_252": talib.MIN(low, timeperiod=252),
        "range_sma_20": talib.SMA(bar_range, timeperiod=20),
    }
    for n in RETURN_HORIZONS:
        out[f"rocp_{n}"] = talib.ROCP(c, timeperiod=n)
    return out


def _lag(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[n:] = x[:-n]
    return out


def technical_columns(
    o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, v: np.ndarray
) -> dict[str, np.ndarray]:
    """The technical feature columns (registry names) from float64 OHLCV arrays."""
    ta = talib_indicators(o, h, low, c, v)
    bar_range = h - low
    obv = ta["obv"]
    with np.errstate(divide="ignore", invalid="ignore"):
        # vwap feeds another quotient, where an infinity would turn into a plausible 0.
        vwap = ratio(ta["pv_sum_20"], ta["vol_sum_20"])
        # Quotients (name, numerator, denominator, minus): computed into one block so a
        # single pass turns a zero denominator's infinity into NaN.
        quotients = (
            ("macd_line", ta["macd"], c, 0.0),
            ("macd_signal", ta["macd_signal"], c, 0.0),
            ("macd_hist", ta["macd_hist"], c, 0.0),
            ("price_vs_sma_20", c, ta["sma_20"], 1.0),
            ("price_vs_sma_50", c, ta["sma_50"], 1.0),
            ("price_vs_sma_200", c, ta["sma_200"], 1.0),
            ("price_vs_ema_12", c, ta["ema_12"], 1.0),
            ("price_vs_ema_26", c, ta["ema_26"], 1.0),
            ("sma_20_vs_sma_50", ta["sma_20"], ta["sma_50"], 1.0),
            ("atr_14_pct", ta["atr_14"], c, 0.0),
            ("bb_position", c - ta["bb_lower"], ta["bb_upper"] - ta["bb_lower"], 0.0),
            ("bb_width", ta["bb_upper"] - ta["bb_lower"], ta["bb_middle"], 0.0),
            # OBV's level depends on where the series starts; its 20-bar change does not.
            ("obv_flow_20", obv - _lag(obv, 20), ta["vol_sum_20"], 0.0),
            ("vwap_dist_20", c, vwap, 1.0),
            ("volume_ratio_20", v, ta["vol_sma_20"], 0.0),
            ("dist_52w_high", c, ta["high_252"], 1.0),
            ("dist_52w_low", c, ta["low_252"], 1.0),
            ("range_pct", bar_range, c, 0.0),
            ("range_vs_avg_20", bar_range, ta["range_sma_20"], 0.0),
            ("close_location", c - low, bar_range, 0.0),
            ("gap", o, _lag(c, 1), 1.0),
        )
        block = np.empty((len(quotients), len(c)))
        for row, (_, num, den, minus) in zip(block, quotients):
            np.divide(num, den, out=row)
            if minus:
                np.subtract(row, minus, out=row)
    inf_to_nan(block)
    cols = {name: row for (name, *_), row in zip(quotients, block)}
    cols["close_location"] = np.where(bar_range > 0, cols["close_location"], 0.5)
    cols.update(
        rsi_14=ta["rsi_14"],
        roc_10=ta["rocp_10"],
        stoch_k=ta["stoch_k"],
        stoch_d=ta["stoch_d"],
        willr_14=ta["willr_14"],
        cci_20=ta["cci_20"],
        mfi_14=ta["mfi_14"],
        adx_14=ta["adx_14"],
        plus_di_14=ta["plus_di_14"],
        minus_di_14=ta["minus_di_14"],
        hv_20=ta["std_20"] * ANNUALISATION,
        hv_60=ta["std_60"] * ANNUALISATION,
    )
    for n in RETURN_HORIZONS:
        cols[f"ret_{n}"] = ta[f"rocp_{n}"]
    return cols


def compute_technical(bars: pd.DataFrame) -> pd.DataFrame:
    """Technical features for one symbol; ``bars`` has open/high/low/close/volume by date."""
    if len(bars) == 0:
        return pd.DataFrame(columns=names_for("technical"), index=bars.index, dtype="float64")
    return category_frame("technical", technical_columns(*ohlcv_arrays(bars)), bars.index)
