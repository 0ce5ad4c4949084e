"""The 3-class target: DOWN (0) / FLAT (1) / UP (2) from the forward return over the horizon.

``forward_return[t] = close[t + h] / close[t] - 1`` where ``t + h`` is the h-th *next row of the
same symbol* (rows are trading days), on split/dividend-adjusted closes. It is computed per
symbol, so a return never spans two symbols. The last ``h`` rows of each symbol have no future:
their forward return and label are NaN (they are dropped from training, never labelled FLAT).

Pure functions on pandas objects; nothing here reads data or logs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DOWN, FLAT, UP = 0, 1, 2
CLASS_LABELS = {DOWN: "DOWN", FLAT: "FLAT", UP: "UP"}


def _symbol_level(index: pd.Index) -> str | int | None:
    """Name/position of the symbol level of a (symbol, date) MultiIndex; None for a flat index."""
    if not isinstance(index, pd.MultiIndex):
        return None
    if "symbol" in index.names:
        return "symbol"
    return 0


def _date_level(index: pd.MultiIndex) -> str | int:
    return "date" if "date" in index.names else 1


def forward_returns(close: pd.Series, horizon: int) -> pd.Series:
    """Forward simple return over ``horizon`` rows, per symbol, aligned to ``close``'s index.

    ``close`` is indexed by date (one symbol) or by a (symbol, date) MultiIndex. Rows are put in
    date order within each symbol before shifting; the result keeps the input's row order.
    Non-positive or missing prices give NaN.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    close = pd.to_numeric(close, errors="coerce").astype("float64")
    close = close.where(close > 0)
    sym = _symbol_level(close.index)
    if sym is None:
        ordered = close.sort_index(kind="stable")
        fwd = ordered.shift(-horizon) / ordered - 1.0
    else:
        date = _date_level(close.index)
        ordered = close.sort_index(level=[sym, date], kind="stable")
        future = ordered.groupby(level=sym, sort=False).shift(-horizon)
        fwd = future / ordered - 1.0
    if not ordered.index.is_unique:
        raise ValueError("close index has duplicate entries; expected one row per (symbol, date)")
    return fwd.reindex(close.index).rename("forward_return")


def label_returns(fwd: pd.Series | np.ndarray, up_threshold: float, down_threshold: float):
    """Map forward returns to 2 (> up), 0 (< down), 1 otherwise; NaN stays NaN (float dtype)."""
    if up_threshold <= down_threshold:
        raise ValueError("up_threshold must be greater than down_threshold")
    values = np.asarray(fwd, dtype="float64")
    out = np.where(values > up_threshold, float(UP), np.where(values < down_threshold, float(DOWN), float(FLAT)))
    out[np.isnan(values)] = np.nan
    if isinstance(fwd, pd.Series):
        return pd.Series(out, index=fwd.index, name="target")
    return out


def make_target(
    df: pd.DataFrame | pd.Series,
    *,
    horizon: int,
    up_threshold: float,
    down_threshold: float,
    close_col: str = "close",
) -> pd.Series:
    """Labels (float: 0.0 / 1.0 / 2.0, NaN where the future is unknown) aligned to ``df``."""
    close = df if isinstance(df, pd.Series) else df[close_col]
    return label_returns(forward_returns(close, horizon), up_threshold, down_threshold)


def close_panel(bars_by_symbol: dict[str, pd.DataFrame], close_col: str = "close") -> pd.Series:
    """Stack per-symbol date-indexed bars into one close Series indexed by (symbol, date)."""
    parts = []
    for symbol, bars in bars_by_symbol.items():
        s = bars[close_col].astype("float64").copy()
        s.index = pd.MultiIndex.from_arrays(
            [np.full(len(s), symbol, dtype=object), pd.DatetimeIndex(s.index)], names=["symbol", "date"]
        )
        parts.append(s)
    if not parts:
        return pd.Series(
            [], dtype="float64", index=pd.MultiIndex.from_arrays([[], pd.DatetimeIndex([])], names=["symbol", "date"])
        )
    return pd.concat(parts).rename(close_col)
