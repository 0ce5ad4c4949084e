"""The prediction guard: no signal for a row the model cannot judge.

XGBoost happily scores a row of NaNs (it routes every missing value down a default branch),
so without a guard an all-null row or a three-bar new listing comes back LONG with a
confident-looking probability. Training therefore records what the model saw
(:class:`FeatureCoverage`, saved with the model), and every prediction path -- the served
pyfunc, ``signals generate`` and ``MLSignalStrategy`` -- runs :func:`check_rows` on its feature
rows and answers a failing row with signal NONE and the reason. Probabilities are still
reported for such rows; only the signal is withheld.

The rules, in order (the first that fails names the reason):

1. Non-finite values (NaN, +-Infinity, also JSON ``NaN``/``Infinity`` literals) count as missing.
2. Every feature missing -> ``missing_features: all N``.
3. History: a symbol needs :data:`MIN_HISTORY_BARS` (252) bars before its longest-window
   features exist (:data:`LONG_WINDOW_FEATURES`). A row missing any of those that training had
   (non-null share >= 0.5, so a close-only source without highs/lows is not penalised) is
   ``insufficient_history``.
4. Coverage: of the features that were present in >= :data:`ALWAYS_PRESENT_SHARE` (99 %) of
   the training rows, the row must have at least ``min_coverage`` (``ml.min_feature_coverage``,
   default 0.9) present; otherwise ``missing_features: a, b, c`` names them (the first
   :data:`MAX_NAMED` and a count of the rest).

A model logged before coverage was recorded (no ``coverage`` in its config) still loads; the
guard then applies rules 1 and 2 only.

Pure numpy/pandas; no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

REASON_INSUFFICIENT_HISTORY = "insufficient_history"
REASON_MISSING_FEATURES = "missing_features"

#: longest-window features and the bars each needs before it exists (see signals/features/technical.py)
LONG_WINDOW_FEATURES: dict[str, int] = {"price_vs_sma_200": 200, "dist_52w_high": 252, "dist_52w_low": 252}
MIN_HISTORY_BARS: int = max(LONG_WINDOW_FEATURES.values())

#: a feature with at least this non-null share in training counts as "always present"
ALWAYS_PRESENT_SHARE = 0.99
#: a long-window feature present in at least this share of training rows is a history check
HISTORY_FEATURE_SHARE = 0.5
#: default for ``ml.min_feature_coverage``: a row may miss up to 10 % of the always-present
#: features (e.g. a late fundamentals filing) but not more
DEFAULT_MIN_COVERAGE = 0.9
#: how many feature names a reason lists before "... (+N more)"
MAX_NAMED = 5


@dataclass(frozen=True)
class FeatureCoverage:
    """What the model saw in training: each feature's non-null (finite) share of the rows."""

    present_share: dict[str, float]
    n_rows: int
    min_coverage: float = DEFAULT_MIN_COVERAGE
    history_features: tuple[str, ...] = field(default=())
    min_history_bars: int = MIN_HISTORY_BARS

    @classmethod
    def from_training(cls, features: pd.DataFrame, min_coverage: float = DEFAULT_MIN_COVERAGE) -> "FeatureCoverage":
        """Measure the training matrix (finite values only count as present)."""
        x = _finite_mask(features)
        share = {str(c): float(x[:, i].mean()) if len(x) else 0.0 for i, c in enumerate(features.columns)}
        history = tuple(f for f in LONG_WINDOW_FEATURES if share.get(f, 0.0) >= HISTORY_FEATURE_SHARE)
        return cls(share, int(len(features)), float(min_coverage), history, MIN_HISTORY_BARS)

    @property
    def required(self) -> list[str]:
        """Features present in >= 99 % of the training rows."""
        return [f for f, s in self.present_share.items() if s >= ALWAYS_PRESENT_SHARE]

    def to_dict(self) -> dict[str, Any]:
        return {
            "present_share": {k: round(v, 6) for k, v in self.present_share.items()},
            "n_rows": self.n_rows,
            "min_coverage": self.min_coverage,
            "history_features": list(self.history_features),
            "min_history_bars": self.min_history_bars,
            "always_present_share": ALWAYS_PRESENT_SHARE,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "FeatureCoverage | None":
        if not d:
            return None
        return cls(
            present_share={str(k): float(v) for k, v in d["present_share"].items()},
            n_rows=int(d.get("n_rows", 0)),
            min_coverage=float(d.get("min_coverage", DEFAULT_MIN_COVERAGE)),
            history_features=tuple(d.get("history_features", ())),
            min_history_bars=int(d.get("min_history_bars", MIN_HISTORY_BARS)),
        )


def _finite_mask(frame: pd.DataFrame) -> np.ndarray:
    """True where a value is a finite number (NaN, +-inf, None and non-numbers are missing)."""
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        values = frame.to_numpy(dtype="float64", na_value=np.nan)
    else:
        values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return np.isfinite(values)


def missing_reason(names: list[str]) -> str:
    """``missing_features: a, b, c`` with at most :data:`MAX_NAMED` names."""
    shown = ", ".join(names[:MAX_NAMED])
    more = f" (+{len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else ""
    return f"{REASON_MISSING_FEATURES}: {shown}{more}"


def check_rows(
    features: pd.DataFrame,
    feature_names: list[str],
    coverage: FeatureCoverage | None,
    min_coverage: float | None = None,
) -> list[str | None]:
    """Per row: None if the model may judge it, else the reason it may not (see module docstring).

    ``features`` must hold every column of ``feature_names`` (a missing *column* is a request
    error, raised before this); ``min_coverage`` overrides the value recorded at training.
    """
    n = len(features)
    if n == 0:
        return []
    present = _finite_mask(features[feature_names])
    pos = {f: i for i, f in enumerate(feature_names)}
    reasons: list[str | None] = [None] * n
    all_missing = ~present.any(axis=1)
    history = [pos[f] for f in (coverage.history_features if coverage else ()) if f in pos]
    required = [f for f in (coverage.required if coverage else []) if f in pos]
    req_idx = np.array([pos[f] for f in required], dtype=np.intp)
    threshold = (coverage.min_coverage if coverage else DEFAULT_MIN_COVERAGE) if min_coverage is None else min_coverage
    fail_history = ~present[:, history].all(axis=1) if history else np.zeros(n, dtype=bool)
    req_idx_ok = len(req_idx) > 0
    fail_cover = present[:, req_idx].mean(axis=1) < threshold if req_idx_ok else np.zeros(n, dtype=bool)
    for i in np.flatnonzero(all_missing | fail_history | fail_cover):  # only failing rows are looked at
        if all_missing[i]:
            reasons[i] = f"{REASON_MISSING_FEATURES}: all {len(feature_names)}"
        elif fail_history[i]:
            reasons[i] = REASON_INSUFFICIENT_HISTORY
        else:
            reasons[i] = missing_reason([required[j] for j in np.flatnonzero(~present[i, req_idx])])
    return reasons
