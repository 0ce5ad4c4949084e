"""Technical, cross-asset and temporal calculators on tiny synthetic frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.data.synthetic import synthetic_bars
from signals.features.cross_asset import compute_cross_asset, rolling_corr_beta
from signals.features.spec import names_for
from signals.features.technical import compute_technical
from signals.features.temporal import compute_temporal


def bars_for(symbol: str, n: int = 320, start: str = "2015-01-02") -> pd.DataFrame:
    return synthetic_bars(symbol, pd.bdate_range(start, periods=n, name="date")).set_index("date")


# ----------------------------------------------------------------------------- technical
def test_technical_columns_match_registry_and_known_values() -> None:
    bars = bars_for("AAA")
    tech = compute_technical(bars)
    assert list(tech.columns) == names_for("technical")
    assert (tech.dtypes == "float64").all()
    c = bars["close"]
    assert tech["price_vs_sma_20"].iloc[40] == pytest.approx(c.iloc[40] / c.iloc[21:41].mean() - 1, rel=1e-10)
    assert tech["ret_5"].iloc[100] == pytest.approx(c.iloc[100] / c.iloc[95] - 1, rel=1e-12)
    assert tech["gap"].iloc[10] == pytest.approx(bars["open"].iloc[10] / c.iloc[9] - 1, rel=1e-12)
    hv = np.log(c).diff().iloc[41:61].std(ddof=0) * np.sqrt(252)
    assert tech["hv_20"].iloc[60] == pytest.approx(hv, rel=1e-8)
    assert tech["dist_52w_high"].iloc[300] == pytest.approx(c.iloc[300] / bars["high"].iloc[49:301].max() - 1, rel=1e-12)
    assert tech["obv_flow_20"].dropna().between(-1, 1).all()
    assert tech["rsi_14"].dropna().between(0, 100).all()


def test_warm_up_rows_are_nan_not_back_filled() -> None:
    tech = compute_technical(bars_for("AAA"))
    expected_first_valid = {"price_vs_sma_200": 199, "dist_52w_high": 251, "price_vs_sma_20": 19, "ret_60": 60, "hv_60": 60}
    for name, first in expected_first_valid.items():
        col = tech[name]
        assert col.iloc[:first].isna().all(), name
        assert col.iloc[first:].notna().all(), name


def test_technical_features_are_scale_free() -> None:
    """Rescaling prices (a different share count) and volume leaves every feature unchanged."""
    bars = bars_for("AAA")
    scaled = bars.copy()
    scaled[["open", "high", "low", "close"]] *= 37.0
    scaled["volume"] *= 0.013
    a, b = compute_technical(bars), compute_technical(scaled)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-7, atol=1e-9, equal_nan=True)


def test_rsi_of_rising_series_is_100_and_flat_bar_location_is_half() -> None:
    bars = bars_for("AAA", n=60)
    bars["close"] = np.linspace(10, 20, 60)
    bars["open"] = bars["close"]
    bars["high"] = bars["close"]
    bars["low"] = bars["close"]
    tech = compute_technical(bars)
    assert tech["rsi_14"].iloc[-1] == pytest.approx(100.0)
    assert (tech["close_location"] == 0.5).all()
    assert (tech["range_pct"] == 0).all()


def test_technical_on_short_history_is_all_warm_up() -> None:
    tech = compute_technical(bars_for("AAA", n=5))
    assert tech["price_vs_sma_20"].isna().all() and len(tech) == 5


# ----------------------------------------------------------------------------- cross-asset
def test_against_itself_corr_and_beta_are_one_relative_strength_zero() -> None:
    bars = bars_for("AAA")
    x = compute_cross_asset(bars, bars, None, bars)
    assert list(x.columns) == names_for("cross_asset")
    valid = x["spy_corr_60"].dropna()
    assert len(valid) == len(bars) - 60
    np.testing.assert_allclose(valid, 1.0, atol=1e-9)
    np.testing.assert_allclose(x["spy_beta_60"].dropna(), 1.0, atol=1e-9)
    np.testing.assert_allclose(x["rs_spy_20"].dropna(), 0.0, atol=1e-12)
    assert x["vix_level"].isna().all() and x["vix_change_5"].isna().all()


def test_benchmark_coverage_gaps_give_nan_never_invented_values() -> None:
    bars = bars_for("AAA")
    spy = bars_for("SPY")
    vix = bars_for("VIX", n=100, start="2015-03-02")  # covers only part of the stock's dates
    spy_gap = spy.drop(spy.index[150:160])  # two weeks missing
    x = compute_cross_asset(bars, spy_gap, vix, None)
    vix_on = bars.index[(bars.index >= vix.index[0]) & (bars.index <= vix.index[-1])]
    assert x.loc[vix_on, "vix_level"].tolist() == vix.loc[vix_on, "close"].tolist()
    assert x.loc[: vix.index[0] - pd.Timedelta(days=1), "vix_level"].isna().all()
    # after VIX ends, its last close is carried at most a week, then NaN
    after = x.loc[vix.index[-1] + pd.Timedelta(days=8) :, "vix_level"]
    assert len(after) > 0 and after.isna().all()
    # a 60-bar window touching the SPY gap is NaN; far from it, correlation is back
    assert x["spy_corr_60"].iloc[165:215].isna().all()
    assert x["spy_corr_60"].iloc[230:].notna().all()
    assert x[["sector_corr_60", "rs_sector_20", "rs_sector_60"]].isna().all().all()


def test_rolling_corr_beta_matches_pandas() -> None:
    rng = np.random.default_rng(0)
    r, rb = rng.normal(0, 0.01, 400), rng.normal(0, 0.01, 400) + 0.0
    r = r + 0.5 * rb
    rb[200] = np.nan
    corr, beta = rolling_corr_beta(r, rb, 60)
    a, b = pd.Series(r), pd.Series(rb)
    exp_corr = a.rolling(60, min_periods=60).corr(b)
    exp_beta = a.rolling(60, min_periods=60).cov(b) / b.rolling(60, min_periods=60).var()
    np.testing.assert_allclose(corr, exp_corr, rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(beta, exp_beta, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isnan(corr[200:260]).all() and not np.isnan(corr[260])


# ----------------------------------------------------------------------------- temporal
def test_temporal_features() -> None:
    dates = pd.DatetimeIndex(["2024-01-01", "2024-02-29", "2024-05-31", "2024-06-27", "2024-06-28", "2024-12-31"])
    t = compute_temporal(dates)
    assert list(t.columns) == names_for("temporal")
    assert t["day_of_week"].tolist() == [1, 4, 5, 4, 5, 2]
    assert t["month"].tolist() == [1, 2, 5, 6, 6, 12]
    assert t["quarter"].tolist() == [1, 1, 2, 2, 2, 4]
    assert t["day_of_year"].tolist() == [1, 60, 152, 179, 180, 366]
    # 2024-06-30 is a Sunday: Friday the 28th is the month's last weekday
    assert t["is_month_end"].tolist() == [0, 1, 1, 0, 1, 1]
