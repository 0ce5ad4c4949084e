"""Out-of-sample backtest of the signal strategy over walk-forward test windows.

Input: the tune run's ``oos_predictions.parquet`` (symbol, date, window, p_down, p_flat,
p_up, ...; every probability comes from a model trained only on data before its test
window) and daily closes. Pure: frames in, :class:`BacktestResult` out.

Rules (all hand-checkable; see tests/unit/test_backtest.py)
-----------------------------------------------------------
* Overlapping windows: when several windows predicted the same (symbol, date), the latest
  window wins: it is the most recently trained model that existed on that date, i.e. the
  one a live system would have used.
* Desired position at the close of day ``t``: +1 if UP is the argmax and ``p_up`` exceeds
  ``confidence_threshold``, -1 for DOWN likewise, else 0. A symbol without a prediction on
  ``t`` is flat.
* Minimum hold: a new non-zero position is kept for at least ``min_hold_days`` daily returns
  (signals during the hold are ignored); afterwards the position follows the desired one
  (staying in while the signal persists, flipping or going flat when it changes).
* Timing: the position decided at the close of ``t`` earns ``close[t+1] / close[t] - 1``
  (the symbol's next trading day), reported on ``t+1``. Nothing on or after ``t+1`` is used
  to decide it. Dates whose next close is unknown (the last one) are dropped.
* Weights: ``position / N``, N = the number of symbols in the predictions (equal weight,
  gross exposure <= 1, the unused share in cash at 0%).
* Blocks: the decision dates form contiguous blocks on the price calendar (walk-forward test
  windows can leave gaps). Each block starts flat and is liquidated at its end; the minimum
  hold does not carry over a gap, and days in a gap are not in the return series.
* Costs: ``cost_bps`` basis points per unit of weight traded, ``|w_t - w_{t-1}|`` summed over
  symbols (a long-to-short flip trades 2 units), entries and the liquidation at the end of each
  block included (charged on the block's last day).
* Buy-and-hold benchmark: the same engine with position +1 on every (symbol, date) that has a
  prediction, so it is equal weight across the same symbols and dates, with the same entry
  cost.

Metrics (per series; daily returns ``r``, 252 trading days a year, risk-free rate 0)
------------------------------------------------------------------------------------
* ``sharpe`` = mean(r) / std(r, ddof=1) * sqrt(252) (NaN when std is 0).
* ``max_drawdown`` = max over t of 1 - equity_t / max(1, equity_0..t): a positive fraction.
* ``turnover`` = mean over days of sum_s |w_{s,t} - w_{s,t-1}| (plus block-end liquidations;
  share of capital traded per day); ``annual_turnover`` = 252 x that.
* ``hit_rate`` = share of symbol-days *holding a position* whose position and next-day return
  had the same sign (a zero return is a miss).
* ``total_return``, ``annual_return`` (geometric), ``exposure`` (mean gross exposure),
  ``n_trades`` (entries and flips), ``n_days``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.core.vocabulary import DOWN, TRADING_DAYS_PER_YEAR, UP
from signals.dataset import wide_closes  # noqa: F401 - re-exported: prices for the backtest

TRADING_DAYS = TRADING_DAYS_PER_YEAR

#: The one Sharpe ratio this product reports (tune summary, hold-out, ``signals backtest``).
SHARPE_DEFINITION = (
    "strategy Sharpe: position +1 (LONG) / -1 (SHORT) while the calibrated confidence of UP / DOWN exceeds "
    "ml.confidence_threshold, else flat; held at least strategy.min_hold_days; weight 1/N per symbol; the "
    "position decided at close t earns close t+1 / close t - 1; strategy.cost_bps per unit of weight traded; "
    "Sharpe = mean / std (ddof=1) of daily net returns x sqrt(252), rf = 0, NaN when never in the market. "
    "Baseline: equal-weight buy-and-hold of the same symbols on the same dates, same engine and costs"
)


class BacktestError(SignalsError):
    """The backtest inputs are unusable (no predictions, no prices for them, ...)."""


@dataclass
class BacktestResult:
    daily: pd.DataFrame  # indexed by the date a return is earned
    positions: pd.DataFrame  # decision date x symbol: -1 / 0 / +1
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def flat_metrics(self) -> dict[str, float]:
        return {f"{side}_{k}": v for side, m in self.metrics.items() for k, v in m.items()}


def dedupe_windows(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (symbol, date): the latest walk-forward window's prediction."""
    required = {"symbol", "date", "p_down", "p_flat", "p_up"}
    missing = sorted(required - set(predictions.columns))
    if missing:
        raise BacktestError(f"predictions lack column(s) {missing}")
    p = predictions.copy()
    p["date"] = pd.to_datetime(p["date"])
    if "window" in p.columns:
        p = p.sort_values(["symbol", "date", "window"], kind="stable").drop_duplicates(["symbol", "date"], keep="last")
    elif p.duplicated(["symbol", "date"]).any():
        raise BacktestError("predictions have duplicate (symbol, date) rows and no 'window' column to choose by")
    return p.reset_index(drop=True)


def desired_positions(predictions: pd.DataFrame, confidence_threshold: float) -> pd.DataFrame:
    """Wide frame date x symbol of +1 / -1 / 0 from the probabilities (NaN-free, 0 = no signal)."""
    p = dedupe_windows(predictions)
    proba = p[["p_down", "p_flat", "p_up"]].to_numpy(dtype=np.float64)
    cls = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    sig = np.where(conf > confidence_threshold, np.where(cls == UP, 1, np.where(cls == DOWN, -1, 0)), 0)
    wide = pd.DataFrame({"symbol": p["symbol"], "date": p["date"], "pos": sig}).pivot(
        index="date", columns="symbol", values="pos"
    )
    return wide.sort_index()


def apply_min_hold(desired: np.ndarray, min_hold_days: int) -> np.ndarray:
    """Positions (1-D, one symbol) after the minimum-hold rule; NaN desired = flat."""
    out = np.zeros(len(desired), dtype=np.int64)
    pos, held = 0, 0
    for t, d in enumerate(desired):
        want = 0 if d is None or (isinstance(d, float) and math.isnan(d)) else int(d)
        if pos != 0 and held < min_hold_days:
            held += 1
        elif want != pos:
            pos = want
            held = 1 if pos != 0 else 0
        elif pos != 0:
            held += 1
        out[t] = pos
    return out


def next_day_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """close[t+1] / close[t] - 1 per symbol on its own trading days (wide, date x symbol)."""
    out = {}
    for sym in prices.columns:
        s = prices[sym].dropna().astype("float64")
        s = s[s > 0]
        out[sym] = s.shift(-1) / s - 1.0
    return pd.DataFrame(out).sort_index()


def _series_metrics(r: pd.Series, turnover: pd.Series, exposure: pd.Series, held_pnl: np.ndarray) -> dict[str, float]:
    n = len(r)
    equity = (1.0 + r).cumprod()
    peak = np.maximum.accumulate(np.maximum(equity.to_numpy(), 1.0)) if n else np.array([])
    mdd = float(np.max(1.0 - equity.to_numpy() / peak)) if n else 0.0
    total = float(equity.iloc[-1] - 1.0) if n else 0.0
    std = float(r.std(ddof=1)) if n > 1 else float("nan")
    sharpe = float(r.mean() / std * math.sqrt(TRADING_DAYS)) if n > 1 and std > 0 else float("nan")
    annual = float((1.0 + total) ** (TRADING_DAYS / n) - 1.0) if n and total > -1 else float("nan")
    hits = held_pnl[np.isfinite(held_pnl)]
    return {
        "total_return": total,
        "annual_return": annual,
        "sharpe": sharpe,
        "max_drawdown": mdd,
        "turnover": float(turnover.mean()) if n else 0.0,
        "annual_turnover": float(turnover.mean() * TRADING_DAYS) if n else 0.0,
        "hit_rate": float(np.mean(hits > 0)) if hits.size else float("nan"),
        "exposure": float(exposure.mean()) if n else 0.0,
        "n_days": float(n),
    }


def _simulate(pos: pd.DataFrame, rets: pd.DataFrame, n_symbols: int, cost: float, segment: np.ndarray):
    """Net/gross returns, turnover, exposure, held-day P&L signs and trade count of ``pos``.

    ``segment`` labels contiguous blocks of decision dates: each block starts flat and its
    positions are closed at its end (the exit is traded, and charged, on the block's last day).
    """
    w = pos.astype("float64") / n_symbols
    starts = np.r_[True, segment[1:] != segment[:-1]]
    ends = np.r_[segment[1:] != segment[:-1], True]
    prev = w.shift(1).fillna(0.0)
    prev[starts] = 0.0
    exit_ = w.abs().where(pd.Series(ends, index=w.index), 0.0, axis=0)
    turnover = (w - prev).abs().sum(axis=1) + exit_.sum(axis=1)
    r = rets.reindex(index=pos.index, columns=pos.columns)
    gross = (w * r.fillna(0.0)).sum(axis=1)
    net = gross - cost * turnover
    held = pos.to_numpy() != 0
    with np.errstate(invalid="ignore"):
        signed = np.sign(pos.to_numpy()) * r.to_numpy()
    held_pnl = signed[held]
    exposure = w.abs().sum(axis=1)
    prev_pos = pos.shift(1).fillna(0)
    prev_pos[starts] = 0
    trades = int(((pos != prev_pos) & (pos != 0)).to_numpy().sum())
    return net, gross, turnover, exposure, held_pnl, trades


def run_backtest(
    predictions: pd.DataFrame,
    prices: pd.DataFrame,
    *,
    confidence_threshold: float = 0.55,
    min_hold_days: int = 3,
    cost_bps: float = 5.0,
) -> BacktestResult:
    """Backtest the thresholded, min-hold strategy against equal-weight buy-and-hold.

    ``prices``: wide frame, date index, one column of (adjusted) closes per symbol.
    """
    if predictions is None or predictions.empty:
        raise BacktestError("no predictions to backtest")
    if min_hold_days < 1:
        raise BacktestError("min_hold_days must be >= 1")
    desired = desired_positions(predictions, confidence_threshold)
    missing = [s for s in desired.columns if s not in prices.columns]
    if missing:
        raise BacktestError(f"no prices for symbol(s) {missing}")
    rets = next_day_returns(prices[list(desired.columns)])
    # Only decision dates whose next-day return is known for at least one symbol.
    known = rets.reindex(desired.index).notna().any(axis=1)
    desired = desired[known]
    if desired.empty:
        raise BacktestError("no prediction date has a known next-day price")
    # Contiguous blocks of decision dates on the price calendar (gaps between test windows
    # split them): each block starts flat, and the minimum hold does not carry over a gap.
    cal = rets.index
    at = cal.get_indexer(desired.index)
    segment = np.cumsum(np.r_[0, np.diff(at) > 1])
    present = desired.notna()
    pos = pd.DataFrame(0, index=desired.index, columns=desired.columns, dtype=np.int64)
    for seg in np.unique(segment):
        rows = segment == seg
        for sym in desired.columns:
            pos.loc[rows, sym] = apply_min_hold(desired.loc[rows, sym].to_numpy(dtype=float), min_hold_days)
    bench_pos = present.astype(np.int64)
    n = len(desired.columns)
    cost = cost_bps / 1e4
    s_net, s_gross, s_turn, s_exp, s_held, s_trades = _simulate(pos, rets, n, cost, segment)
    b_net, _b_gross, b_turn, b_exp, b_held, b_trades = _simulate(bench_pos, rets, n, cost, segment)

    # Report each return on the date t+1 it is earned (the next date of the price calendar).
    earn = cal[at + 1]
    daily = pd.DataFrame(
        {
            "strategy_return": s_net.to_numpy(),
            "strategy_gross_return": s_gross.to_numpy(),
            "benchmark_return": b_net.to_numpy(),
            "turnover": s_turn.to_numpy(),
            "exposure": s_exp.to_numpy(),
            "decision_date": desired.index,
            "block": segment,
        },
        index=pd.DatetimeIndex(earn, name="date"),
    )
    daily["strategy_equity"] = (1.0 + daily["strategy_return"]).cumprod()
    daily["benchmark_equity"] = (1.0 + daily["benchmark_return"]).cumprod()
    strat = _series_metrics(daily["strategy_return"], s_turn, s_exp, s_held)
    strat["n_trades"] = float(s_trades)
    bench = _series_metrics(daily["benchmark_return"], b_turn, b_exp, b_held)
    bench["n_trades"] = float(b_trades)
    return BacktestResult(
        daily=daily,
        positions=pos,
        metrics={"strategy": strat, "benchmark": bench},
        params={
            "confidence_threshold": confidence_threshold,
            "min_hold_days": min_hold_days,
            "cost_bps": cost_bps,
            "n_symbols": n,
            "n_blocks": int(segment.max() + 1),
            "start": str(desired.index.min().date()),
            "end": str(desired.index.max().date()),
        },
    )


def strategy_metrics(
    predictions: pd.DataFrame,
    prices: pd.DataFrame,
    *,
    confidence_threshold: float,
    min_hold_days: int,
    cost_bps: float,
) -> dict[str, float]:
    """The strategy's figures under :data:`SHARPE_DEFINITION` for any set of out-of-sample
    predictions (a walk-forward window, the stitched walk-forward, the hold-out).

    Returns ``strategy_sharpe``, ``strategy_annual_return``, ``strategy_exposure``,
    ``strategy_trades`` and ``baseline_buy_hold_sharpe``; an empty dict when nothing can be
    priced (e.g. the predictions end on the last known close)."""
    try:
        res = run_backtest(predictions, prices, confidence_threshold=confidence_threshold,
                           min_hold_days=min_hold_days, cost_bps=cost_bps)
    except BacktestError:
        return {}
    s, b = res.metrics["strategy"], res.metrics["benchmark"]
    return {
        "strategy_sharpe": s["sharpe"],
        "strategy_annual_return": s["annual_return"],
        "strategy_exposure": s["exposure"],
        "strategy_trades": s["n_trades"],
        "baseline_buy_hold_sharpe": b["sharpe"],
    }


def plot_equity(result: BacktestResult, path: str | Path, title: str = "") -> Path:
    """Equity curves (strategy after costs vs equal-weight buy-and-hold) and drawdown, as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = result.daily
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    s, b = result.metrics["strategy"], result.metrics["benchmark"]
    # One line segment per block, so gaps between test windows are not drawn as trades.
    blocks = d["block"].to_numpy() if "block" in d.columns else np.zeros(len(d), dtype=int)
    series = {
        "strategy_equity": (f"strategy (Sharpe {s['sharpe']:.2f}, net of costs)", "C0", 1.4),
        "benchmark_equity": (f"buy & hold, equal weight (Sharpe {b['sharpe']:.2f})", "C1", 1.0),
    }
    for col, (label, color, lw) in series.items():
        eq = d[col].to_numpy()
        dd = eq / np.maximum.accumulate(np.maximum(eq, 1.0)) - 1.0
        for i, blk in enumerate(np.unique(blocks)):
            m = blocks == blk
            ax1.plot(d.index[m], eq[m], color=color, lw=lw, label=label if i == 0 else None)
            ax2.plot(d.index[m], dd[m], color=color, lw=0.9, label=("strategy" if col.startswith("strategy") else "buy & hold") if i == 0 else None)
    ax1.axhline(1.0, color="grey", lw=0.6)
    ax1.set_ylabel("equity")
    ax1.legend(loc="upper left", fontsize=8)
    n_blocks = len(np.unique(blocks))
    ax1.set_title((title or "Out-of-sample walk-forward backtest") + (f" ({n_blocks} test blocks)" if n_blocks > 1 else ""), fontsize=10)
    ax2.set_ylabel("drawdown")
    ax2.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
