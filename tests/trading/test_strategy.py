"""Strategy types and MLSignalStrategy with a recording feature store and a scripted predictor."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from signals.serving.predictor import proba_to_frame
from signals.trading.strategy import (
    OHLCV,
    BaseStrategy,
    MLSignalStrategy,
    Signal,
    SignalDirection,
    StrategyError,
    bars_to_frame,
    direction_for,
    frame_to_bars,
)

FEATURES = ["f_close", "f_one"]


class RecordingStore:
    """Stands in for the FeatureStore: features from bars only; records what it was given."""

    def __init__(self):
        self.calls = []

    def compute_features(self, symbol, bars, spy, vix, sector_bars, fund, sector_fund, insider, short, *, sector=None):
        self.calls.append(dict(symbol=symbol, bars=bars, spy=spy, vix=vix, sector=sector_bars, fund=fund,
                               sector_fund=sector_fund, insider=insider, short=short, sector_label=sector))
        return pd.DataFrame({"f_close": bars["close"], "f_one": 1.0}, index=bars.index)


class ScriptedPredictor:
    """Probabilities per symbol, keyed by the feature row's close."""

    feature_names = FEATURES
    confidence_threshold = 0.55

    def __init__(self, by_close: dict[float, list[float]]):
        self.by_close = by_close

    def predict_frame(self, features, threshold=None, min_coverage=None):
        p = np.array([self.by_close[float(c)] for c in features["f_close"]], dtype=float)
        t = self.confidence_threshold if threshold is None else threshold
        return proba_to_frame(p, t, index=features.index)


class Provider:
    """A tiny provider: SPY/VIX/XLK bars and event tables with availability dates around the as-of date."""

    dates = pd.bdate_range("2020-01-01", periods=30)

    def universe(self):
        return pd.DataFrame({"symbol": ["A", "B", "C"], "sector": "Technology", "sector_etf": "XLK"})

    def market_bars(self, symbol, start=None, end=None):
        frame = pd.DataFrame({"close": np.arange(30.0) + 1}, index=self.dates.rename("date"))
        return frame.loc[start:end]

    def _events(self, col, symbols):
        ev = pd.DataFrame({"symbol": ["A", "A", "B"], col: [self.dates[3], self.dates[20], self.dates[3]], "x": [1, 2, 3]})
        return ev[ev["symbol"].isin(symbols)].reset_index(drop=True)

    def fundamentals(self, symbols=None):
        return self._events("filed_at", symbols)

    def insider_transactions(self, symbols=None):
        return self._events("filed_at", symbols)

    def short_interest(self, symbols=None):
        return self._events("published_at", symbols)


def _bars(closes, start="2020-01-01"):
    idx = pd.bdate_range(start, periods=len(closes))
    return [OHLCV(ts.to_pydatetime(), c, c + 1, c - 1, c, 1000.0) for ts, c in zip(idx, closes)]


def _strategy(settings, by_close, store=None):
    return MLSignalStrategy(Provider(), settings, predictor=ScriptedPredictor(by_close), model_version="7",
                            feature_store=store or RecordingStore())


def test_contract_and_properties(settings):
    s = _strategy(settings, {})
    assert isinstance(s, BaseStrategy)
    assert s.name == "MLSignalStrategy"
    assert s.description == "XGBoost-based signal generation with 3-class prediction (UP/DOWN/FLAT)"
    assert s.min_hold_days == 3
    assert {d.value for d in SignalDirection} == {"LONG", "SHORT", "NONE"}


def test_signals_long_short_and_nothing_for_flat_or_unconfident(settings):
    strat = _strategy(
        settings,
        {
            10.0: [0.1, 0.2, 0.7],  # UP, confident -> LONG
            20.0: [0.6, 0.3, 0.1],  # DOWN, confident -> SHORT
            30.0: [0.1, 0.8, 0.1],  # FLAT -> nothing
            40.0: [0.1, 0.35, 0.55],  # UP at exactly the threshold -> nothing (must exceed)
            1.0: [0.0, 0.0, 1.0],  # older bars: never the latest, so never used
        },
    )
    data = {"A": _bars([1.0, 10.0]), "B": _bars([1.0, 20.0]), "C": _bars([1.0, 30.0]), "D": _bars([1.0, 40.0])}
    signals = strat.generate_signals(data)
    assert [(s.symbol, s.direction) for s in signals] == [("A", SignalDirection.LONG), ("B", SignalDirection.SHORT)]
    a = signals[0]
    assert isinstance(a, Signal) and a.strategy_name == "MLSignalStrategy"
    assert a.timestamp == datetime(2020, 1, 2)  # the last bar
    assert a.strength == pytest.approx(0.7)
    assert a.metadata["predicted_class"] == "UP" and a.metadata["confidence"] == pytest.approx(0.7)
    assert a.metadata["model_version"] == "7"
    d = a.to_dict()
    assert d["direction"] == "LONG" and d["timestamp"] == "2020-01-02T00:00:00" and d["model_version"] == "7"


def test_everything_the_features_see_is_cut_at_the_last_bar(settings):
    store = RecordingStore()
    strat = _strategy(settings, {10.0: [0.1, 0.2, 0.7]}, store)
    bars = _bars([1.0] * 9 + [10.0])  # 10 bars: as-of = 2020-01-14
    as_of = pd.Timestamp("2020-01-14")
    strat.generate_signals({"A": bars})
    call = store.calls[0]
    assert call["bars"].index.max() == as_of
    for key in ("spy", "vix", "sector"):
        assert call[key].index.max() == as_of  # provider has 30 days; only <= as-of is passed
    assert call["fund"]["filed_at"].max() <= as_of and len(call["fund"]) == 1  # the day-20 filing is hidden
    assert call["short"]["published_at"].max() <= as_of
    assert set(call["sector_fund"]["symbol"]) == {"A", "B"}  # sector peers' filings, also cut
    assert call["sector_label"] == "Technology"


def test_threshold_override_and_direction_rule(settings):
    assert direction_for(2, 0.56, 0.55) is SignalDirection.LONG
    assert direction_for(0, 0.56, 0.55) is SignalDirection.SHORT
    assert direction_for(1, 0.99, 0.55) is SignalDirection.NONE
    assert direction_for(2, 0.55, 0.55) is SignalDirection.NONE
    strat = MLSignalStrategy(Provider(), settings, predictor=ScriptedPredictor({10.0: [0.1, 0.2, 0.7]}),
                             model_version="1", feature_store=RecordingStore(), confidence_threshold=0.8)
    assert strat.generate_signals({"A": _bars([10.0])}) == []


def test_bars_round_trip_and_order_check():
    bars = _bars([1.0, 2.0, 3.0])
    frame = bars_to_frame(bars)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame_to_bars(frame) == bars
    with pytest.raises(StrategyError, match="increasing"):
        bars_to_frame(list(reversed(bars)))
    assert bars_to_frame([]).empty


def test_no_champion_is_a_clear_error(settings, monkeypatch):
    import signals.registry.client as registry
    from signals.trading.strategy import NoChampionError

    class EmptyRegistry:
        def get_active(self):
            return None

    monkeypatch.setattr(registry.ModelRegistry, "from_settings", classmethod(lambda cls, s, **kw: EmptyRegistry()))
    with pytest.raises(NoChampionError, match="no champion model in the registry 'signals-xgb'"):
        MLSignalStrategy(Provider(), settings, feature_store=RecordingStore())
