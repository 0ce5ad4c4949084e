"""Fit + time-ordered calibration, the recipe shared by walk-forward windows, the train-step
evaluation model and the deployable model.

Recipe (:func:`fit_calibrated`): take the labelled rows of a training set, hold out the last
``calibration_fraction`` of its dates as the calibration slice, purge the rows before it whose
label window reaches into it (``horizon + embargo`` trading days), fit the booster on the rest,
predict the slice (data *later* than anything the booster saw) and fit the calibrator on those
predictions. Never shuffled K-fold: a shuffled fold would calibrate on predictions for dates
interleaved with the training dates, which are optimistic.

Pure-ish: pandas/numpy/xgboost in, objects out; no MLflow, no files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from signals.ml import metrics as M
from signals.ml.calibration import ConfidenceCalibrator
from signals.ml.pipeline import InsufficientDataError, MLPipeline, xgb_params_from
from signals.ml.predictor import SignalPredictor
from signals.ml.splits import frame_holdout_split, row_dates

PREDICTION_COLUMNS = ("symbol", "date", "y", "p_down", "p_flat", "p_up")


def labelled(features: pd.DataFrame, target: pd.Series, *extra: pd.Series) -> tuple[Any, ...]:
    """Keep rows with a known label (target not NaN); align target/extras to the features' index."""
    t = target.reindex(features.index)
    keep = t.notna().to_numpy()
    out: list[Any] = [features.loc[keep], t.loc[keep].astype(np.int64)]
    out.extend(e.reindex(features.index).loc[keep] for e in extra)
    return tuple(out)


def date_range_of(frame: pd.DataFrame | pd.Series) -> tuple[str | None, str | None]:
    if len(frame) == 0:
        return None, None
    d = row_dates(frame)
    return pd.Timestamp(d.min()).date().isoformat(), pd.Timestamp(d.max()).date().isoformat()


@dataclass
class CalibratedModel:
    """A fitted booster plus the calibrator fitted on its later, time-ordered slice."""

    pipeline: MLPipeline
    calibrator: ConfidenceCalibrator
    params: dict[str, Any]
    fit_rows: int
    calibration_rows: int
    fit_range: tuple[str | None, str | None]
    calibration_range: tuple[str | None, str | None]
    calibration_metrics: dict[str, float] = field(default_factory=dict)
    calibration_raw_proba: np.ndarray | None = None
    calibration_y: np.ndarray | None = None

    def predict_raw(self, features: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict(features)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        raw = self.pipeline.predict(features)
        return self.calibrator.transform(raw) if len(raw) else raw

    def to_predictor(self, confidence_threshold: float, metadata: dict[str, Any] | None = None) -> SignalPredictor:
        return SignalPredictor(
            booster=self.pipeline.booster_,
            calibrator=self.calibrator,
            feature_names=list(self.pipeline.feature_names_),
            confidence_threshold=confidence_threshold,
            metadata=dict(metadata or {}),
        )


def fit_calibrated(
    features: pd.DataFrame,
    y: pd.Series,
    params: dict[str, Any] | Any,
    *,
    horizon: int,
    calibration_fraction: float,
    method: str = "sigmoid",
    embargo_days: int = 0,
    seed: int = 42,
    n_jobs: int | None = None,
    min_training_samples: int = 1,
) -> CalibratedModel:
    """Fit on the earlier part of ``(features, y)``, calibrate on its last, purged slice.

    ``y`` holds labels 0/1/2 for every row of ``features`` (drop unlabelled rows first).
    """
    if len(features) != len(y):
        raise ValueError(f"features have {len(features)} rows but y has {len(y)}")
    fit_idx, cal_idx, _ = frame_holdout_split(
        features, fraction=calibration_fraction, horizon=horizon, embargo_days=embargo_days
    )
    if len(cal_idx) < 10:
        raise InsufficientDataError(f"the calibration slice has {len(cal_idx)} rows; need at least 10")
    pipe = MLPipeline(params, horizon=horizon, min_training_samples=min_training_samples, seed=seed, n_jobs=n_jobs)
    X_fit, X_cal = features.iloc[fit_idx], features.iloc[cal_idx]
    y_arr = np.asarray(y, dtype=np.int64)
    y_fit, y_cal = y_arr[fit_idx], y_arr[cal_idx]
    pipe.train(X_fit, y_fit)
    raw = pipe.predict(X_cal)
    cal = ConfidenceCalibrator(method).fit(raw, y_cal)  # type: ignore[arg-type]
    calibrated = cal.transform(raw)
    cm = {
        "calibration_log_loss_raw": M.log_loss(y_cal, raw),
        "calibration_log_loss_calibrated": M.log_loss(y_cal, calibrated),
        "calibration_ece_raw": M.expected_calibration_error(y_cal, raw),
        "calibration_ece_calibrated": M.expected_calibration_error(y_cal, calibrated),
    }
    return CalibratedModel(
        pipeline=pipe,
        calibrator=cal,
        params=xgb_params_from(params),
        fit_rows=len(fit_idx),
        calibration_rows=len(cal_idx),
        fit_range=date_range_of(X_fit),
        calibration_range=date_range_of(X_cal),
        calibration_metrics=cm,
        calibration_raw_proba=raw,
        calibration_y=y_cal,
    )


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
