"""Close-only bars: the features needing only closes are bit-identical to those of full bars, the
others are NaN; and the spec's ``needs`` declarations match what the calculators really read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.data.synthetic import synthetic_bars, synthetic_fundamentals, synthetic_insider, synthetic_short_interest
from signals.data.validation import validate_bars, validate_events
from signals.features import FEATURES, FeatureError, feature_names
from signals.features.compute import compute_symbol_features
from signals.features.spec import BAR_FIELDS, INPUTS, features_needing

DATES = pd.bdate_range("2015-01-02", periods=600, name="date")
NON_CLOSE = ("open", "high", "low", "volume")
LOST = {f.name for f in features_needing(NON_CLOSE)}


def _bars(symbol: str, **kw: float) -> pd.DataFrame:
    return synthetic_bars(symbol, DATES, **kw).set_index("date")


@pytest.fixture(scope="module")
def inputs() -> dict:
    bars = _bars("AAA")
    fundamentals = validate_events(
        pd.concat([synthetic_fundamentals(s, DATES[0], DATES[-1]) for s in ("AAA", "BBB", "CCC")]), "fundamentals"
    )
    return {
        "bars": bars,
        "spy_bars": _bars("SPY", vol=0.011),
        "vix_bars": _bars("VIX", drift=0.0, vol=0.05).iloc[100:400],
        "sector_bars": _bars("XS0", vol=0.012),
        "fundamentals": fundamentals[fundamentals["symbol"] == "AAA"],
        "sector_fundamentals": fundamentals,
        "insider_transactions": validate_events(synthetic_insider("AAA", bars), "insider_transactions"),
        "short_interest": validate_events(synthetic_short_interest("AAA", bars), "short_interest"),
        "sector": "Technology",
    }


def compute(inputs: dict, **changes: object) -> pd.DataFrame:
    kw = {**inputs, **changes}
    bars, sector = kw.pop("bars"), kw.pop("sector")
    return compute_symbol_features("AAA", bars, sector=sector, **kw)


@pytest.fixture(scope="module")
def full(inputs: dict) -> pd.DataFrame:
    return compute(inputs)


def _assert_close_only_result(full: pd.DataFrame, close_only: pd.DataFrame) -> None:
    assert list(close_only.columns) == feature_names() and close_only.index.equals(full.index)
    for name in feature_names():
        a, b = full[name].to_numpy(), close_only[name].to_numpy()
        if name in LOST:
            assert np.isnan(b).all(), f"{name} needs open/high/low/volume but has values on close-only bars"
        else:
            assert a.tobytes() == b.tobytes(), f"{name} differs between full and close-only bars"


def test_close_only_features_are_bit_identical_and_the_rest_nan(inputs: dict, full: pd.DataFrame) -> None:
    close_only = compute(inputs, bars=inputs["bars"][["close"]])
    _assert_close_only_result(full, close_only)
    # not vacuous: the kept features have values, the lost ones had values on full bars
    kept = [n for n in feature_names() if n not in LOST]
    assert len(kept) == 63 and all(close_only[n].notna().any() for n in kept)
    assert len(LOST) == 22 and all(full[n].notna().any() for n in LOST)


def test_the_same_through_validation_as_a_provider_hands_it_over(inputs: dict) -> None:
    """Validated full bars vs the same raw bars with open/high/low/volume dropped, then validated."""
    raw = inputs["bars"].reset_index().assign(adj_close=lambda f: f["close"] * np.where(np.arange(len(f)) < 300, 0.5, 1.0))
    full_bars, full_report = validate_bars(raw, "AAA")
    close_bars, close_report = validate_bars(raw.drop(columns=list(NON_CLOSE)), "AAA")
    assert close_report.close_only and not full_report.close_only
    assert full_bars["close"].to_numpy().tobytes() == close_bars["close"].to_numpy().tobytes()
    _assert_close_only_result(compute(inputs, bars=full_bars), compute(inputs, bars=close_bars))


def test_close_only_benchmarks_change_nothing(inputs: dict, full: pd.DataFrame) -> None:
    """Market series may be close-only too: the cross-asset features read only their closes."""
    close_only = {k: inputs[k][["close"]] for k in ("spy_bars", "vix_bars", "sector_bars")}
    out = compute(inputs, **close_only)
    assert out.to_numpy().tobytes() == full.to_numpy().tobytes()


@pytest.mark.parametrize("field", NON_CLOSE)
def test_declared_bar_fields_are_exactly_the_ones_read(inputs: dict, full: pd.DataFrame, field: str) -> None:
    """Changing one bar field changes exactly the features that declare they need it."""
    bars = inputs["bars"].copy()
    bars[field] = bars[field] * np.exp(np.random.default_rng(5).normal(0, 0.05, len(bars)))
    changed = compute(inputs, bars=bars)
    differs = {n for n in feature_names() if not np.array_equal(full[n].to_numpy(), changed[n].to_numpy(), equal_nan=True)}
    declared = {f.name for f in features_needing([field])}
    assert differs == declared


@pytest.mark.parametrize(
    ("needs", "changes"),
    [
        ("spy", {"spy_bars": None}),
        ("vix", {"vix_bars": None}),
        ("sector_etf", {"sector_bars": None}),
        ("fundamentals", {"fundamentals": None, "sector_fundamentals": None}),
        ("insider_transactions", {"insider_transactions": None}),
        ("short_interest", {"short_interest": None}),
        ("sector", {"sector": None}),
    ],
)
def test_declared_inputs_are_exactly_the_ones_read(inputs: dict, full: pd.DataFrame, needs: str, changes: dict) -> None:
    """Without an input, the features declaring it are all NaN and no other feature changes."""
    out = compute(inputs, **changes)
    declared = {f.name for f in features_needing([needs])}
    assert declared
    for name in feature_names():
        if name in declared:
            assert out[name].isna().all(), f"{name} has values without {needs}"
        else:
            assert out[name].to_numpy().tobytes() == full[name].to_numpy().tobytes(), f"{name} changed without {needs}"


def test_every_feature_declares_known_inputs() -> None:
    assert set(BAR_FIELDS) <= set(INPUTS)
    for f in FEATURES:
        assert set(f.needs) <= set(INPUTS), f.name
        assert f.needs or f.category == "temporal", f"{f.name} declares no input"


def test_short_close_only_history_gives_nan_not_an_error() -> None:
    bars = _bars("AAA").iloc[:5][["close"]]
    out = compute_symbol_features("AAA", bars)
    assert out.shape == (5, len(FEATURES)) and out[sorted(LOST)].isna().all().all()
    empty = compute_symbol_features("AAA", bars.iloc[:0])
    assert empty.empty and list(empty.columns) == feature_names()


def test_some_but_not_all_bar_fields_is_a_feature_error(inputs: dict) -> None:
    with pytest.raises(FeatureError, match=r"bars for AAA: missing column\(s\) \['open', 'high', 'low'\]"):
        compute(inputs, bars=inputs["bars"][["close", "volume"]])
