"""The dataset layer: labels, and the labelled training panel the models learn from.

The 3-class target: DOWN (0) / FLAT (1) / UP (2) from the forward return over the horizon.

``forward_return[t] = close[t + h] / close[t] - 1`` where ``t + h`` is the h-th *next row of the
same symbol* (rows are trading days), on split/dividend-adjusted closes. It is computed per
symbol, so a return never spans two symbols. The last ``h`` rows of each symbol have no future:
their forward return and label are NaN (they are dropped from training, never labelled FLAT).

Pure functions on pandas objects; nothing here reads data or logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import pandas as pd

from signals.core.digest import frame_digest
from signals.core.errors import SignalsError
from signals.core.vocabulary import CLASS_LABELS, DOWN, FLAT, UP  # noqa: F401 - the label values, re-exported
from signals.data import get_provider
from signals.data.base import data_source_description
from signals.data.suspicious import logged_data_warnings
from signals.features import FEATURE_VERSION, FeatureStore

if TYPE_CHECKING:
    from signals.settings.model import Settings

log = logging.getLogger("signals.dataset")


class TrainingDataError(SignalsError, ValueError):
    """No requested symbol yields a labelled row (e.g. every one is a new listing)."""



def _symbol_level(index: pd.Index) -> str | int | None:
    """Name/position of the symbol level of a (symbol, date) MultiIndex; None for a flat index."""
    if not isinstance(index, pd.MultiIndex):
        return None
    if "symbol" in index.names:
        return "symbol"
    return 0


def _date_level(index: pd.MultiIndex) -> str | int:
    return "date" if "date" in index.names else 1


def forward_returns(close: pd.Series, horizon: int) -> pd.Series:
    """Forward simple return over ``horizon`` rows, per symbol, aligned to ``close``'s index.

    ``close`` is indexed by date (one symbol) or by a (symbol, date) MultiIndex. Rows are put in
    date order within each symbol before shifting; the result keeps the input's row order.
    Non-positive or missing prices give NaN.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    close = pd.to_numeric(close, errors="coerce").astype("float64")
    close = close.where(close > 0)
    sym = _symbol_level(close.index)
    if sym is None:
        ordered = close.sort_index(kind="stable")
        fwd = ordered.shift(-horizon) / ordered - 1.0
    else:
        date = _date_level(close.index)
        ordered = close.sort_index(level=[sym, date], kind="stable")
        future = ordered.groupby(level=sym, sort=False).shift(-horizon)
        fwd = future / ordered - 1.0
    if not ordered.index.is_unique:
        raise ValueError("close index has duplicate entries; expected one row per (symbol, date)")
    return fwd.reindex(close.index).rename("forward_return")


def label_returns(fwd: pd.Series | np.ndarray, up_threshold: float, down_threshold: float):
    """Map forward returns to 2 (> up), 0 (< down), 1 otherwise; NaN stays NaN (float dtype)."""
    if up_threshold <= down_threshold:
        raise ValueError("up_threshold must be greater than down_threshold")
    values = np.asarray(fwd, dtype="float64")
    out = np.where(values > up_threshold, float(UP), np.where(values < down_threshold, float(DOWN), float(FLAT)))
    out[np.isnan(values)] = np.nan
    if isinstance(fwd, pd.Series):
        return pd.Series(out, index=fwd.index, name="target")
    return out


def make_target(
    df: pd.DataFrame | pd.Series,
    *,
    horizon: int,
    up_threshold: float,
    down_threshold: float,
    close_col: str = "close",
) -> pd.Series:
    """Labels (float: 0.0 / 1.0 / 2.0, NaN where the future is unknown) aligned to ``df``."""
    close = df if isinstance(df, pd.Series) else df[close_col]
    return label_returns(forward_returns(close, horizon), up_threshold, down_threshold)


def close_panel(bars_by_symbol: dict[str, pd.DataFrame], close_col: str = "close") -> pd.Series:
    """Stack per-symbol date-indexed bars into one close Series indexed by (symbol, date)."""
    parts = []
    for symbol, bars in bars_by_symbol.items():
        s = bars[close_col].astype("float64").copy()
        s.index = pd.MultiIndex.from_arrays(
            [np.full(len(s), symbol, dtype=object), pd.DatetimeIndex(s.index)], names=["symbol", "date"]
        )
        parts.append(s)
    if not parts:
        return pd.Series(
            [], dtype="float64", index=pd.MultiIndex.from_arrays([[], pd.DatetimeIndex([])], names=["symbol", "date"])
        )
    return pd.concat(parts).rename(close_col)


def labelled(features: pd.DataFrame, target: pd.Series, *extra: pd.Series) -> tuple[Any, ...]:
    """Keep rows with a known label (target not NaN); align target/extras to the features' index."""
    t = target.reindex(features.index)
    keep = t.notna().to_numpy()
    out: list[Any] = [features.loc[keep], t.loc[keep].astype(np.int64)]
    out.extend(e.reindex(features.index).loc[keep] for e in extra)
    return tuple(out)



# ------------------------------------------------------------------------------- the labelled panel
@dataclass
class TrainingData:
    """The labelled panel: features, labels and forward returns on the same (symbol, date) rows."""

    features: pd.DataFrame
    y: pd.Series
    forward_return: pd.Series
    symbols: list[str]
    start: str | None
    end: str | None
    source: dict[str, Any]
    feature_version: str
    n_unlabelled: int = 0
    #: requested symbols with no labelled row, and why (reported by the train/tune runs)
    dropped: dict[str, str] = field(default_factory=dict)
    closes: pd.Series | None = field(default=None, repr=False)  # adjusted closes by (symbol, date): prices trades
    _digest: str | None = field(default=None, repr=False)
    #: suspicious-but-valid findings on the source data (signals.data.suspicious), logged by the runs
    data_warnings: list[dict[str, Any]] = field(default_factory=list)

    def prices(self) -> pd.DataFrame | None:
        """Adjusted closes as a date x symbol frame (what the strategy backtest prices with)."""
        if self.closes is None:
            return None
        return wide_closes(self.closes)

    @property
    def first_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.features.index.get_level_values("date").min())

    @property
    def last_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.features.index.get_level_values("date").max())

    def frame(self) -> pd.DataFrame:
        """Flat frame (symbol, date, features..., target, forward_return) for MLflow datasets."""
        out = self.features.copy()
        out["target"] = self.y.to_numpy()
        out["forward_return"] = self.forward_return.to_numpy()
        return out.reset_index()

    @property
    def digest(self) -> str:
        if self._digest is None:

            self._digest = frame_digest(self.features, self.y, self.forward_return)
        return self._digest

    def window(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "start": self.first_date.date().isoformat(),
            "end": self.last_date.date().isoformat(),
            "n_rows": int(len(self.features)),
        }


def build_training_data(
    features: pd.DataFrame,
    closes: pd.Series,
    *,
    horizon: int,
    up_threshold: float,
    down_threshold: float,
    symbols: Sequence[str],
    start: Any = None,
    end: Any = None,
    source: dict[str, Any] | None = None,
    feature_version: str = "unknown",
) -> TrainingData:
    """Label ``features`` from adjusted ``closes`` (both indexed by (symbol, date)) and keep the
    labelled rows. Labels only use closes inside [start, end]: the last ``horizon`` rows of each
    symbol before ``end`` stay unlabelled rather than peeking past the requested window."""
    fwd = forward_returns(closes, horizon)
    y = label_returns(fwd, up_threshold, down_threshold)
    features = features.sort_index()
    X, yl, fl = labelled(features, y, fwd)
    fl = fl.astype("float64")
    dropped = dropped_symbols(symbols, features, X, closes, horizon)
    if len(X) == 0:
        detail = "; ".join(f"{s}: {why}" for s, why in dropped.items()) or "no rows"
        raise TrainingDataError(f"no labelled training rows in the requested window ({detail})")
    return TrainingData(
        features=X,
        y=yl.rename("target"),
        forward_return=fl.rename("forward_return"),
        symbols=list(symbols),
        start=str(start) if start is not None else None,
        end=str(end) if end is not None else None,
        source=dict(source or {}),
        feature_version=str(feature_version),
        n_unlabelled=int(len(features) - len(X)),
        dropped=dropped,
        closes=closes.astype("float64"),
    )


def dropped_symbols(
    symbols: Sequence[str], features: pd.DataFrame, labelled_features: pd.DataFrame, closes: pd.Series, horizon: int
) -> dict[str, str]:
    """Requested symbols that contribute no labelled row, each with the reason."""
    def counts(index: pd.Index) -> pd.Series:
        if len(index) == 0 or not isinstance(index, pd.MultiIndex):
            return pd.Series(dtype="int64")
        return pd.Series(1, index=index.get_level_values(_symbol_level(index))).groupby(level=0).size()

    n_bars, n_feat, n_lab = counts(closes.index), counts(features.index), counts(labelled_features.index)
    out: dict[str, str] = {}
    for s in symbols:
        bars = int(n_bars.get(s, 0))
        if int(n_lab.get(s, 0)) > 0:
            continue
        if bars == 0:
            out[s] = "no bars in the requested window"
        elif bars <= horizon:
            out[s] = f"only {bars} bar(s) in the window; labelling needs more than the {horizon}-day horizon"
        elif int(n_feat.get(s, 0)) == 0:
            out[s] = f"{bars} bars but no feature rows"
        else:
            out[s] = f"{bars} bars but no labelled row (no valid forward return)"
    return out


def load_training_data(
    settings: "Settings", symbols: Iterable[str] | None = None, start: Any = None, end: Any = None,
    *, store: FeatureStore | None = None,
) -> TrainingData:
    """Features from the feature store (``store``, default the one ``settings`` configures) + labels
    from the provider's adjusted closes."""

    provider = get_provider(settings)
    syms = provider.resolve_symbols(list(symbols or []) or settings.data.symbols or None)
    start = start if start is not None else settings.data.start
    end = end if end is not None else settings.data.end
    features = (store or FeatureStore.from_settings(settings)).get_features(syms, start, end, provider)
    closes = close_panel({s: provider.bars(s, start, end) for s in syms})
    ml = settings.ml
    data = build_training_data(
        features,
        closes,
        horizon=ml.prediction_horizon,
        up_threshold=ml.up_threshold,
        down_threshold=ml.down_threshold,
        symbols=syms,
        start=start,
        end=end,
        source=data_source_description(provider, syms, start, end),
        feature_version=str(FEATURE_VERSION),
    )
    for sym, why in data.dropped.items():
        log.warning("%s dropped from the training data: %s", sym, why)
    data.data_warnings = [w.as_dict() for w in logged_data_warnings(provider, syms)]
    return data


def wide_closes(closes: pd.Series) -> pd.DataFrame:
    """A (symbol, date) close Series as a date x symbol frame (what the backtest prices with)."""
    return closes.unstack(level="symbol" if "symbol" in closes.index.names else 0).sort_index()
