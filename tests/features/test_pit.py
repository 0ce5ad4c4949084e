"""Point-in-time joins: availability dates only, strictly after the filing day, restatements,
sector medians as of the day, staleness, and the insider / short-interest windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.features.alternative import compute_alternative
from signals.features.fundamental import compute_fundamental, sector_median_timeline
from signals.features.pit import current_record_positions, to_ns

D = pd.Timestamp


def fund_rows(symbol: str, rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """(period_end, filed_at, pe) rows; the other metrics are filler."""
    out = pd.DataFrame(
        {
            "symbol": symbol,
            "period_end": pd.to_datetime([r[0] for r in rows]),
            "filed_at": pd.to_datetime([r[1] for r in rows]),
            "pe": [r[2] for r in rows],
        }
    )
    for m, v in {"pb": 2.0, "ps": 3.0, "ev_ebitda": 9.0, "roe": 0.1, "current_ratio": 1.5, "debt_to_equity": 0.5,
                 "revenue_growth": 0.05, "earnings_growth": 0.07, "dividend_yield": 0.01}.items():
        out[m] = v
    return out


DATES = pd.bdate_range("2020-01-01", "2020-12-31", name="date")

FILINGS = [
    ("2019-12-31", "2020-02-14", 10.0),  # original Q4 (Friday)
    ("2019-12-31", "2020-04-15", 12.0),  # restatement of Q4: only from its own filing date
    ("2020-03-31", "2020-05-12", 15.0),  # Q1
    ("2019-12-31", "2020-06-01", 99.0),  # late restatement of an older period: ignored
]


def pe_series(filings: list[tuple[str, str, float]], dates: pd.DatetimeIndex = DATES) -> pd.Series:
    return compute_fundamental(dates, fund_rows("AAA", filings), None, "Technology")["pe"]


def test_filing_is_used_from_the_first_bar_strictly_after_filed_at() -> None:
    pe = pe_series(FILINGS)
    assert pe[: D("2020-02-14")].isna().all()  # not even on the filing day itself
    assert pe[D("2020-02-17")] == 10.0  # next bar after Friday 14 Feb
    assert pe[D("2020-04-15")] == 10.0
    assert pe[D("2020-04-16")] == 12.0  # restatement from the bar after its filing
    assert pe[D("2020-05-12")] == 12.0
    assert pe[D("2020-05-13")] == 15.0
    assert (pe[D("2020-05-13") :] == 15.0).all()  # the late Q4 restatement never rolls data back
    assert 99.0 not in set(pe.dropna())


def test_period_end_is_never_the_join_key() -> None:
    """Q1 2020 ends 31 March but is only visible after it is filed on 12 May."""
    pe = pe_series(FILINGS)
    assert pe[D("2020-04-01")] == 10.0 and pe[D("2020-05-11")] == 12.0


def test_shifting_a_filing_later_moves_the_change_later() -> None:
    base = pe_series(FILINGS)
    shifted = [FILINGS[0], FILINGS[1], ("2020-03-31", "2020-05-26", 15.0), FILINGS[3]]
    late = pe_series(shifted)
    first_base = base[base == 15.0].index[0]
    first_late = late[late == 15.0].index[0]
    assert first_base == D("2020-05-13") and first_late == D("2020-05-27")
    assert (late[first_base:D("2020-05-26")] == 12.0).all()
    pd.testing.assert_series_equal(base[: D("2020-05-12")], late[: D("2020-05-12")])


def test_age_and_staleness() -> None:
    dates = pd.bdate_range("2020-01-01", "2021-06-30", name="date")
    f = compute_fundamental(dates, fund_rows("AAA", [("2019-12-31", "2020-02-14", 10.0)]), None, "Technology")
    assert f.loc[D("2020-02-17"), "fundamental_age_days"] == 3.0
    # 400 days after 2020-02-14 is 2021-03-20 (a Saturday): the last bar using it is Friday 19 March
    assert f.loc[D("2021-03-19"), "pe"] == 10.0
    assert f.loc[D("2021-03-22"):, "pe"].isna().all()


def test_sector_median_uses_only_what_was_filed_before_the_bar() -> None:
    peers = pd.concat(
        [
            fund_rows("P1", [("2019-12-31", "2020-02-10", 10.0)]),
            fund_rows("P2", [("2019-12-31", "2020-03-02", 20.0)]),
            fund_rows("AAA", [("2019-12-31", "2020-03-16", 30.0), ("2020-03-31", "2020-05-04", 60.0)]),
        ]
    )
    timeline = sector_median_timeline(peers)
    f = compute_fundamental(DATES, peers[peers["symbol"] == "AAA"], timeline, "Technology")
    rel = f["pe_rel_sector"]
    med = f["pe"] / f["pe_rel_sector"]
    assert rel[: D("2020-03-16")].isna().all()  # own P/E not yet filed
    assert med[D("2020-03-17")] == pytest.approx(20.0)  # median(10, 20, 30)
    assert rel[D("2020-03-17")] == pytest.approx(1.5)
    assert rel[D("2020-05-04")] == pytest.approx(1.5)
    assert rel[D("2020-05-05")] == pytest.approx(60.0 / 20.0)  # median(10, 20, 60) = 20
    # the timeline itself steps only on filing dates (read strictly after them)
    assert timeline.loc[D("2020-02-10"), "pe"] == 10.0
    assert timeline.loc[D("2020-03-02"), "pe"] == 15.0
    assert timeline.loc[D("2020-03-16"), "pe"] == 20.0


def test_sector_dummies() -> None:
    f = compute_fundamental(DATES[:3], None, None, "Technology")
    assert (f["sector_information_technology"] == 1).all()
    assert (f["sector_energy"] == 0).all() and (f["sector_other"] == 0).all()
    assert f["pe"].isna().all()
    g = compute_fundamental(DATES[:3], None, None, "Sector3")
    assert (g["sector_other"] == 1).all() and (g["sector_information_technology"] == 0).all()
    assert compute_fundamental(DATES[:3], None, None, None)["sector_energy"].isna().all()


def test_current_record_positions() -> None:
    avail = to_ns(pd.to_datetime(["2020-02-14", "2020-04-15", "2020-05-12", "2020-06-01", "2020-05-12"]))
    period = to_ns(pd.to_datetime(["2019-12-31", "2019-12-31", "2020-03-31", "2019-12-31", "2019-12-31"]))
    # row 4 (old period, same day as a newer one) and row 3 (late old-period restatement) drop
    assert current_record_positions(avail, period).tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- alternative
def flat_bars(start: str = "2019-10-01", end: str = "2020-12-31") -> pd.DataFrame:
    idx = pd.bdate_range(start, end, name="date")
    return pd.DataFrame({"open": 50.0, "high": 51.0, "low": 49.0, "close": 50.0, "volume": 1e5}, index=idx)


INSIDER = pd.DataFrame(
    {
        "symbol": "AAA",
        "transaction_date": pd.to_datetime(["2020-01-02", "2020-03-03"]),
        "filed_at": pd.to_datetime(["2020-03-04", "2020-03-05"]),
        "shares": [1000.0, -400.0],
        "value": [50000.0, 20000.0],  # unsigned value; the side comes from the share sign
    }
)


def test_insider_window_is_on_filing_date_strictly_after_and_90_days() -> None:
    alt = compute_alternative(flat_bars(), INSIDER, None)
    net = alt["insider_net_buys_90"]
    assert net[D("2020-01-02"):D("2020-03-04")].eq(0).all()  # transaction date is not availability
    assert net[D("2020-03-05")] == 1  # the buy filed 4 March
    assert net[D("2020-03-06")] == 0  # plus the sell filed 5 March
    assert net[D("2020-06-02")] == 0  # 2020-03-04 + 90 days: still in the window
    assert net[D("2020-06-03")] == -1  # the buy left the window
    assert net[D("2020-06-04")] == 0
    assert alt.loc[D("2020-03-05"), "insider_shares_bought_90"] == pytest.approx(1000 / 1e5)
    assert alt.loc[D("2020-03-06"), "insider_net_shares_90"] == pytest.approx(600 / 1e5)
    assert alt.loc[D("2020-03-06"), "insider_net_value_90"] == pytest.approx(30000 / (50.0 * 1e5))


def test_insider_none_means_unknown_and_scaled_values_wait_for_volume_history() -> None:
    bars = flat_bars()
    assert compute_alternative(bars, None, None)["insider_net_buys_90"].isna().all()
    empty = compute_alternative(bars, INSIDER.iloc[0:0], None)
    assert (empty["insider_net_buys_90"] == 0).all()
    assert empty["insider_shares_bought_90"].iloc[:62].isna().all()  # 63-bar average volume warm-up
    assert (empty["insider_shares_bought_90"].iloc[62:] == 0).all()


SHORT = pd.DataFrame(
    {
        "symbol": "AAA",
        "settlement_date": pd.to_datetime(["2020-03-13", "2020-03-31", "2020-03-31"]),
        "published_at": pd.to_datetime(["2020-03-25", "2020-04-09", "2020-04-14"]),
        "short_interest": [300000.0, 450000.0, 500000.0],
        "avg_daily_volume": [100000.0, 150000.0, 150000.0],
    }
)


def test_short_interest_joins_on_published_at_and_revisions_apply_from_their_date() -> None:
    alt = compute_alternative(flat_bars(), None, SHORT)
    dtc, chg, ratio = alt["days_to_cover"], alt["short_interest_change"], alt["short_interest_ratio"]
    assert dtc[: D("2020-03-25")].isna().all()  # settled 13 March, but published 25 March
    assert dtc[D("2020-03-26")] == pytest.approx(3.0)
    assert ratio[D("2020-03-26")] == pytest.approx(300000 / 1e5)
    assert np.isnan(chg[D("2020-03-26")])  # no previous settlement yet
    assert chg[D("2020-04-10")] == pytest.approx(450000 / 300000 - 1)
    assert dtc[D("2020-04-14")] == pytest.approx(3.0)
    assert dtc[D("2020-04-15")] == pytest.approx(500000 / 150000)  # the revision, from the next bar
    assert chg[D("2020-04-15")] == pytest.approx(500000 / 300000 - 1)  # still vs the previous settlement
    # published 14 April + 45 days = 29 May: stale from the next bar
    assert dtc[D("2020-05-29")] == pytest.approx(500000 / 150000)
    assert dtc[D("2020-06-01"):].isna().all()


def test_nan_median_matches_numpy() -> None:
    from signals.features.fundamental import nan_median

    rng = np.random.default_rng(3)
    cube = rng.normal(size=(50, 7, 4))
    cube[rng.random(cube.shape) < 0.4] = np.nan
    cube[0] = np.nan  # a row with nothing available
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(cube, axis=1)
    np.testing.assert_allclose(nan_median(cube, axis=1), expected, equal_nan=True)
