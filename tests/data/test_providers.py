"""Providers on real data: the shipped sample and a parquet-layout directory written here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.data.errors import DataError, DataValidationError, UnknownSymbolError
from signals.data.parquet import ParquetProvider, export_provider, write_layout
from signals.data.sample import SampleProvider

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def sample() -> SampleProvider:
    return SampleProvider()


def test_sample_universe_and_coverage(sample: SampleProvider) -> None:
    assert sample.symbols() == ["AAPL", "GOOG", "IBM", "MSFT"]
    reports = {r.symbol: r for r in sample.check()}
    assert reports["AAPL"].first == pd.Timestamp("2000-03-01")
    assert reports["AAPL"].last == pd.Timestamp("2013-03-01")
    assert reports["GOOG"].first == pd.Timestamp("2004-08-19")
    assert all(r.adjusted_rows > 0 for r in reports.values())


def test_aapl_2005_split_is_not_a_crash(sample: SampleProvider) -> None:
    """AAPL split 2:1 on 2005-02-28: raw close halves, the adjusted series does not."""
    from bokeh_sampledata import stocks

    raw = pd.DataFrame(stocks.AAPL).set_index("date")["close"]
    raw_ret = raw.loc["2005-02-28"] / raw.loc["2005-02-25"] - 1
    assert raw_ret < -0.45

    adj = sample.bars("AAPL", "2005-02-20", "2005-03-10")
    ret = adj["close"].loc["2005-02-28"] / adj["close"].loc["2005-02-25"] - 1
    assert abs(ret) < 0.02
    # volume is scaled inversely, so dollar volume is preserved
    raw_full = pd.DataFrame(stocks.AAPL).set_index("date")
    day = "2005-03-01"
    assert np.isclose(
        adj.loc[day, "close"] * adj.loc[day, "volume"], raw_full.loc[day, "close"] * raw_full.loc[day, "volume"]
    )
    assert (adj["high"] >= adj["low"]).all()


def test_sample_market_and_events(sample: SampleProvider) -> None:
    spy = sample.market_bars("SPY")
    assert spy.index[0] == pd.Timestamp("1999-01-04") and not spy.isna().any().any()
    vix = sample.market_bars("VIX")
    assert vix.index[0].year == 2014  # the shipped VIX starts in 2014: never invented earlier
    assert sample.market_bars("NOPE") is None
    fund = sample.fundamentals(["AAPL"])
    lag = (fund["filed_at"] - fund["period_end"]).dt.days
    assert lag.min() >= 30
    si = sample.short_interest(["MSFT"])
    assert ((si["published_at"] - si["settlement_date"]).dt.days >= 8).all()
    assert sample.synthetic_tables == {"fundamentals", "insider_transactions", "short_interest"}
    # deterministic across instances
    pd.testing.assert_frame_equal(fund, SampleProvider().fundamentals(["AAPL"]))


def test_unknown_symbol_and_empty_range(sample: SampleProvider) -> None:
    with pytest.raises(UnknownSymbolError, match="'TSLA'.*AAPL"):
        sample.bars("TSLA")
    with pytest.raises(DataValidationError, match="no data between"):
        sample.bars("AAPL", "2020-01-01", "2020-12-31")


def test_parquet_layout_roundtrip(tmp_path, sample: SampleProvider) -> None:
    root = export_provider(sample, tmp_path / "data", ["AAPL", "IBM"])
    p = ParquetProvider(root)
    assert p.symbols() == ["AAPL", "IBM"]
    pd.testing.assert_frame_equal(p.bars("AAPL"), sample.bars("AAPL"), check_freq=False)
    pd.testing.assert_frame_equal(p.fundamentals(["IBM"]), sample.fundamentals(["IBM"]))
    assert p.market_bars("SPY") is not None and p.market_bars("XLK") is not None


def test_parquet_provider_with_raw_adj_close_and_optional_tables(tmp_path) -> None:
    dates = pd.bdate_range("2020-01-01", periods=6, name="date")
    close = np.array([100.0, 101, 50.5, 51, 52, 53])
    raw = pd.DataFrame(
        {
            "date": dates,
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1000.0,
            "adj_close": np.r_[close[:2] / 2, close[2:]],
        }
    )
    root = write_layout(
        tmp_path / "d",
        {"universe": pd.DataFrame({"symbol": ["xyz"], "sector": ["Tech"], "sector_etf": ["XLK"]}), "bars": {"XYZ": raw}},
    )
    p = ParquetProvider(root)
    out = p.bars("XYZ")
    assert abs(out["close"].pct_change().iloc[2]) < 0.01
    assert p.fundamentals().empty and p.short_interest().empty and p.insider_transactions().empty
    assert p.market_bars("SPY") is None


def test_parquet_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(DataError, match="universe.csv"):
        ParquetProvider(tmp_path)
    root = write_layout(
        tmp_path / "d",
        {"universe": pd.DataFrame({"symbol": ["AAA", "BBB"], "sector": "T", "sector_etf": "X"}), "bars": {}},
    )
    with pytest.raises(DataError, match="BBB.*does not exist"):
        ParquetProvider(root).bars("BBB")
    bad = pd.DataFrame({"date": ["2020-01-01", "2020-01-01"], "open": [1, 2], "high": [1, 2], "low": [1, 2],
                        "close": [1, 2], "volume": [1, 1]})
    bad.to_parquet(root / "bars" / "AAA.parquet")
    with pytest.raises(DataValidationError, match="'AAA'.*duplicate date"):
        ParquetProvider(root).bars("AAA")


@pytest.mark.parametrize(
    "shape",
    ["clean", "date index", "upper-case", "adj_close", "int volume", "unsorted", "string dates", "tz-aware"],
)
def test_parquet_columnar_read_equals_the_pandas_checks(tmp_path, shape: str) -> None:
    """The provider's Arrow fast path gives exactly what validate_bars gives on the same file."""
    from signals.data.validation import validate_bars

    rng = np.random.default_rng(1)
    n = 40
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    frame = pd.DataFrame(
        {"date": pd.bdate_range("2021-03-01", periods=n), "open": close, "high": close * 1.02, "low": close * 0.98,
         "close": close, "volume": rng.uniform(1e3, 1e4, n)}
    )
    frame = {
        "clean": frame,
        "date index": frame.set_index("date"),
        "upper-case": frame.rename(columns=str.title),
        "adj_close": frame.assign(adj_close=frame["close"] * 0.5),
        "int volume": frame.assign(volume=rng.integers(1, 9, n)),
        "unsorted": frame.iloc[::-1],
        "string dates": frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")),
        "tz-aware": frame.assign(date=frame["date"].dt.tz_localize("UTC")),
    }[shape]
    root = write_layout(
        tmp_path / "d", {"universe": pd.DataFrame({"symbol": ["X"], "sector": ["T"], "sector_etf": ["XLK"]}), "bars": {"X": frame}}
    )
    got, report = ParquetProvider(root).bars_with_report("X")
    want, want_report = validate_bars(pd.read_parquet(root / "bars" / "X.parquet"), "X")
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert report == want_report


def test_parquet_close_only_layout(tmp_path) -> None:
    """bars/<SYM>.parquet and market/SPY.parquet with only date and close; the universe without a sector ETF."""
    dates = pd.bdate_range("2020-01-01", periods=30, name="date")
    close = 50 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, 30)))
    full = pd.DataFrame({"date": dates, "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": 1e4})
    root = write_layout(
        tmp_path / "d",
        {
            "universe": pd.DataFrame({"symbol": ["CLO", "FUL"], "sector": "Energy", "sector_etf": ["", "XLE"]}),
            "bars": {"CLO": full[["date", "close"]], "FUL": full},
            "market": {"SPY": full[["date", "close"]]},
        },
    )
    p = ParquetProvider(root)
    bars, report = p.bars_with_report("CLO")
    assert report.close_only and bars[["open", "high", "low", "volume"]].isna().all().all()
    np.testing.assert_array_equal(bars["close"], close)
    assert not p.bars_with_report("FUL")[1].close_only
    assert p.market_bars("SPY")["volume"].isna().all()
    assert p.sector_of("CLO") == ("Energy", "") and p.market_bars("") is None


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_feature_store_mixes_full_and_close_only_symbols(tmp_path, n_jobs: int) -> None:
    """A close-only symbol next to a full one: the full one's features are those it has alone,
    and the build says which symbol lacks which fields (in-process and from worker processes)."""
    from signals.features import FeatureStore

    dates = pd.bdate_range("2019-01-01", periods=400, name="date")
    from signals.data.synthetic import synthetic_bars

    full = synthetic_bars("FUL", dates)
    tables = {
        "universe": pd.DataFrame({"symbol": ["CLO", "FUL"], "sector": "Energy", "sector_etf": ""}),
        "bars": {"CLO": synthetic_bars("CLO", dates)[["date", "close"]], "FUL": full},
        "market": {"SPY": synthetic_bars("SPY", dates)[["date", "close"]]},
    }
    root = write_layout(tmp_path / "d", tables)
    store = FeatureStore(tmp_path / "cache", n_jobs=n_jobs, min_parallel_symbols=2)
    both = store.get_features(None, None, None, ParquetProvider(root))
    assert store.last_stats.workers == n_jobs
    assert store.last_stats.absent_fields == {"CLO": ("open", "high", "low", "volume")}
    alone = FeatureStore(tmp_path / "cache2", n_jobs=1).get_features(["FUL"], None, None, ParquetProvider(root))
    assert both.loc["FUL"].to_numpy().tobytes() == alone.loc["FUL"].to_numpy().tobytes()
    assert both.loc["CLO", "gap"].isna().all() and both.loc["CLO", "ret_5"].notna().sum() == 395
    again = store.get_features(None, None, None, ParquetProvider(root))  # from the cache: still reported
    assert store.last_stats.cache_hits == 2 and store.last_stats.absent_fields == {"CLO": ("open", "high", "low", "volume")}
    assert again.to_numpy().tobytes() == both.to_numpy().tobytes()


def test_a_pickled_provider_carries_how_to_read_not_what_it_read(tmp_path) -> None:
    """Sent to a feature worker per chunk: the bars and tables it has read stay behind."""
    import pickle

    from signals.data.synthetic import synthetic_universe

    provider = ParquetProvider(write_layout(tmp_path / "d", synthetic_universe(3, 60, n_sectors=1)))
    provider.bars("S0000")
    provider.fundamentals()
    copy = pickle.loads(pickle.dumps(provider))
    assert not copy._bars_cache and not copy._events_cache and provider._bars_cache
    pd.testing.assert_frame_equal(copy.bars("S0000"), provider.bars("S0000"))
    assert copy.symbols() == provider.symbols()
