"""Final fits, shared by the train step's evaluation model and the deployable model.

Recipe (:func:`fit_booster`): the number of boosting rounds is set by early stopping on the
last ``validation_fraction`` of the dates (time-ordered, rows before it purged when their label
window reaches into it), then the booster is refitted on *every* row with that many rounds, so
the most recent data is not left out of the model that will trade on what comes next.

The calibrator is not fitted here: it comes from the walk-forward's out-of-sample predictions
(:mod:`signals.modeling.forward_calibration`), rows no booster, early stopping or trial selection saw.
:class:`CalibratedModel` pairs the two.

Pure-ish: pandas/numpy/xgboost in, objects out; no MLflow, no files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from signals.modeling.calibration import ConfidenceCalibrator
from signals.modeling.model import InsufficientDataError, MLPipeline, xgb_params_from
from signals.modeling.splits import frame_holdout_split, row_dates

PREDICTION_COLUMNS = ("symbol", "date", "y", "p_down", "p_flat", "p_up")


def date_range_of(frame: pd.DataFrame | pd.Series) -> tuple[str | None, str | None]:
    if len(frame) == 0:
        return None, None
    d = row_dates(frame)
    return pd.Timestamp(d.min()).date().isoformat(), pd.Timestamp(d.max()).date().isoformat()


@dataclass
class FittedBooster:
    """A booster refitted on all rows, with the early-stopping evidence that set its rounds."""

    pipeline: MLPipeline
    params: dict[str, Any]
    n_rounds: int
    rows: int
    fit_range: tuple[str | None, str | None]
    stopping_rows: int
    stopping_range: tuple[str | None, str | None]
    stopping_log_loss: float


def fit_booster(
    features: pd.DataFrame,
    y: pd.Series | np.ndarray,
    params: dict[str, Any] | Any,
    *,
    horizon: int,
    validation_fraction: float = 0.2,
    early_stopping_rounds: int = 30,
    embargo_days: int = 0,
    seed: int = 42,
    n_jobs: int | None = None,
    class_weight: str = "none",
    min_training_samples: int = 1,
) -> FittedBooster:
    """Early-stop on the purged last slice to choose the rounds (``n_estimators`` is the cap),
    then refit on every row of ``(features, y)`` with those rounds."""
    y_arr, fit_idx, val_idx = stopping_split(features, y, horizon=horizon, validation_fraction=validation_fraction,
                                             embargo_days=embargo_days, min_training_samples=min_training_samples)
    common = dict(horizon=horizon, min_training_samples=1, seed=seed, n_jobs=n_jobs, class_weight=class_weight)
    probe = MLPipeline(params, **common)
    m = probe.train(features.iloc[fit_idx], y_arr[fit_idx], eval_set=(features.iloc[val_idx], y_arr[val_idx]),
                    early_stopping_rounds=early_stopping_rounds)
    n_rounds = int(m["n_rounds"])
    chosen = {**xgb_params_from(params), "n_estimators": n_rounds}
    final = MLPipeline(chosen, **common)
    final.train(features, y_arr)
    return fitted_booster(final, chosen, features, val_idx, float(m["val_log_loss"]))


def stopping_split(features: pd.DataFrame, y: pd.Series | np.ndarray, *, horizon: int, validation_fraction: float,
                   embargo_days: int, min_training_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The final fit's checked inputs: labels as an array and the (fit, early-stopping) row
    positions of the purged last slice (one recipe for the local and the Dask final fit)."""
    y_arr = np.asarray(y, dtype=np.int64)
    if len(features) != len(y_arr):
        raise ValueError(f"features have {len(features)} rows but y has {len(y_arr)}")
    if len(y_arr) < min_training_samples:
        raise InsufficientDataError(
            f"need at least {min_training_samples} labelled training rows (ml.min_training_samples), got {len(y_arr)}")
    fit_idx, val_idx, _ = frame_holdout_split(features, fraction=validation_fraction, horizon=horizon,
                                              embargo_days=embargo_days)
    if len(val_idx) < 10 or len(fit_idx) < 10:
        raise InsufficientDataError(
            f"the early-stopping split leaves {len(fit_idx)} rows to fit and {len(val_idx)} to validate; need 10 each")
    return y_arr, fit_idx, val_idx


def fitted_booster(final: MLPipeline, chosen: dict[str, Any], features: pd.DataFrame, val_idx: np.ndarray,
                   stopping_log_loss: float) -> FittedBooster:
    """The record of a final fit refitted on every row of ``features`` after early stopping on ``val_idx``."""
    return FittedBooster(
        pipeline=final, params=chosen, n_rounds=int(chosen["n_estimators"]), rows=len(features),
        fit_range=date_range_of(features), stopping_rows=len(val_idx),
        stopping_range=date_range_of(features.iloc[val_idx]), stopping_log_loss=float(stopping_log_loss),
    )


@dataclass
class CalibratedModel:
    """A fitted booster plus a calibrator fitted on out-of-sample predictions of earlier models."""

    pipeline: MLPipeline
    calibrator: ConfidenceCalibrator
    params: dict[str, Any]
    calibration: dict[str, Any] = field(default_factory=dict)

    def predict_raw(self, features: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict(features)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        raw = self.pipeline.predict(features)
        return self.calibrator.transform(raw) if len(raw) else raw


def predictions_frame(
    index: pd.Index, y: np.ndarray, proba: np.ndarray, *, forward_return: np.ndarray | None = None,
    window: int | None = None,
) -> pd.DataFrame:
    """Rows (symbol, date[, window], y, p_down, p_flat, p_up[, forward_return])."""
    if isinstance(index, pd.MultiIndex):
        symbols = index.get_level_values("symbol" if "symbol" in index.names else 0).astype(str)
    else:
        symbols = np.full(len(index), "", dtype=object)
    data: dict[str, Any] = {"symbol": np.asarray(symbols, dtype=object), "date": pd.DatetimeIndex(row_dates(pd.Series(0, index=index)))}
    if window is not None:
        data["window"] = np.full(len(index), int(window), dtype=np.int64)
    data.update(y=np.asarray(y, dtype=np.int64), p_down=proba[:, 0], p_flat=proba[:, 1], p_up=proba[:, 2])
    if forward_return is not None:
        data["forward_return"] = np.asarray(forward_return, dtype=np.float64)
    return pd.DataFrame(data)


def holdout_start(last_date: Any, months: int) -> pd.Timestamp:
    """First day of the last ``months`` calendar months ending at ``last_date`` (inclusive)."""
    last = pd.Timestamp(last_date)
    return (last - pd.DateOffset(months=months)).normalize() + pd.Timedelta(days=1)
