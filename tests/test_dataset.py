"""Target: 3-class labels from per-symbol forward returns; no future -> NaN, never FLAT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.dataset import close_panel, forward_returns, label_returns, make_target
from signals.modeling.model import MLPipeline


def _single(closes: list[float], start: str = "2021-01-04") -> pd.DataFrame:
    return pd.DataFrame({"close": closes}, index=pd.bdate_range(start, periods=len(closes), name="date"))


def test_labels_follow_thresholds_and_horizon() -> None:
    # horizon 2: label[t] from close[t+2] / close[t] - 1
    df = _single([100, 100, 102, 100, 98.9, 99.5, 99])
    y = MLPipeline(horizon=2, up_threshold=0.01, down_threshold=-0.01).prepare_target(df, close_col="close")
    # fwd: 0.02 (UP), 0.0 (FLAT), 102->98.9 = -0.0304 (DOWN), 100->99.5 = -0.005 (FLAT), 98.9->99 FLAT
    assert y.iloc[:5].tolist() == [2.0, 1.0, 0.0, 1.0, 1.0]
    assert y.iloc[5:].isna().all()  # last `horizon` rows: no future, NaN (not FLAT)
    assert y.index.equals(df.index)


def test_boundaries_are_strict() -> None:
    fwd = pd.Series([0.01, 0.0100001, -0.01, -0.0100001, np.nan])
    assert label_returns(fwd, 0.01, -0.01).tolist()[:4] == [1.0, 2.0, 1.0, 0.0]
    assert np.isnan(label_returns(fwd, 0.01, -0.01).iloc[4])


def test_panel_forward_returns_never_cross_symbols() -> None:
    dates = pd.bdate_range("2021-01-04", periods=6)
    bars = {
        "AAA": pd.DataFrame({"close": [10, 11, 12, 13, 14, 15.0]}, index=dates),
        "BBB": pd.DataFrame({"close": [100, 90, 80, 70, 60, 50.0]}, index=dates),
    }
    close = close_panel(bars)
    fwd = forward_returns(close, 2)
    assert fwd.loc[("AAA", dates[3])] == pytest.approx(15 / 13 - 1)
    # the last 2 rows of AAA must not look into BBB's first prices
    assert fwd.loc["AAA"].iloc[-2:].isna().all()
    assert fwd.loc["BBB"].iloc[-2:].isna().all()
    assert fwd.loc[("BBB", dates[0])] == pytest.approx(80 / 100 - 1)
    y = make_target(close, horizon=2, up_threshold=0.01, down_threshold=-0.01)
    assert y.isna().sum() == 4
    assert y.loc["BBB"].dropna().eq(0.0).all() and y.loc["AAA"].dropna().eq(2.0).all()


def test_panel_order_does_not_matter() -> None:
    dates = pd.bdate_range("2021-01-04", periods=8)
    rng = np.random.default_rng(0)
    bars = {s: pd.DataFrame({"close": 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 8)))}, index=dates) for s in "XYZ"}
    close = close_panel(bars)
    shuffled = close.sample(frac=1.0, random_state=1)
    a = forward_returns(close, 3)
    b = forward_returns(shuffled, 3)
    assert b.index.equals(shuffled.index)
    pd.testing.assert_series_equal(a, b.reindex(a.index))


def test_missing_and_bad_prices_give_nan() -> None:
    df = _single([100, np.nan, 103, 0.0, 104, 105])
    fwd = forward_returns(df["close"], 1)
    assert np.isnan(fwd.iloc[0]) and np.isnan(fwd.iloc[1]) and np.isnan(fwd.iloc[2]) and np.isnan(fwd.iloc[3])
    assert fwd.iloc[4] == pytest.approx(105 / 104 - 1)


def test_duplicate_rows_are_rejected() -> None:
    dates = pd.DatetimeIndex(["2021-01-04", "2021-01-04", "2021-01-05"])
    idx = pd.MultiIndex.from_arrays([["A", "A", "A"], dates], names=["symbol", "date"])
    with pytest.raises(ValueError, match="duplicate"):
        forward_returns(pd.Series([1.0, 2.0, 3.0], index=idx), 1)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        forward_returns(pd.Series([1.0, 2.0]), 0)
    with pytest.raises(ValueError):
        label_returns(pd.Series([0.1]), -0.01, 0.01)


def test_symbols_too_short_to_label_are_reported_and_alone_are_an_error() -> None:
    from signals.dataset import TrainingDataError, build_training_data

    def panel(lengths: dict[str, int]) -> tuple[pd.DataFrame, pd.Series]:
        bars = {s: _single(list(np.linspace(10, 12, n))) for s, n in lengths.items()}
        closes = close_panel(bars)
        return pd.DataFrame({"f": np.arange(len(closes), dtype=float)}, index=closes.index), closes

    kw = dict(horizon=5, up_threshold=0.01, down_threshold=-0.01)
    feats, closes = panel({"AAPL": 3, "MSFT": 40})
    data = build_training_data(feats, closes, symbols=["AAPL", "MSFT", "IBM"], **kw)
    assert set(data.features.index.get_level_values("symbol")) == {"MSFT"}
    assert data.dropped == {
        "AAPL": "only 3 bar(s) in the window; labelling needs more than the 5-day horizon",
        "IBM": "no bars in the requested window",
    }

    feats, closes = panel({"AAPL": 3})
    with pytest.raises(TrainingDataError, match=r"no labelled training rows .*AAPL: only 3 bar\(s\)"):
        build_training_data(feats, closes, symbols=["AAPL"], **kw)
