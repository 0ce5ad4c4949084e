"""Bad data through the real CLI: unreadable files, invalid rows, and the market series' NaN policy.

Each case breaks one thing in a copy of a tiny parquet layout, runs a command, and checks the
exit code, that the message names what is wrong (file, symbol or table, column), that there is
no traceback, and that nothing is left behind (no partial file, no RUNNING run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from tests.bad_input.support import (
    SYMBOLS,
    Workspace,
    assert_nothing_left_behind,
    flip_byte,
    invoke,
    truncate,
)

A, B = SYMBOLS


@dataclass(frozen=True)
class Case:
    id: str
    breaks: Callable[[Workspace], None]
    code: int
    names: tuple[str, ...]  # every one must appear in the output
    args: tuple[str, ...] = ("data", "check")


def _bars(ws: Workspace) -> str:
    return str(ws.bars_file(A))


def zero_bytes(path_of: Callable[[Workspace], object]) -> Callable[[Workspace], None]:
    return lambda ws: open(path_of(ws), "wb").close()  # type: ignore[call-overload]


def edit_bars(change: Callable[[pd.DataFrame], pd.DataFrame | None], symbol: str = A) -> Callable[[Workspace], None]:
    return lambda ws: ws.edit(ws.bars_file(symbol), change)


def _nan_close(df: pd.DataFrame) -> None:
    df.loc[10, "close"] = np.nan


def _drop_volume(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="volume")


def _duplicate_conflicting(df: pd.DataFrame) -> pd.DataFrame:
    extra = df.iloc[[20]].assign(close=df["close"].iloc[20] * 1.5, high=df["high"].iloc[20] * 1.5)
    return pd.concat([df, extra], ignore_index=True)


def _unsorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[::-1].reset_index(drop=True)


def _empty(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[:0]


def _text_price(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(close=df["close"].astype(str).where(df.index != 7, "1,234.5"))  # a text column


def _infinite_price(df: pd.DataFrame) -> None:
    df.loc[12, "high"] = np.inf


def _zero_price(df: pd.DataFrame) -> None:
    df.loc[3, "low"] = 0.0


def _negative_volume(df: pd.DataFrame) -> None:
    df.loc[9, "volume"] = -100.0


def _high_below_low(df: pd.DataFrame) -> None:
    df.loc[15, ["high", "low"]] = df.loc[15, ["low", "high"]].to_numpy()


def _bad_date(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(date=df["date"].astype(str).where(df.index != 4, "2012-13-45"))


def _filed_before_period_end(ws: Workspace) -> None:
    def change(df: pd.DataFrame) -> None:
        df.loc[2, "filed_at"] = df.loc[2, "period_end"] - pd.Timedelta(days=10)

    ws.edit(ws.layout / "fundamentals.parquet", change)


def _universe_edit(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Workspace], None]:
    def apply(ws: Workspace) -> None:
        path = ws.layout / "universe.csv"
        change(pd.read_csv(path, dtype=str)).to_csv(path, index=False)

    return apply


def _vix_holidays(ws: Workspace) -> None:
    def change(df: pd.DataFrame) -> None:
        df.loc[[5, 6, 7], ["open", "high", "low", "close", "volume"]] = np.nan

    ws.edit(ws.market_file("VIX"), change)


def _broken_universe(ws: Workspace) -> None:
    (ws.layout / "universe.csv").write_text('symbol,sector,sector_etf\n"S0000,Sector0\n')


CASES = [
    # ---- unreadable files: named file and symbol/table, exit 1, no traceback
    Case("bars-zero-bytes", zero_bytes(lambda ws: ws.bars_file(A)), 1, (f"bars of symbol '{A}'", f"{A}.parquet", "empty")),
    Case("bars-truncated", lambda ws: truncate(ws.bars_file(A)), 1, (f"bars of symbol '{A}'", f"{A}.parquet")),
    Case("bars-bit-flipped", lambda ws: flip_byte(ws.bars_file(A)), 1, (f"bars of symbol '{A}'", f"{A}.parquet")),
    Case("bars-not-parquet", lambda ws: ws.bars_file(A).write_text("date,close\n2012-01-02,1\n"), 1,
         (f"bars of symbol '{A}'", "not a Parquet file")),
    Case("events-zero-bytes", zero_bytes(lambda ws: ws.layout / "fundamentals.parquet"), 1,
         ("table fundamentals", "fundamentals.parquet", "empty")),
    Case("events-truncated", lambda ws: truncate(ws.layout / "short_interest.parquet", 0.3), 1,
         ("table short_interest", "short_interest.parquet")),
    Case("market-truncated", lambda ws: truncate(ws.market_file("SPY")), 1, ("market series 'SPY'", "SPY.parquet")),
    Case("sector-etf-bit-flipped", lambda ws: flip_byte(ws.market_file("XS0")), 1, ("market series 'XS0'", "XS0.parquet")),
    Case("universe-broken-csv", _broken_universe, 1, ("universe", "universe.csv")),
    Case("universe-zero-bytes", zero_bytes(lambda ws: ws.layout / "universe.csv"), 1, ("universe", "universe.csv")),
    Case("features-build-truncated-bars", lambda ws: truncate(ws.bars_file(B)), 1,
         (f"bars of symbol '{B}'", f"{B}.parquet"), args=("features", "build")),
    # ---- invalid rows: symbol, column and first bad row
    Case("missing-column", edit_bars(_drop_volume), 1, (f"symbol '{A}'", "'volume'", "missing required column")),
    Case("nan-close", edit_bars(_nan_close), 1, (f"symbol '{A}'", "'close'", "#10", "NaN")),
    Case("duplicate-date-conflicting", edit_bars(_duplicate_conflicting), 1, (f"symbol '{A}'", "duplicate date")),
    Case("empty-bars", edit_bars(_empty), 1, (f"symbol '{A}'", "no rows")),
    Case("unknown-symbol", lambda ws: None, 1, ("unknown symbol 'NOPE'",), args=("data", "check", "-s", "NOPE")),
    Case("symbol-without-file", lambda ws: ws.bars_file(B).unlink(), 1, (f"'{B}'", f"{B}.parquet", "does not exist")),
    Case("text-price", edit_bars(_text_price), 1, (f"symbol '{A}'", "'close'", "#7", "1,234.5")),
    Case("infinite-price", edit_bars(_infinite_price), 1, (f"symbol '{A}'", "'high'", "#12")),
    Case("zero-price", edit_bars(_zero_price), 1, (f"symbol '{A}'", "'low'", "#3", "non-positive")),
    Case("negative-volume", edit_bars(_negative_volume), 1, (f"symbol '{A}'", "'volume'", "#9")),
    Case("high-below-low", edit_bars(_high_below_low), 1, (f"symbol '{A}'", "'high'", "#15", "below low")),
    Case("unparsable-date", edit_bars(_bad_date), 1, (f"symbol '{A}'", "'date'", "2012-13-45")),
    Case("filed-before-period-end", _filed_before_period_end, 1, ("fundamentals", "filed_at", "before period_end")),
    Case("universe-duplicate-symbol", _universe_edit(lambda u: pd.concat([u, u.iloc[[0]]])), 1,
         (f"'{A}'", "duplicate symbol")),
    Case("universe-missing-column", _universe_edit(lambda u: u.drop(columns="sector_etf")), 1,
         ("universe", "sector_etf")),
    Case("malformed-synthetic-marker", lambda ws: (ws.layout / "synthetic.json").write_text("{not json"), 1,
         ("synthetic.json",)),
    # ---- fixed and reported, not rejected
    Case("unsorted-dates", edit_bars(_unsorted), 0, ("sorted unsorted dates",)),
    Case("vix-nan-holiday-rows-parquet", _vix_holidays, 0, ("market/VIX", "dropped")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data(case: Case, ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    case.breaks(ws)
    res = invoke(list(case.args), capsys)
    assert res.code == case.code, res.text
    for name in case.names:
        assert name in res.text, f"{name!r} not in: {res.text}"
    assert "Traceback" not in res.text
    if case.code:
        assert res.err.lstrip().startswith("Error:") or "\nError:" in res.err, res.err
    assert_nothing_left_behind(ws)


def test_data_export_of_a_broken_source_writes_nothing(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    truncate(ws.bars_file(B))
    res = invoke(["data", "export", str(ws.root / "out")], capsys)
    assert res.code == 1 and f"bars of symbol '{B}'" in res.err
    assert not (ws.root / "out").exists()


def test_vix_nan_rows_same_policy_in_every_provider(ws: Workspace) -> None:
    """The shipped VIX has empty holiday rows: every provider drops and counts them alike."""
    from signals.data.parquet import ParquetProvider
    from signals.data.sample import SampleProvider
    from signals.data.skfolio_sp500 import SkfolioProvider

    sample, skfolio = SampleProvider(), SkfolioProvider()
    s_vix, k_vix = sample.market_bars("VIX"), skfolio.market_bars("VIX")
    s_report, k_report = sample.market_report("VIX"), skfolio.market_report("VIX")
    assert s_report is not None and k_report is not None
    assert s_report.dropped_missing_close == k_report.dropped_missing_close > 0
    pd.testing.assert_series_equal(s_vix["close"], k_vix["close"], check_freq=False)

    # the same rows, NaN holidays kept, as a parquet layout's VIX file
    import arch.data.vix

    raw = arch.data.vix.load().rename(columns=str.lower)
    raw.index.name = "date"
    frame = raw.reset_index().rename(columns={"vix": "close"}).assign(open=lambda d: d["close"], high=lambda d: d["close"],
                                                                     low=lambda d: d["close"])
    ws.write(ws.market_file("VIX"), frame)
    parquet = ParquetProvider(ws.layout)
    p_vix = parquet.market_bars("VIX")
    assert parquet.market_report("VIX").dropped_missing_close == s_report.dropped_missing_close
    pd.testing.assert_series_equal(p_vix["close"], s_vix["close"], check_freq=False)


def test_read_error_survives_a_worker_process() -> None:
    """Feature builds read bars in worker processes: the error reaches the CLI with its message."""
    import pickle

    from signals.data.errors import DataReadError

    exc = DataReadError(f"bars of symbol '{A}'", "/data/bars/X.parquet", "Parquet magic bytes not found")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is DataReadError and str(back) == str(exc) and back.path == exc.path
