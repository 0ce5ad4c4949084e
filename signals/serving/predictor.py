"""The inference core shared by the served pyfunc model, the strategy and the backtest.

Kept free of MLflow so it can be used and benchmarked in process; it needs only numpy,
pandas and xgboost. ``SignalPredictor`` = XGBoost booster + JSON calibrator + the
feature list and thresholds it was trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from signals.core.vocabulary import (
    CLASS_NAMES,
    DOWN,
    REASON_BELOW_THRESHOLD,
    REASON_PREDICTED_FLAT,
    SIGNAL_LONG,
    SIGNAL_NONE,
    SIGNAL_SHORT,
    UP,
)
from signals.modeling.calibration import ConfidenceCalibrator, normalize_proba
from signals.serving.guard import FeatureCoverage, check_rows

OUTPUT_COLUMNS = ("p_down", "p_flat", "p_up", "predicted_class", "confidence", "signal", "reason")

BOOSTER_FILE = "booster.ubj"
CALIBRATOR_FILE = "calibrator.json"
CONFIG_FILE = "model_config.json"
REFERENCE_FILE = "reference.parquet"


class FeatureMismatchError(ValueError):
    """The input frame lacks features the model was trained on."""


@dataclass
class SignalPredictor:
    booster: Any  # xgboost.Booster
    calibrator: ConfidenceCalibrator | None
    feature_names: list[str]
    confidence_threshold: float = 0.55
    metadata: dict[str, Any] = field(default_factory=dict)
    #: what the model saw in training (None: an artifact from before coverage was recorded)
    coverage: FeatureCoverage | None = None

    @classmethod
    def from_model(cls, model: Any, confidence_threshold: float,
                   metadata: dict[str, Any] | None = None,
                   coverage: FeatureCoverage | None = None) -> "SignalPredictor":
        """The predictor of a fitted :class:`signals.modeling.final_fit.CalibratedModel`."""
        return cls(
            booster=model.pipeline.booster_,
            calibrator=model.calibrator,
            feature_names=list(model.pipeline.feature_names_),
            confidence_threshold=confidence_threshold,
            metadata=dict(metadata or {}),
            coverage=coverage,
        )

    # ------------------------------------------------------------------ inference
    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
            raise FeatureMismatchError(
                f"missing feature column(s): {shown} ({len(missing)} of the {len(self.feature_names)} the model needs)"
            )
        frame = features[self.feature_names]
        bad = [c for c in self.feature_names if not (pd.api.types.is_numeric_dtype(frame[c]) or frame[c].isna().all())]
        if bad:
            shown = ", ".join(f"{c} ({frame[c].dtype})" for c in bad[:10])
            raise FeatureMismatchError(f"non-numeric feature column(s): {shown}; every feature must be a number")
        x = frame.to_numpy(dtype=np.float32, na_value=np.nan)
        x[~np.isfinite(x)] = np.nan  # +-Infinity is missing, like NaN (the guard counts both)
        return x

    def raw_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Uncalibrated probabilities, float64, rows summing to 1."""
        x = self._matrix(features)
        if len(x) == 0:
            return np.empty((0, 3))
        return normalize_proba(self.booster.inplace_predict(x))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated (n, 3) probabilities in [DOWN, FLAT, UP] order."""
        raw = self.raw_proba(features)
        if self.calibrator is None or len(raw) == 0:
            return raw
        return self.calibrator.transform(raw)

    def guard(self, features: pd.DataFrame, min_coverage: float | None = None) -> list[str | None]:
        """Per row, why the model may not judge it (None: it may); see :mod:`signals.serving.guard`."""
        self._matrix(features.head(0))  # a missing column is a request error, not a row verdict
        return check_rows(features, self.feature_names, self.coverage, min_coverage)

    def predict_frame(
        self, features: pd.DataFrame, *, threshold: float | None = None, min_coverage: float | None = None
    ) -> pd.DataFrame:
        """Per row: p_down, p_flat, p_up, predicted_class, confidence, signal, reason.

        Rows failing the coverage guard keep their probabilities but get signal NONE and the
        guard's reason. ``threshold`` / ``min_coverage`` override the values saved with the model.
        """
        p = self.predict_proba(features)
        t = self.confidence_threshold if threshold is None else float(threshold)
        return proba_to_frame(p, t, index=features.index, guard=self.guard(features, min_coverage))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> dict[str, str]:
        """Write booster (XGBoost's own format), calibrator and config; return artifact paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(d / BOOSTER_FILE))
        (d / CALIBRATOR_FILE).write_text(json.dumps(self.calibrator.to_dict() if self.calibrator else None, indent=2))
        config = {
            "feature_names": self.feature_names,
            "confidence_threshold": self.confidence_threshold,
            "classes": list(CLASS_NAMES),
            "metadata": self.metadata,
            "coverage": self.coverage.to_dict() if self.coverage else None,
        }
        (d / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
        return {
            "booster": str(d / BOOSTER_FILE),
            "calibrator": str(d / CALIBRATOR_FILE),
            "config": str(d / CONFIG_FILE),
        }

    @classmethod
    def load(cls, booster_path: str, calibrator_path: str, config_path: str) -> "SignalPredictor":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(booster_path)
        cal_dict = json.loads(Path(calibrator_path).read_text())
        config = json.loads(Path(config_path).read_text())
        return cls(
            booster=booster,
            calibrator=ConfidenceCalibrator.from_dict(cal_dict) if cal_dict else None,
            feature_names=list(config["feature_names"]),
            confidence_threshold=float(config["confidence_threshold"]),
            metadata=dict(config.get("metadata", {})),
            coverage=FeatureCoverage.from_dict(config.get("coverage")),  # absent in older artifacts
        )

    @classmethod
    def load_dir(cls, directory: str | Path) -> "SignalPredictor":
        d = Path(directory)
        return cls.load(str(d / BOOSTER_FILE), str(d / CALIBRATOR_FILE), str(d / CONFIG_FILE))


def decide(predicted_class: int, confidence: float, threshold: float, guard_reason: str | None = None) -> tuple[str, str | None]:
    """(signal, reason): LONG for a confident UP, SHORT for a confident DOWN, else NONE and why.

    Confidence must *exceed* the threshold. A guard reason always wins: no trade on a row
    the model cannot judge, however confident it looks.
    """
    if guard_reason:
        return SIGNAL_NONE, guard_reason
    if predicted_class not in (UP, DOWN):
        return SIGNAL_NONE, REASON_PREDICTED_FLAT
    if not confidence > threshold:
        return SIGNAL_NONE, REASON_BELOW_THRESHOLD
    return (SIGNAL_LONG if predicted_class == UP else SIGNAL_SHORT), None


def proba_to_frame(
    p: np.ndarray, confidence_threshold: float, index: pd.Index | None = None, guard: list[str | None] | None = None
) -> pd.DataFrame:
    """Turn calibrated probabilities (and the guard's per-row reasons) into the output frame.

    ``predicted_class`` stays the integer (0 DOWN / 1 FLAT / 2 UP) here; user-facing outputs
    show its name (see :mod:`signals.serving.schema`).
    """
    n = len(p)
    cls = p.argmax(axis=1).astype(np.int64) if n else np.empty(0, dtype=np.int64)
    conf = p.max(axis=1) if n else np.empty(0)
    reasons = list(guard) if guard is not None else [None] * n
    decided = [decide(int(c), float(x), confidence_threshold, r) for c, x, r in zip(cls, conf, reasons)]
    return pd.DataFrame(
        {
            "p_down": p[:, 0] if n else [],
            "p_flat": p[:, 1] if n else [],
            "p_up": p[:, 2] if n else [],
            "predicted_class": cls,
            "confidence": conf,
            "signal": pd.Series([d[0] for d in decided], dtype=object, index=index),
            "reason": pd.Series([d[1] for d in decided], dtype=object, index=index),
        },
        index=index,
    )
