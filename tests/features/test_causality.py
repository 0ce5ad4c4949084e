"""Causality: for every feature and several cut dates, features computed from data truncated
at ``t`` equal the full-history features up to ``t``; changing anything after ``t`` changes
nothing up to ``t``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.data.schemas import AVAILABILITY_COLUMN
from signals.data.synthetic import synthetic_bars, synthetic_fundamentals, synthetic_insider, synthetic_short_interest
from signals.data.validation import validate_events
from signals.features import feature_names
from signals.features.compute import compute_symbol_features

N_DAYS = 700
DATES = pd.bdate_range("2015-01-02", periods=N_DAYS, name="date")
CUT_POSITIONS = (150, 260, 333, 452, 601, N_DAYS - 1)


def _bars(symbol: str, dates: pd.DatetimeIndex, **kw: float) -> pd.DataFrame:
    return synthetic_bars(symbol, dates, **kw).set_index("date")


@pytest.fixture(scope="module")
def inputs() -> dict:
    bars = _bars("AAA", DATES)
    peers = {s: _bars(s, DATES) for s in ("BBB", "CCC")}
    fundamentals = validate_events(
        pd.concat([synthetic_fundamentals(s, DATES[0], DATES[-1]) for s in ("AAA", *peers)]), "fundamentals"
    )
    return {
        "symbol": "AAA",
        "bars": bars,
        "spy_bars": _bars("SPY", DATES[3:], vol=0.011),  # starts a few days late
        "vix_bars": _bars("VIX", DATES[200:500], drift=0.0, vol=0.05).assign(volume=0.0),  # partial coverage
        "sector_bars": _bars("XS0", DATES, vol=0.012),
        "fundamentals": fundamentals[fundamentals["symbol"] == "AAA"],
        "sector_fundamentals": fundamentals,
        "insider_transactions": validate_events(synthetic_insider("AAA", bars), "insider_transactions"),
        "short_interest": validate_events(synthetic_short_interest("AAA", bars), "short_interest"),
        "sector": "Technology",
    }


def truncate(inputs: dict, t: pd.Timestamp) -> dict:
    """Everything known at the close of ``t``: bars up to t, events available on or before t."""
    out = dict(inputs)
    for key in ("bars", "spy_bars", "vix_bars", "sector_bars"):
        out[key] = inputs[key].loc[:t]
    for key, table in (("fundamentals", "fundamentals"), ("sector_fundamentals", "fundamentals"),
                       ("insider_transactions", "insider_transactions"), ("short_interest", "short_interest")):
        frame = inputs[key]
        out[key] = frame[frame[AVAILABILITY_COLUMN[table]] <= t]
    return out


def compute(inputs: dict) -> pd.DataFrame:
    kw = dict(inputs)
    symbol, bars, sector = kw.pop("symbol"), kw.pop("bars"), kw.pop("sector")
    return compute_symbol_features(symbol, bars, sector=sector, **kw)


def assert_prefix_equal(full: pd.DataFrame, part: pd.DataFrame, t: pd.Timestamp) -> None:
    expected = full.loc[:t]
    assert part.index.equals(expected.index)
    for name in feature_names():
        a, b = expected[name].to_numpy(), part[name].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name}: NaN pattern differs when data is cut at {t.date()}"
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=f"{name} cut at {t.date()}")


@pytest.fixture(scope="module")
def full(inputs: dict) -> pd.DataFrame:
    return compute(inputs)


def test_inputs_exercise_every_feature(full: pd.DataFrame) -> None:
    """Guard against a vacuous causality test: every feature takes real values somewhere."""
    assert list(full.columns) == feature_names()
    empty = [c for c in full.columns if full[c].isna().all()]
    assert empty == [], f"features never computed in the causality fixture: {empty}"
    varying = [c for c in full.columns if full[c].nunique() > 1]
    assert len(varying) >= 50


@pytest.mark.parametrize("pos", CUT_POSITIONS)
def test_truncated_history_gives_identical_features(inputs: dict, full: pd.DataFrame, pos: int) -> None:
    t = DATES[pos]
    assert_prefix_equal(full, compute(truncate(inputs, t)), t)


def test_changing_the_future_changes_nothing_before_it(inputs: dict, full: pd.DataFrame) -> None:
    t = DATES[400]
    future = dict(inputs)
    rng = np.random.default_rng(7)
    for key in ("bars", "spy_bars", "sector_bars", "vix_bars"):
        frame = inputs[key].copy()
        late = frame.index > t
        shock = np.exp(rng.normal(0, 0.2, late.sum()))
        frame.loc[late, ["open", "high", "low", "close"]] = frame.loc[late, ["open", "high", "low", "close"]].mul(shock, axis=0)
        if "volume" in frame and key == "bars":
            frame.loc[late, "volume"] *= 7.0
        future[key] = frame
    # a filing, an insider trade and a short-interest figure all *made available* on day t itself
    f = inputs["fundamentals"].iloc[[-1]].assign(period_end=t - pd.Timedelta(days=1), filed_at=t, pe=1000.0)
    future["fundamentals"] = pd.concat([inputs["fundamentals"], f])
    future["sector_fundamentals"] = pd.concat([inputs["sector_fundamentals"], f])
    ins = inputs["insider_transactions"].iloc[[0]].assign(transaction_date=t, filed_at=t, shares=1e9, value=1e11)
    future["insider_transactions"] = pd.concat([inputs["insider_transactions"], ins])
    si = inputs["short_interest"].iloc[[-1]].assign(settlement_date=t, published_at=t, short_interest=1e12)
    future["short_interest"] = pd.concat([inputs["short_interest"], si])
    changed = compute(future)
    assert_prefix_equal(full, changed.loc[:t], t)
    # ... and the same-day events do show up on the next bar
    nxt = DATES[401]
    assert changed.loc[nxt, "pe"] == 1000.0
    assert changed.loc[nxt, "insider_net_buys_90"] != full.loc[nxt, "insider_net_buys_90"]
    assert changed.loc[nxt, "days_to_cover"] != full.loc[nxt, "days_to_cover"]


def test_the_harness_catches_a_leaky_feature(inputs: dict, full: pd.DataFrame) -> None:
    """A centred window or a back-fill would be caught: prove the check is not a tautology."""
    t = DATES[333]
    part = compute(truncate(inputs, t))
    leaky_full = full.copy()
    leaky_part = part.copy()
    leaky_full["ret_5"] = full["ret_1"].rolling(5, center=True).mean()
    leaky_part["ret_5"] = part["ret_1"].rolling(5, center=True).mean()
    with pytest.raises(AssertionError, match="ret_5"):
        assert_prefix_equal(leaky_full, leaky_part, t)
    # back-filling warm-up rows: cut inside the SMA(200) warm-up, the filled value comes from the future
    t = DATES[150]
    with pytest.raises(AssertionError, match="price_vs_sma_200"):
        assert_prefix_equal(full.bfill(), compute(truncate(inputs, t)).bfill(), t)


# ----------------------------------------------------------------------------- close-only bars
@pytest.fixture(scope="module")
def close_only_inputs(inputs: dict) -> dict:
    """The same symbol with closes only, and close-only benchmarks (as the skfolio source has)."""
    return {**inputs, **{k: inputs[k][["close"]] for k in ("bars", "spy_bars", "vix_bars", "sector_bars")}}


@pytest.fixture(scope="module")
def close_only_full(close_only_inputs: dict) -> pd.DataFrame:
    return compute(close_only_inputs)


def test_close_only_fixture_exercises_every_close_only_feature(close_only_full: pd.DataFrame) -> None:
    from signals.features.spec import features_needing

    lost = {f.name for f in features_needing(("open", "high", "low", "volume"))}
    assert [c for c in close_only_full.columns if close_only_full[c].isna().all()] == [
        n for n in feature_names() if n in lost
    ]


@pytest.mark.parametrize("pos", CUT_POSITIONS)
def test_close_only_truncated_history_gives_identical_features(
    close_only_inputs: dict, close_only_full: pd.DataFrame, pos: int
) -> None:
    t = DATES[pos]
    assert_prefix_equal(close_only_full, compute(truncate(close_only_inputs, t)), t)
