"""Suspicious but valid data: ``signals data check`` warns with symbol, date and count; ``--strict``
makes the warnings an error; the features run logs them (tag and ``data_warnings.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import mlflow
import pandas as pd
import pytest

from tests.bad_input.support import SYMBOLS, Workspace, assert_nothing_left_behind, invoke

A, B = SYMBOLS
PRICES = ["open", "high", "low", "close"]


def _date(ws: Workspace, row: int, symbol: str = A) -> str:
    return pd.Timestamp(ws.read(ws.bars_file(symbol))["date"].iloc[row]).date().isoformat()


def _split(df: pd.DataFrame) -> None:  # a 2:1 split from row 100 on, prices not adjusted, no adj_close
    df.loc[100:, PRICES] = df.loc[100:, PRICES] / 2
    df.loc[100:, "volume"] = df.loc[100:, "volume"] * 2


def _split_adjusted(df: pd.DataFrame) -> pd.DataFrame:  # the same split with an adj_close that undoes it
    adj = df["close"].copy()
    _split(df)
    return df.assign(adj_close=adj)


def _close_above_high(df: pd.DataFrame) -> None:
    df.loc[50, "close"] = df.loc[50, "high"] * 1.05


def _spike(df: pd.DataFrame) -> None:  # one bad print, 1000x, back the next day
    df.loc[80, PRICES] = df.loc[80, PRICES] * 1000


def _zero_volume(df: pd.DataFrame) -> None:
    df["volume"] = 0.0


def _blank_sector(ws: Workspace) -> None:
    uni = pd.read_csv(ws.layout / "universe.csv", dtype=str)
    uni.loc[uni["symbol"] == B, "sector"] = ""
    uni.to_csv(ws.layout / "universe.csv", index=False)


def _vix_elsewhere(ws: Workspace) -> None:  # VIX five years after the bars (like the sample's 2014-2019 VIX)
    ws.edit(ws.market_file("VIX"), lambda df: df.assign(date=df["date"] + pd.Timedelta(days=5 * 365)))


def on_bars(change: Callable[[pd.DataFrame], pd.DataFrame | None], symbol: str = A) -> Callable[[Workspace], None]:
    return lambda ws: ws.edit(ws.bars_file(symbol), change)


@dataclass(frozen=True)
class Case:
    id: str
    breaks: Callable[[Workspace], None]
    check: str | None  # the warning expected (None: none at all)
    where: str  # the symbol or market series it names
    row: int | None = None  # the row whose date it names


CASES = [
    Case("split-without-adj-close", on_bars(_split), "unadjusted_split", A, 100),
    Case("split-with-adj-close", on_bars(_split_adjusted), None, A),
    Case("close-above-high", on_bars(_close_above_high), "price_outside_range", A, 50),
    Case("reverting-spike", on_bars(_spike), "reverting_spike", A, 80),
    Case("all-zero-volume", on_bars(_zero_volume, B), "zero_volume", B, 0),
    Case("blank-sector", _blank_sector, "blank_sector", B),
    Case("market-series-no-overlap", _vix_elsewhere, "market_no_overlap", "VIX"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_suspicious_data_warns_and_strict_fails(case: Case, ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    case.breaks(ws)
    res = invoke(["data", "check", "--json"], capsys)
    assert res.code == 0, res.text
    found = json.loads(res.out)["warnings"]
    if case.check is None:
        assert found == []
        assert invoke(["data", "check", "--strict"], capsys).code == 0
        return
    assert [(w["check"], w["symbol"]) for w in found] == [(case.check, case.where)], found
    if case.row is not None:
        assert found[0]["first_date"] == _date(ws, case.row, case.where) and found[0]["count"] >= 1
    text = invoke(["data", "check"], capsys)
    assert text.code == 0 and f"{case.where}: {case.check}" in text.out
    strict = invoke(["data", "check", "--strict"], capsys)
    assert strict.code == 1 and strict.err.startswith("Error:") and case.check in strict.err and case.where in strict.err
    assert "Traceback" not in strict.text
    assert_nothing_left_behind(ws)


def test_features_run_logs_the_warnings(ws: Workspace) -> None:
    """The MLflow features step carries the same warnings: a count tag and data_warnings.json."""
    from signals.lifecycle.features import run_features
    from signals.settings.model import load_settings

    on_bars(_split)(ws)
    _blank_sector(ws)
    res = run_features(load_settings())
    assert {(w["check"], w["symbol"]) for w in res.data_warnings} == {("unadjusted_split", A), ("blank_sector", B)}
    client = mlflow.MlflowClient(tracking_uri=ws.env["SA_MLFLOW__TRACKING_URI"])
    assert client.get_run(res.run_id).data.tags["signals.data_warnings"] == "2"
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{res.run_id}/data_warnings.json"))
    assert logged == res.data_warnings
    assert_nothing_left_behind(ws)
