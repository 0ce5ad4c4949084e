"""Trading-signal strategy types and ``MLSignalStrategy`` (the champion model as a strategy).

``MLSignalStrategy.generate_signals(data)`` takes each symbol's bars (oldest first), computes
that symbol's features through the FeatureStore *as of its last bar*, predicts with the
registry's champion and emits LONG for a confident UP, SHORT for a confident DOWN
(confidence = the calibrated top-class probability, which must *exceed*
``ml.confidence_threshold``); every other prediction is signal NONE with a reason and emits
nothing. A row failing the coverage guard (:mod:`signals.serving.guard`: too short a history,
too many missing features) is NONE whatever the model says.

No lookahead: the as-of date is the last bar passed in. Everything else the features need
(SPY, VIX, the sector ETF, fundamentals, insider filings, short interest) comes from the
provider given to the constructor, cut at that date: market bars by ``end=as_of``, event
tables by their *availability* column (``filed_at`` / ``published_at``) ``<= as_of``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.core.vocabulary import (  # noqa: F401 - class values used by callers
    CLASS_LABELS,
    DOWN,
    FLAT,
    SIGNAL_LONG,
    SIGNAL_NONE,
    SIGNAL_SHORT,
    UP,
)
from signals.data.schemas import AVAILABILITY_COLUMN
from signals.features import FeatureStore
from signals.registry.types import NoChampionError  # noqa: F401 - raised by load_champion, caught by callers
from signals.serving.predictor import decide
from signals.settings.model import load_settings

if TYPE_CHECKING:  # pragma: no cover
    from signals.data.base import DataProvider
    from signals.serving.predictor import SignalPredictor
    from signals.settings.model import Settings

log = logging.getLogger(__name__)



class StrategyError(SignalsError):
    """Bad input to a strategy (e.g. bars out of order)."""


class SignalDirection(str, Enum):
    """The signal vocabulary (signals/core/vocabulary.py): NONE means no trade."""

    LONG = SIGNAL_LONG
    SHORT = SIGNAL_SHORT
    NONE = SIGNAL_NONE


@dataclass(frozen=True)
class OHLCV:
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class Signal:
    symbol: str
    timestamp: datetime
    direction: SignalDirection
    strength: float
    strategy_name: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: ISO timestamp, direction as its name, metadata flattened in."""
        d = asdict(self)
        d["timestamp"] = pd.Timestamp(self.timestamp).isoformat()
        d["direction"] = self.direction.value
        d["strength"] = float(self.strength)
        meta = d.pop("metadata")
        return {**d, **{k: _plain(v) for k, v in meta.items()}}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


class BaseStrategy(ABC):
    """The minimal strategy contract of the wider trading system."""

    name: str = "BaseStrategy"
    description: str = ""
    min_hold_days: int = 1

    @abstractmethod
    def generate_signals(self, data: dict[str, list[OHLCV]]) -> list[Signal]:
        """Signals as of the last bar of each symbol's list."""


# --------------------------------------------------------------------------- bar helpers
def bars_to_frame(bars: Sequence[OHLCV]) -> pd.DataFrame:
    """A list of OHLCV (oldest first) -> date-indexed frame with open/high/low/close/volume."""
    if not bars:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume"], index=pd.DatetimeIndex([], name="date"))
    idx = pd.DatetimeIndex([pd.Timestamp(b.timestamp) for b in bars], name="date")
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=idx,
        dtype="float64",
    )
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        raise StrategyError("bars must be in strictly increasing timestamp order (oldest first)")
    return frame


def frame_to_bars(frame: pd.DataFrame) -> list[OHLCV]:
    """Date-indexed bars -> list of OHLCV (volume 0 where missing)."""
    vol = frame["volume"] if "volume" in frame.columns else pd.Series(0.0, index=frame.index)
    return [
        OHLCV(ts.to_pydatetime(), float(o), float(h), float(lo), float(c), float(v))
        for ts, o, h, lo, c, v in zip(frame.index, frame["open"], frame["high"], frame["low"], frame["close"], vol)
    ]


def cut_events(events: pd.DataFrame, table: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows of an event table that were *available* (published/filed) on or before ``as_of``."""

    col = AVAILABILITY_COLUMN[table]
    if events is None or events.empty or col not in events.columns:
        return events
    return events[pd.to_datetime(events[col]) <= as_of].reset_index(drop=True)


# --------------------------------------------------------------------------- the ML strategy
class MLSignalStrategy(BaseStrategy):
    name = "MLSignalStrategy"
    description = "XGBoost-based signal generation with 3-class prediction (UP/DOWN/FLAT)"
    min_hold_days = 3

    def __init__(
        self,
        provider: "DataProvider",
        settings: "Settings | None" = None,
        *,
        predictor: "SignalPredictor | None" = None,
        model_version: str | None = None,
        feature_store: Any = None,
        confidence_threshold: float | None = None,
    ) -> None:
        if settings is None:

            settings = load_settings()
        self.settings = settings
        self.provider = provider
        self.min_hold_days = settings.strategy.min_hold_days
        self.confidence_threshold = (
            settings.ml.confidence_threshold if confidence_threshold is None else float(confidence_threshold)
        )
        if predictor is None:
            from signals.serving.pyfunc import load_champion  # MLflow: imported only when loading from the registry

            predictor, model_version = load_champion(settings)
        self.predictor = predictor
        self.model_version = str(model_version) if model_version is not None else "unknown"
        if feature_store is None:

            feature_store = FeatureStore.from_settings(settings)
        self.feature_store = feature_store
        self._universe: pd.DataFrame | None = None

    # ------------------------------------------------------------------ features
    def _sector(self, symbol: str) -> tuple[str | None, str | None]:
        if self._universe is None:
            self._universe = self.provider.universe().set_index("symbol")
        if symbol not in self._universe.index:
            return None, None
        row = self._universe.loc[symbol]
        return str(row["sector"]), str(row["sector_etf"])

    def features_as_of(self, symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
        """The symbol's feature rows computed from ``bars`` and provider data cut at the last bar."""
        if bars.empty:
            return pd.DataFrame(columns=self.predictor.feature_names)
        as_of = pd.Timestamp(bars.index[-1])
        p = self.provider
        sector, sector_etf = self._sector(symbol)
        peers = (
            [s for s, row in self._universe.iterrows() if str(row["sector"]) == sector]
            if sector is not None and self._universe is not None
            else [symbol]
        )
        spy = p.market_bars("SPY", end=as_of)
        vix = p.market_bars("VIX", end=as_of)
        sector_bars = p.market_bars(sector_etf, end=as_of) if sector_etf else None
        fundamentals = cut_events(p.fundamentals([symbol]), "fundamentals", as_of)
        sector_fundamentals = cut_events(p.fundamentals(peers), "fundamentals", as_of)
        insider = cut_events(p.insider_transactions([symbol]), "insider_transactions", as_of)
        short = cut_events(p.short_interest([symbol]), "short_interest", as_of)
        return self.feature_store.compute_features(
            symbol, bars, spy, vix, sector_bars, fundamentals, sector_fundamentals, insider, short, sector=sector
        )

    # ------------------------------------------------------------------ prediction
    def feature_rows(self, bars_by_symbol: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Each symbol's feature row *at its last bar*, indexed by (symbol, date)."""
        rows, keys = [], []
        for symbol, bars in bars_by_symbol.items():
            if bars is None or bars.empty:
                continue
            as_of = pd.Timestamp(bars.index[-1])
            feats = self.features_as_of(symbol, bars)
            if feats is None or feats.empty or pd.Timestamp(feats.index[-1]) != as_of:
                log.warning("%s: no feature row for the as-of bar %s; skipped", symbol, as_of.date())
                continue
            rows.append(feats.iloc[-1])
            keys.append((symbol, as_of))
        index = pd.MultiIndex.from_tuples(keys, names=["symbol", "date"]) if keys else pd.MultiIndex.from_arrays(
            [[], pd.DatetimeIndex([])], names=["symbol", "date"]
        )
        return pd.DataFrame(rows, index=index)

    def predict_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Predictions for feature rows indexed by (symbol, date), in one model call.

        Columns: symbol, date, model_version, p_down, p_flat, p_up, predicted_class (0/1/2),
        confidence, signal (LONG / SHORT / NONE after the guard and the confidence threshold)
        and reason (why NONE; None for a trade).
        """
        cols = ["symbol", "date", "model_version", "p_down", "p_flat", "p_up", "predicted_class", "confidence",
                "signal", "reason"]
        if rows.empty:
            return pd.DataFrame(columns=cols)
        pred = self.predictor.predict_frame(
            rows, threshold=self.confidence_threshold, min_coverage=self.settings.ml.min_feature_coverage
        )
        out = pd.DataFrame(
            {
                "symbol": rows.index.get_level_values("symbol").astype(str),
                "date": pd.DatetimeIndex(rows.index.get_level_values("date")),
                "model_version": self.model_version,
                "p_down": pred["p_down"].to_numpy(dtype=float),
                "p_flat": pred["p_flat"].to_numpy(dtype=float),
                "p_up": pred["p_up"].to_numpy(dtype=float),
                "predicted_class": pred["predicted_class"].to_numpy(dtype=np.int64),
                "confidence": pred["confidence"].to_numpy(dtype=float),
                "signal": pred["signal"].to_numpy(dtype=object),
                "reason": pred["reason"].to_numpy(dtype=object),
            }
        )
        return out[cols]

    def predict_frames(self, bars_by_symbol: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """One prediction per symbol as of its last bar (see :meth:`predict_rows` for columns)."""
        return self.predict_rows(self.feature_rows(bars_by_symbol))

    def signals_from_predictions(self, predictions: pd.DataFrame) -> list[Signal]:
        signals = []
        for row in predictions.itertuples(index=False):
            direction = SignalDirection(row.signal)
            if direction is SignalDirection.NONE:
                continue
            signals.append(
                Signal(
                    symbol=row.symbol,
                    timestamp=pd.Timestamp(row.date).to_pydatetime(),
                    direction=direction,
                    strength=float(row.confidence),
                    strategy_name=self.name,
                    metadata={
                        "predicted_class": CLASS_LABELS[int(row.predicted_class)],
                        "confidence": float(row.confidence),
                        "model_version": str(row.model_version),
                        "p_down": float(row.p_down),
                        "p_flat": float(row.p_flat),
                        "p_up": float(row.p_up),
                    },
                )
            )
        return signals

    def generate_signals(self, data: dict[str, list[OHLCV]]) -> list[Signal]:
        frames = {symbol: bars_to_frame(bars) for symbol, bars in data.items()}
        return self.signals_from_predictions(self.predict_frames(frames))


def direction_for(predicted_class: int, confidence: float, threshold: float) -> SignalDirection:
    """LONG for a confident UP, SHORT for a confident DOWN, NONE otherwise (confidence must exceed)."""
    return SignalDirection(decide(predicted_class, confidence, threshold)[0])


def signals_table(signals: Iterable[Signal]) -> list[dict[str, Any]]:
    return [
        {
            "symbol": s.symbol,
            "date": pd.Timestamp(s.timestamp).date().isoformat(),
            "signal": s.direction.value,
            "strength": float(np.round(s.strength, 4)),
            "class": s.metadata.get("predicted_class", "?"),
            "model_version": s.metadata.get("model_version"),
        }
        for s in signals
    ]
