"""Every validation rule on tiny frames: each error names the symbol, the column and the first bad row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.data.errors import DataValidationError
from signals.data.validation import slice_dates, validate_bars, validate_events


def bars(n: int = 5, **overrides) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "date": pd.bdate_range("2024-01-01", periods=n),
            "open": np.linspace(10, 11, n),
            "high": np.linspace(10.5, 11.5, n),
            "low": np.linspace(9.5, 10.5, n),
            "close": np.linspace(10.2, 11.2, n),
            "volume": np.full(n, 1000.0),
        }
    )
    for k, v in overrides.items():
        df[k] = v
    return df


def test_clean_frame_passes() -> None:
    out, report = validate_bars(bars(), "ABC")
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert out.index.name == "date" and out.index.tz is None
    assert report.rows == 5 and report.fixes == [] and report.adjusted_rows == 0


# ----------------------------------------------------------------------------- close-only bars
def close_only(n: int = 5, **extra) -> pd.DataFrame:
    return bars(n)[["date", "close"]].assign(**extra)


def test_close_only_bars_are_accepted_and_flagged() -> None:
    out, report = validate_bars(close_only(), "ABC")
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert out[["open", "high", "low", "volume"]].isna().all().all()
    np.testing.assert_array_equal(out["close"], bars()["close"])
    assert report.close_only and report.rows == 5 and report.as_dict()["bars"] == "close only"
    _, full = validate_bars(bars(), "ABC")
    assert not full.close_only and full.as_dict()["bars"] == "ohlcv"


def test_close_only_adj_close_adjusts_the_close() -> None:
    frame = close_only(4, adj_close=[5.0, 5.1, 10.4, 10.6]).assign(close=[10.0, 10.2, 10.4, 10.6])  # 2:1 split on day 3
    out, report = validate_bars(frame, "ABC")
    np.testing.assert_allclose(out["close"], [5.0, 5.1, 10.4, 10.6])
    assert report.close_only and report.adjusted_rows == 2


@pytest.mark.parametrize("empty", [np.nan, None])
def test_entirely_empty_open_high_low_volume_columns_mean_close_only(empty) -> None:
    """What a parquet file or SQL table written from close-only bars holds: the columns, all empty."""
    frame = close_only().assign(open=empty, high=empty, low=empty, volume=empty)
    out, report = validate_bars(frame, "ABC")
    assert report.close_only and out[["open", "high", "low", "volume"]].isna().all().all()


def test_partly_missing_high_is_still_an_error() -> None:
    df = bars()
    df.loc[3, "high"] = np.nan
    with pytest.raises(DataValidationError, match="NaN") as exc:
        validate_bars(df, "ABC")
    assert exc.value.column == "high" and exc.value.row.startswith("#3")


def test_some_but_not_all_of_open_high_low_volume_is_an_error() -> None:
    with pytest.raises(DataValidationError, match="or close only") as exc:
        validate_bars(close_only(volume=1000.0), "ABC")
    assert exc.value.column == "open" and "ABC" in str(exc.value)
    frame = close_only(high=np.linspace(11, 12, 5), low=np.nan, open=np.nan, volume=np.nan)
    with pytest.raises(DataValidationError) as exc:
        validate_bars(frame, "ABC")
    assert exc.value.column in {"open", "low", "volume"}


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "NaN"), (0.0, "non-positive"), (np.inf, "infinite")])
def test_close_only_closes_are_checked(value: float, problem: str) -> None:
    frame = close_only()
    frame.loc[2, "close"] = value
    with pytest.raises(DataValidationError, match=problem) as exc:
        validate_bars(frame, "ABC")
    assert exc.value.column == "close" and exc.value.row.startswith("#2")


def test_close_only_market_series_is_accepted() -> None:
    out, report = validate_bars(close_only(), "SPY", require_volume=False)
    assert report.close_only and out["volume"].isna().all()
    # a market series with OHLC but no volume keeps today's zero volume
    out, report = validate_bars(bars().drop(columns="volume"), "VIX", require_volume=False)
    assert not report.close_only and (out["volume"] == 0).all()


def test_empty_frame() -> None:
    with pytest.raises(DataValidationError, match="'ABC'.*empty"):
        validate_bars(bars().iloc[:0], "ABC")


def test_missing_column_is_named() -> None:
    with pytest.raises(DataValidationError) as exc:
        validate_bars(bars().drop(columns="low"), "ABC")
    assert exc.value.column == "low" and "ABC" in str(exc.value)


def test_non_numeric_price_names_column_and_row() -> None:
    df = bars()
    df["close"] = df["close"].astype(object)
    df.loc[3, "close"] = "n/a"
    with pytest.raises(DataValidationError) as exc:
        validate_bars(df, "ABC")
    assert exc.value.column == "close" and exc.value.row.startswith("#3 (2024-01-04)")


def test_nan_price_is_an_error() -> None:
    df = bars()
    df.loc[2, "open"] = np.nan
    with pytest.raises(DataValidationError, match="NaN") as exc:
        validate_bars(df, "ABC")
    assert exc.value.column == "open" and exc.value.row.startswith("#2")


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive_price(value: float) -> None:
    df = bars()
    df.loc[1, "low"] = value
    with pytest.raises(DataValidationError, match="non-positive") as exc:
        validate_bars(df, "ABC")
    assert exc.value.column == "low" and exc.value.row.startswith("#1")


def test_negative_volume() -> None:
    df = bars()
    df.loc[4, "volume"] = -5
    with pytest.raises(DataValidationError, match="negative volume"):
        validate_bars(df, "ABC")


def test_high_below_low() -> None:
    df = bars()
    df.loc[2, "high"] = df.loc[2, "low"] - 0.1
    with pytest.raises(DataValidationError, match="high is below low") as exc:
        validate_bars(df, "ABC")
    assert exc.value.row.startswith("#2 (2024-01-03)")


def test_unsorted_dates_are_sorted_and_reported() -> None:
    df = bars().iloc[[0, 2, 1, 3, 4]]
    out, report = validate_bars(df, "ABC")
    assert out.index.is_monotonic_increasing
    assert any("sorted" in f for f in report.fixes)


def test_exact_duplicates_dropped_and_counted() -> None:
    df = pd.concat([bars(), bars().iloc[[2]]])
    out, report = validate_bars(df, "ABC")
    assert len(out) == 5
    assert any("1 exact duplicate" in f for f in report.fixes)


def test_conflicting_duplicates_are_an_error() -> None:
    dup = bars().iloc[[2]].copy()
    dup["close"] = 99.0
    dup["high"] = 100.0
    with pytest.raises(DataValidationError, match="duplicate date") as exc:
        validate_bars(pd.concat([bars(), dup]), "ABC")
    assert exc.value.column == "date"


def test_mixed_timezones_are_an_error() -> None:
    df = bars()
    dates = list(df["date"])
    dates[3] = pd.Timestamp(dates[3]).tz_localize("America/New_York")
    df["date"] = pd.Series(dates, dtype=object)
    with pytest.raises(DataValidationError, match="timezone") as exc:
        validate_bars(df, "ABC")
    assert exc.value.row.startswith("#3")


def test_uniform_tz_aware_dates_keep_local_calendar_date() -> None:
    df = bars()
    df["date"] = df["date"].dt.tz_localize("America/New_York")
    out, _ = validate_bars(df, "ABC")
    assert out.index.tz is None
    assert out.index[0] == pd.Timestamp("2024-01-01")


def test_split_adjustment_scales_prices_and_volume_inversely() -> None:
    df = bars(4)
    df["close"] = [100.0, 102.0, 51.0, 52.0]  # 2:1 split before day 3
    df["open"], df["high"], df["low"] = df["close"], df["close"] * 1.01, df["close"] * 0.99
    df["adj_close"] = [50.0, 51.0, 51.0, 52.0]
    out, report = validate_bars(df, "ABC")
    assert report.adjusted_rows == 2
    np.testing.assert_allclose(out["close"], [50.0, 51.0, 51.0, 52.0])
    np.testing.assert_allclose(out["volume"], [2000.0, 2000.0, 1000.0, 1000.0])
    assert abs(out["close"].pct_change().iloc[2]) < 0.01


def test_slice_dates_errors() -> None:
    out, _ = validate_bars(bars(), "ABC")
    assert len(slice_dates(out, "ABC", "2024-01-02", "2024-01-03")) == 2
    with pytest.raises(DataValidationError, match="no data between"):
        slice_dates(out, "ABC", "2030-01-01", "2030-02-01")
    with pytest.raises(DataValidationError, match="after end"):
        slice_dates(out, "ABC", "2024-02-01", "2024-01-01")


def test_event_availability_before_event_is_rejected() -> None:
    ins = pd.DataFrame(
        {
            "symbol": ["ABC", "ABC"],
            "transaction_date": ["2024-01-05", "2024-01-10"],
            "filed_at": ["2024-01-08", "2024-01-09"],
            "shares": [100, -50],
            "value": [1000.0, -500.0],
        }
    )
    with pytest.raises(DataValidationError, match="filed_at is before transaction_date") as exc:
        validate_events(ins, "insider_transactions")
    assert exc.value.symbol == "ABC" and exc.value.row == "#1"


def test_event_missing_column_named() -> None:
    with pytest.raises(DataValidationError) as exc:
        validate_events(pd.DataFrame({"symbol": ["A"], "period_end": ["2024-01-01"]}), "fundamentals")
    assert exc.value.column == "filed_at"


# ----------------------------------------------------------------------------- fast path
def _variants() -> list[tuple[str, pd.DataFrame, bool]]:
    rng = np.random.default_rng(3)
    n = 300
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    dates = pd.bdate_range("2020-01-01", periods=n)
    base = pd.DataFrame(
        {
            "date": dates,
            "open": close * (1 + rng.normal(0, 0.003, n)),
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(1_000, 9_000, n),
        }
    )
    adj = base.assign(adj_close=base["close"] * np.where(np.arange(n) < 150, 0.5, 1.0))
    upper = base.rename(columns=str.upper)
    indexed = base.set_index("date")
    no_volume = base.drop(columns="volume")
    close_only = base[["date", "close"]]
    return [
        ("plain", base, True),
        ("adj_close", adj, True),
        ("upper-case columns", upper, True),
        ("date index", indexed, True),
        ("market bars without volume", no_volume, False),
        ("one row", base.head(1), True),
        ("close only", close_only, True),
        ("close only with adj_close", adj[["date", "close", "adj_close"]], True),
        ("close-only market series", close_only, False),
    ]


@pytest.mark.parametrize("name", [v[0] for v in _variants()])
def test_fast_path_returns_exactly_what_the_full_checks_return(name: str) -> None:
    from signals.data.validation import _clean_bars_fast, _validate_bars_full

    _, frame, require_volume = next(v for v in _variants() if v[0] == name)
    fast = _clean_bars_fast(frame, "X", require_volume=require_volume, adjust=True)
    assert fast is not None, "clean input should take the fast path"
    full = _validate_bars_full(frame, "X", require_volume=require_volume, adjust=True)
    pd.testing.assert_frame_equal(fast[0], full[0], check_exact=True)
    assert fast[1] == full[1]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda f: f.iloc[::-1],  # unsorted: the full path sorts and reports it
        lambda f: pd.concat([f, f.tail(1)]),  # duplicate date
        lambda f: f.assign(date=f["date"] + pd.Timedelta(hours=16)),  # time of day
        lambda f: f.assign(close=f["close"].where(f.index != 7)),  # NaN
        lambda f: f.assign(volume=-f["volume"]),
        lambda f: f.assign(low=f["high"] * 1.1),
        lambda f: f.assign(date=f["date"].dt.tz_localize("US/Eastern")),
        lambda f: f.assign(close=f["close"].astype(str)),
    ],
)
def test_anything_unusual_leaves_the_fast_path(spoil) -> None:
    from signals.data.validation import _clean_bars_fast

    frame = spoil(_variants()[0][1])
    assert _clean_bars_fast(frame, "X", require_volume=True, adjust=True) is None


def test_user_errors_survive_pickling_with_type_attributes_and_notes() -> None:
    """Raised in a worker process, they reach the caller as they were (their __init__
    signatures differ from their args, so plain exception pickling would fail)."""
    import pickle

    from signals.data.errors import UnknownSymbolError

    err = DataValidationError("ABC", "close must be > 0", "close", 3)
    err.add_note("in the chunk ABC, DEF")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is DataValidationError and str(back) == str(err)
    assert (back.symbol, back.column, back.row, back.__notes__) == ("ABC", "close", 3, ["in the chunk ABC, DEF"])
    unknown = pickle.loads(pickle.dumps(UnknownSymbolError("NOPE", ["A", "B"])))
    assert isinstance(unknown, KeyError) and unknown.symbol == "NOPE" and str(unknown).startswith("unknown symbol 'NOPE'")
