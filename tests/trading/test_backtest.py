"""Backtest on tiny frames whose every number is checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from signals.trading.backtest import BacktestError, apply_min_hold, desired_positions, plot_equity, run_backtest

D = pd.bdate_range("2020-01-06", periods=6)


def _pred(symbol, date, cls, conf, window=0):
    rest = (1.0 - conf) / 2
    p = [rest, rest, rest]
    p[cls] = conf
    return {"symbol": symbol, "date": date, "window": window, "p_down": p[0], "p_flat": p[1], "p_up": p[2]}


def _one_symbol():
    prices = pd.DataFrame({"A": [100.0, 110.0, 99.0, 99.0, 108.9]}, index=D[:5])
    preds = pd.DataFrame(
        [
            _pred("A", D[0], 2, 0.60),  # confident UP -> long
            _pred("A", D[1], 1, 0.80),  # FLAT (but the 2-day hold keeps the long)
            _pred("A", D[2], 2, 0.50),  # UP, not confident -> flat
            _pred("A", D[3], 0, 0.70),  # confident DOWN -> short
        ]
    )
    return preds, prices


def test_hand_checked_single_symbol_without_costs():
    preds, prices = _one_symbol()
    res = run_backtest(preds, prices, confidence_threshold=0.55, min_hold_days=2, cost_bps=0.0)
    assert res.positions["A"].tolist() == [1, 1, 0, -1]
    # position at close t earns close[t+1]/close[t]-1: +10%, -10%, flat, short a +10% day
    r = [0.1, -0.1, 0.0, -0.1]
    np.testing.assert_allclose(res.daily["strategy_return"], r, atol=1e-12)
    assert list(res.daily.index) == list(D[1:5])  # reported on the day the return is earned
    m = res.metrics["strategy"]
    assert m["total_return"] == pytest.approx(1.1 * 0.9 * 1.0 * 0.9 - 1)
    assert m["max_drawdown"] == pytest.approx(1 - 0.891 / 1.1)
    assert m["hit_rate"] == pytest.approx(1 / 3)  # long +10% hit; long -10% miss; short +10% miss
    assert m["n_trades"] == 2
    assert m["turnover"] == pytest.approx((1 + 0 + 1 + 2) / 4)  # the last day also liquidates the short
    assert m["sharpe"] == pytest.approx(np.mean(r) / np.std(r, ddof=1) * math.sqrt(252))
    b = res.metrics["benchmark"]
    assert b["total_return"] == pytest.approx(1.1 * 0.9 * 1.0 * 1.1 - 1)
    assert b["turnover"] == pytest.approx(2 / 4)  # entry and the final liquidation


def test_costs_are_charged_per_unit_traded():
    preds, prices = _one_symbol()
    res = run_backtest(preds, prices, confidence_threshold=0.55, min_hold_days=2, cost_bps=10.0)
    c = 10 / 1e4
    # entry long; hold; exit long; enter short and liquidate at the end of the block
    np.testing.assert_allclose(res.daily["strategy_return"], [0.1 - c, -0.1, 0.0 - c, -0.1 - 2 * c], atol=1e-12)
    np.testing.assert_allclose(res.daily["benchmark_return"], [0.1 - c, -0.1, 0.0, 0.1 - c], atol=1e-12)


def test_flip_costs_two_units_and_min_hold_blocks_early_exit():
    assert apply_min_hold(np.array([1, -1, -1, -1, 0, 0], dtype=float), 3).tolist() == [1, 1, 1, -1, -1, -1]
    assert apply_min_hold(np.array([1, 1, 1, 1, 0], dtype=float), 2).tolist() == [1, 1, 1, 1, 0]
    assert apply_min_hold(np.array([np.nan, -1, np.nan, np.nan], dtype=float), 1).tolist() == [0, -1, 0, 0]
    prices = pd.DataFrame({"A": [100.0, 100.0, 100.0, 100.0]}, index=D[:4])
    preds = pd.DataFrame([_pred("A", D[0], 2, 0.9), _pred("A", D[1], 0, 0.9), _pred("A", D[2], 0, 0.9)])
    res = run_backtest(preds, prices, confidence_threshold=0.55, min_hold_days=1, cost_bps=100.0)
    np.testing.assert_allclose(res.daily["turnover"], [1.0, 2.0, 1.0])  # enter, flip, liquidate
    np.testing.assert_allclose(res.daily["strategy_return"], [-0.01, -0.02, -0.01])


def test_equal_weight_across_symbols_and_latest_window_wins():
    prices = pd.DataFrame({"A": [100.0, 110.0, 110.0], "B": [50.0, 45.0, 45.0]}, index=D[:3])
    preds = pd.DataFrame(
        [
            _pred("A", D[0], 2, 0.9),
            _pred("B", D[0], 2, 0.9, window=0),  # superseded ...
            _pred("B", D[0], 0, 0.9, window=1),  # ... by the later window's model: short B
            _pred("A", D[1], 1, 0.9),
            _pred("B", D[1], 1, 0.9),
        ]
    )
    res = run_backtest(preds, prices, confidence_threshold=0.55, min_hold_days=1, cost_bps=0.0)
    assert res.positions.loc[D[0]].to_dict() == {"A": 1, "B": -1}
    # half in long A (+10%), half in short B (-10% move): 0.5*0.1 + 0.5*0.1
    assert res.daily["strategy_return"].iloc[0] == pytest.approx(0.1)
    assert res.daily["benchmark_return"].iloc[0] == pytest.approx(0.5 * 0.1 + 0.5 * -0.1)
    assert res.metrics["strategy"]["exposure"] == pytest.approx(0.5)  # day 1 fully in, day 2 flat


def test_a_gap_between_windows_starts_a_new_flat_block():
    prices = pd.DataFrame({"A": [100.0, 110.0, 121.0, 121.0, 121.0, 133.1, 133.1]}, index=pd.bdate_range("2020-01-06", periods=7))
    d = prices.index
    preds = pd.DataFrame(
        [
            _pred("A", d[0], 2, 0.9),  # block 1: long for d0 -> d1 (+10%)
            _pred("A", d[1], 1, 0.9),  # min hold 3 would keep it, but the block ends here: liquidated
            _pred("A", d[4], 2, 0.9, window=1),  # block 2 (d2, d3 not predicted) starts flat: a new entry
            _pred("A", d[5], 1, 0.9, window=1),  # held (min hold), then liquidated at the block end
        ]
    )
    res = run_backtest(preds, prices, confidence_threshold=0.55, min_hold_days=3, cost_bps=10.0)
    assert res.positions["A"].tolist() == [1, 1, 1, 1]
    assert res.params["n_blocks"] == 2
    c = 10 / 1e4
    np.testing.assert_allclose(res.daily["strategy_return"], [0.1 - c, 0.1 - c, 0.1 - c, 0.0 - c], atol=1e-12)
    assert res.metrics["strategy"]["n_trades"] == 2
    assert list(res.daily.index) == [d[1], d[2], d[5], d[6]]  # gap days d3, d4 are not in the series


def test_confidence_must_exceed_the_threshold():
    preds = pd.DataFrame([_pred("A", D[0], 2, 0.55), _pred("A", D[1], 2, 0.5501)])
    wide = desired_positions(preds, 0.55)
    assert wide["A"].tolist() == [0, 1]


def test_future_prices_do_not_change_past_positions():
    preds, prices = _one_symbol()
    a = run_backtest(preds, prices, confidence_threshold=0.55, min_hold_days=2, cost_bps=0.0)
    shocked = prices.copy()
    shocked.iloc[-1] = 1.0  # a crash on the last day only changes the last return
    b = run_backtest(preds, shocked, confidence_threshold=0.55, min_hold_days=2, cost_bps=0.0)
    pd.testing.assert_frame_equal(a.positions, b.positions)
    np.testing.assert_allclose(a.daily["strategy_return"].iloc[:-1], b.daily["strategy_return"].iloc[:-1])


def test_errors_are_clear():
    preds, prices = _one_symbol()
    with pytest.raises(BacktestError, match="no prices for symbol"):
        run_backtest(preds.assign(symbol="ZZZ"), prices)
    with pytest.raises(BacktestError, match="no predictions"):
        run_backtest(preds.iloc[0:0], prices)
    with pytest.raises(BacktestError, match="duplicate"):
        run_backtest(pd.concat([preds, preds]).drop(columns="window"), prices)


def test_equity_plot_is_written(tmp_path):
    preds, prices = _one_symbol()
    res = run_backtest(preds, prices, confidence_threshold=0.55, min_hold_days=2, cost_bps=5.0)
    out = plot_equity(res, tmp_path / "equity.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
