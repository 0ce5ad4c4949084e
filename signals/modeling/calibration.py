"""Probability calibration for the 3-class model, serialisable to plain JSON.

Why our own instead of ``CalibratedClassifierCV``: the served model must load without
unpickling anything, so the calibrator is a handful of numbers (Platt slopes/intercepts, a
temperature, or isotonic breakpoints) applied with numpy. The fitting follows the same
recipes as scikit-learn (one-vs-rest Platt scaling, then renormalisation).

The calibrator must be fitted on predictions that neither the booster nor its early stopping
or trial selection saw: the walk-forward's out-of-sample predictions, forward-chained (see
:mod:`signals.modeling.forward_calibration`, which also chooses the method). The calibrator itself
only ever sees (probabilities, labels).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

Method = Literal["identity", "temperature", "sigmoid", "isotonic"]
METHODS: tuple[str, ...] = ("identity", "temperature", "sigmoid", "isotonic")
_EPS = 1e-12
#: isotonic steps are clipped to this floor: a calibrated 0 would cost an infinite log-loss the
#: first time the "impossible" class happens out of sample.
ISOTONIC_FLOOR = 1e-3


def normalize_proba(proba: np.ndarray) -> np.ndarray:
    """float64 copy whose rows sum to exactly 1 (XGBoost returns float32)."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"expected an (n, 3) probability array, got shape {p.shape}")
    p = np.clip(p, _EPS, None)
    return p / p.sum(axis=1, keepdims=True)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


class ConfidenceCalibrator:
    """Maps raw class probabilities (n, 3) to calibrated ones.

    Parameters
    ----------
    method:
        ``identity`` (the raw probabilities, renormalised: what a calibrator must beat),
        ``temperature`` (one scalar dividing the log-probabilities), ``sigmoid`` (Platt
        scaling per class on the logit, then renormalised) or ``isotonic`` (per-class monotone
        step function, floored at ``ISOTONIC_FLOOR``; needs thousands of rows).
    """

    def __init__(self, method: Method = "sigmoid") -> None:
        self.method = method

    # ------------------------------------------------------------------ fitting
    def fit(self, proba: np.ndarray, y: np.ndarray) -> "ConfidenceCalibrator":
        p = normalize_proba(proba)
        y = np.asarray(y, dtype=np.int64)
        if len(y) != len(p):
            raise ValueError(f"proba has {len(p)} rows but y has {len(y)}")
        if len(y) < 10 and self.method != "identity":
            raise ValueError(f"calibration needs at least 10 rows, got {len(y)}")
        if self.method == "identity":
            pass
        elif self.method == "sigmoid":
            self._fit_sigmoid(p, y)
        elif self.method == "temperature":
            self._fit_temperature(p, y)
        elif self.method == "isotonic":
            self._fit_isotonic(p, y)
        else:
            raise ValueError(f"unknown calibration method {self.method!r}; use one of {', '.join(METHODS)}")
        self.n_samples_ = int(len(y))
        return self

    def _fit_sigmoid(self, p: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        coefs, intercepts = [], []
        for k in range(3):
            target = (y == k).astype(int)
            if target.min() == target.max():  # class absent or universal in the slice: identity map
                coefs.append(1.0)
                intercepts.append(0.0)
                continue
            lr = LogisticRegression(C=1e6, max_iter=1000)
            lr.fit(_logit(p[:, k]).reshape(-1, 1), target)
            coefs.append(float(lr.coef_[0, 0]))
            intercepts.append(float(lr.intercept_[0]))
        self.coef_ = np.array(coefs)
        self.intercept_ = np.array(intercepts)

    def _fit_temperature(self, p: np.ndarray, y: np.ndarray) -> None:
        from scipy.optimize import minimize_scalar

        logp = np.log(p)

        def nll(log_t: float) -> float:
            z = logp / np.exp(log_t)
            z = z - z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(z).sum(axis=1))
            return float(-(z[np.arange(len(y)), y] - lse).mean())

        res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
        self.temperature_ = float(np.exp(res.x))

    def _fit_isotonic(self, p: np.ndarray, y: np.ndarray) -> None:
        from sklearn.isotonic import IsotonicRegression

        self.x_thresholds_, self.y_thresholds_ = [], []
        for k in range(3):
            iso = IsotonicRegression(out_of_bounds="clip", y_min=ISOTONIC_FLOOR, y_max=1.0)
            iso.fit(p[:, k], (y == k).astype(float))
            self.x_thresholds_.append(np.asarray(iso.X_thresholds_, dtype=float))
            self.y_thresholds_.append(np.asarray(iso.y_thresholds_, dtype=float))

    # ------------------------------------------------------------------ applying
    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, float64, rows summing to 1."""
        p = normalize_proba(proba)
        if self.method == "identity":
            return p
        if self.method == "sigmoid":
            z = _logit(p) * self.coef_ + self.intercept_
            out = 1.0 / (1.0 + np.exp(-z))
        elif self.method == "temperature":
            z = np.log(p) / self.temperature_
            z = z - z.max(axis=1, keepdims=True)
            out = np.exp(z)
        else:
            out = np.column_stack(
                [np.interp(p[:, k], self.x_thresholds_[k], self.y_thresholds_[k]) for k in range(3)]
            )
        return normalize_proba(out)

    # sklearn-style alias
    predict_proba = transform

    @property
    def n_params(self) -> int:
        """Free parameters fitted (what an information criterion charges the calibrator for)."""
        if self.method == "identity":
            return 0
        if self.method == "temperature":
            return 1
        if self.method == "sigmoid":
            return 6
        return int(sum(len(x) for x in self.y_thresholds_)) if hasattr(self, "y_thresholds_") else 0

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON parameters (what the served model stores instead of a pickle)."""
        d: dict[str, Any] = {"method": self.method, "n_samples": getattr(self, "n_samples_", None)}
        if self.method == "identity":
            pass
        elif self.method == "sigmoid":
            d.update(coef=self.coef_.tolist(), intercept=self.intercept_.tolist())
        elif self.method == "temperature":
            d.update(temperature=self.temperature_)
        else:
            d.update(
                x_thresholds=[x.tolist() for x in self.x_thresholds_],
                y_thresholds=[y.tolist() for y in self.y_thresholds_],
            )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConfidenceCalibrator":
        cal = cls(method=d["method"])
        cal.n_samples_ = d.get("n_samples")
        if cal.method == "identity":
            pass
        elif cal.method == "sigmoid":
            cal.coef_ = np.asarray(d["coef"], dtype=float)
            cal.intercept_ = np.asarray(d["intercept"], dtype=float)
        elif cal.method == "temperature":
            cal.temperature_ = float(d["temperature"])
        elif cal.method == "isotonic":
            cal.x_thresholds_ = [np.asarray(x, dtype=float) for x in d["x_thresholds"]]
            cal.y_thresholds_ = [np.asarray(y, dtype=float) for y in d["y_thresholds"]]
        else:
            raise ValueError(f"unknown calibration method {cal.method!r}")
        return cal
