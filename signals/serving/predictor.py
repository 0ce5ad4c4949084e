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

from signals.core.vocabulary import CLASS_NAMES, SIGNAL_LONG, SIGNAL_NONE, SIGNAL_SHORT
from signals.modeling.calibration import ConfidenceCalibrator, normalize_proba

OUTPUT_COLUMNS = ("p_down", "p_flat", "p_up", "predicted_class", "confidence", "signal")

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

    @classmethod
    def from_model(cls, model: Any, confidence_threshold: float,
                   metadata: dict[str, Any] | None = None) -> "SignalPredictor":
        """The predictor of a fitted :class:`signals.modeling.final_fit.CalibratedModel`."""
        return cls(
            booster=model.pipeline.booster_,
            calibrator=model.calibrator,
            feature_names=list(model.pipeline.feature_names_),
            confidence_threshold=confidence_threshold,
            metadata=dict(metadata or {}),
        )

    # ------------------------------------------------------------------ inference
    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise FeatureMismatchError(
                f"input is missing {len(missing)} feature column(s) the model needs, e.g. {missing[:5]}"
            )
        return features[self.feature_names].to_numpy(dtype=np.float32, na_value=np.nan)

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

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per row: p_down, p_flat, p_up, predicted_class, confidence, signal."""
        p = self.predict_proba(features)
        return proba_to_frame(p, self.confidence_threshold, index=features.index)

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
        )

    @classmethod
    def load_dir(cls, directory: str | Path) -> "SignalPredictor":
        d = Path(directory)
        return cls.load(str(d / BOOSTER_FILE), str(d / CALIBRATOR_FILE), str(d / CONFIG_FILE))


def proba_to_frame(p: np.ndarray, confidence_threshold: float, index: pd.Index | None = None) -> pd.DataFrame:
    """Turn calibrated probabilities into the served output frame."""
    cls = p.argmax(axis=1).astype(np.int64) if len(p) else np.empty(0, dtype=np.int64)
    conf = p.max(axis=1) if len(p) else np.empty(0)
    confident = conf > confidence_threshold
    signal = np.full(len(p), SIGNAL_NONE, dtype=object)
    signal[confident & (cls == 2)] = SIGNAL_LONG
    signal[confident & (cls == 0)] = SIGNAL_SHORT
    return pd.DataFrame(
        {
            "p_down": p[:, 0] if len(p) else [],
            "p_flat": p[:, 1] if len(p) else [],
            "p_up": p[:, 2] if len(p) else [],
            "predicted_class": cls,
            "confidence": conf,
            "signal": signal,
        },
        index=index,
    )
