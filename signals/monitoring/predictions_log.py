"""The predictions log: every prediction ``signals generate`` makes, and their outcomes.

Storage: one Parquet file, ``data/predictions/predictions.parquet`` (relative to the working
directory, like MLflow's ``./mlruns``), one row per (symbol, date, model_version):

=================  =========================================================================
column             meaning
=================  =========================================================================
symbol, date       the bar the prediction was made *at* (features use data up to its close)
model_version      registry version id of the model that predicted
predicted_class    0 DOWN / 1 FLAT / 2 UP (argmax of the calibrated probabilities)
p_down/p_flat/p_up calibrated probabilities
confidence         max probability
direction          the signal: LONG / SHORT / NONE (after the coverage guard and the threshold)
generated_at       wall-clock UTC time the row was written
replay             True when made by an as-of replay of a past date (``--replay-days``)
in_sample          True when the date lies inside the model's own training data window
                   (a replay of the past with today's champion): its outcome flatters the model
=================  =========================================================================

Appends read the file, add the new rows, drop older duplicates of the same
(symbol, date, model_version) (a re-run replaces, never double counts) and write the whole
file atomically (temp file + rename) under a file lock, so concurrent writers cannot lose
each other's rows and a crash never leaves a torn file. A year of daily predictions for a
few hundred symbols is a few MB, so rewriting is cheap.

Outcomes are not stored: they are resolved when needed from prices (:func:`resolve_outcomes`)
*as of* a check date, so a replayed monitor never sees a price after its date.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from signals.core.errors import SignalsError
from signals.core.io import atomic_write_parquet
from signals.dataset import label_returns

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("data") / "predictions" / "predictions.parquet"
KEY = ["symbol", "date", "model_version"]
COLUMNS = [
    "symbol",
    "date",
    "model_version",
    "predicted_class",
    "p_down",
    "p_flat",
    "p_up",
    "confidence",
    "direction",
    "generated_at",
    "replay",
    "in_sample",
]


class PredictionsLogError(SignalsError):
    """The predictions log is unreadable or a row is malformed."""


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    required = ("symbol", "date", "model_version", "predicted_class", "p_down", "p_flat", "p_up", "confidence")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise PredictionsLogError(f"predictions lack column(s) {missing}")
    out = frame.copy()
    if "direction" not in out.columns:
        out["direction"] = out["signal"] if "signal" in out.columns else "NONE"
    if "generated_at" not in out.columns:
        out["generated_at"] = pd.Timestamp(datetime.now(timezone.utc)).tz_localize(None)
    for flag in ("replay", "in_sample"):
        if flag not in out.columns:
            out[flag] = False
    out["symbol"] = out["symbol"].astype(str)
    dates = pd.to_datetime(out["date"])
    out["date"] = dates.dt.tz_localize(None) if dates.dt.tz is not None else dates
    out["model_version"] = out["model_version"].astype(str)
    out["predicted_class"] = out["predicted_class"].astype("int64")
    for c in ("p_down", "p_flat", "p_up", "confidence"):
        out[c] = out[c].astype("float64")
    out["direction"] = out["direction"].astype(str)
    out["generated_at"] = pd.to_datetime(out["generated_at"])
    out["replay"] = out["replay"].astype(bool)
    out["in_sample"] = out["in_sample"].astype(bool)
    return out[COLUMNS]


class PredictionsLog:
    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = Path(path)

    def _lock(self):

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock", timeout=60)

    def _read_unlocked(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY_DTYPES.items()})[COLUMNS]
        try:
            return pd.read_parquet(self.path)
        except Exception as exc:  # noqa: BLE001
            raise PredictionsLogError(f"cannot read the predictions log {self.path}: {exc}") from exc

    def append(self, predictions: pd.DataFrame) -> int:
        """Add rows (replacing earlier rows with the same symbol, date, model_version); returns rows added."""
        if predictions is None or predictions.empty:
            return 0
        new = _normalise(predictions)
        with self._lock():
            old = self._read_unlocked()
            both = pd.concat([old, new], ignore_index=True) if not old.empty else new
            both = both.drop_duplicates(KEY, keep="last").sort_values(["date", "symbol", "model_version"], kind="stable")
            atomic_write_parquet(both.reset_index(drop=True), self.path, index=False)
        return len(new)

    def read(self, *, model_version: str | None = None, end: object = None) -> pd.DataFrame:
        """All rows (optionally one model version, dates <= ``end``), oldest first."""
        with self._lock():
            df = self._read_unlocked()
        if model_version is not None:
            df = df[df["model_version"] == str(model_version)]
        if end is not None:
            df = df[df["date"] <= pd.Timestamp(end)]
        return df.reset_index(drop=True)


_EMPTY_DTYPES = {
    "symbol": "object",
    "date": "datetime64[ns]",
    "model_version": "object",
    "predicted_class": "int64",
    "p_down": "float64",
    "p_flat": "float64",
    "p_up": "float64",
    "confidence": "float64",
    "direction": "object",
    "generated_at": "datetime64[ns]",
    "replay": "bool",
    "in_sample": "bool",
}


def resolve_outcomes(
    predictions: pd.DataFrame,
    closes: dict[str, pd.Series],
    *,
    horizon: int,
    up_threshold: float,
    down_threshold: float,
    as_of: object,
) -> pd.DataFrame:
    """Predictions whose outcome is known at ``as_of``, with the realised class.

    ``closes`` maps symbol -> date-indexed (adjusted) close. Only closes on or before
    ``as_of`` are used: a prediction made at date ``d`` is resolved when the ``horizon``-th
    trading day after ``d`` is on or before ``as_of``. Added columns: ``outcome_date``,
    ``forward_return``, ``actual_class``, ``correct``. The label rule is the training
    target's (:func:`signals.dataset.label_returns`).
    """

    cutoff = pd.Timestamp(as_of)
    cols = [*predictions.columns, "outcome_date", "forward_return", "actual_class", "correct"]
    parts = []
    for symbol, group in predictions.groupby("symbol", sort=False):
        close = closes.get(symbol)
        if close is None or close.empty:
            continue
        close = close.sort_index()
        close = close[close.index <= cutoff].astype("float64")
        dates = pd.DatetimeIndex(close.index)
        pos = dates.get_indexer(pd.DatetimeIndex(group["date"]))
        known = (pos >= 0) & (pos + horizon < len(dates))
        if not known.any():
            continue
        g = group[known].copy()
        p0 = pos[known]
        start = close.to_numpy()[p0]
        end = close.to_numpy()[p0 + horizon]
        g["outcome_date"] = dates[p0 + horizon]
        g["forward_return"] = end / start - 1.0
        g["actual_class"] = label_returns(g["forward_return"].to_numpy(), up_threshold, down_threshold)
        g = g[np.isfinite(g["actual_class"])]
        g["actual_class"] = g["actual_class"].astype("int64")
        g["correct"] = g["actual_class"].to_numpy() == g["predicted_class"].to_numpy()
        parts.append(g)
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True).sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
