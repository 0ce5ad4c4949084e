"""``MLPipeline``: the 3-class XGBoost model (DOWN / FLAT / UP), optionally with balanced class weights.

Class weights are an option (``class_weight``), not a given: balanced weights make the booster
fit a uniform class mix, so its raw probabilities lean toward 1/3 each and only a calibrator
could pull them back to the real class frequencies. Unweighted, XGBoost (>= 3.1) starts every
class from its log prior and, where the features carry nothing, stays there.

Estimator-like: configuration in ``__init__``, learned state in attributes ending ``_``
(``booster_``, ``feature_names_``, ``best_iteration_``, ``train_metrics_``). ``train`` returns
in-sample metrics (the seed API); ``fit`` is the scikit-learn style alias returning ``self``.
No MLflow, no files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.dataset import make_target
from signals.modeling import metrics as M
from signals.modeling.calibration import normalize_proba
from signals.settings.model import load_settings

if TYPE_CHECKING:
    from signals.settings.model import Settings

N_CLASSES = 3
DEFAULT_N_JOBS = 2
#: hyper-parameters the tuner searches and the pipeline accepts (plus the fixed objective keys)
TUNABLE_PARAMS = ("n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree", "min_child_weight",
                  "reg_lambda", "reg_alpha")
CLASS_WEIGHTS = ("none", "balanced")


class InsufficientDataError(SignalsError, ValueError):
    """Fewer labelled rows than ``ml.min_training_samples`` (or too few for a split)."""


class NotFittedError(SignalsError, RuntimeError):
    """``predict`` was called before ``train``/``fit``."""


def balanced_sample_weights(y: np.ndarray) -> np.ndarray:
    """``w_i = n / (n_classes * count[y_i])`` with ``n_classes`` the classes present.

    Identical to scikit-learn's ``compute_sample_weight("balanced", y)``; with all three
    classes present it is exactly ``n / (3 * count[y_i])``. The weights sum to ``n``.
    """
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return np.empty(0)
    counts = np.bincount(y, minlength=N_CLASSES).astype(float)
    present = int((counts > 0).sum())
    return len(y) / (present * counts[y])


def xgb_params_from(params: dict[str, Any] | Any | None) -> dict[str, Any]:
    """Normalise an ``XGBParams`` model / dict into plain tunable values (fixed keys dropped)."""
    if params is None:
        return {}
    if hasattr(params, "model_dump"):
        params = params.model_dump()
    out = {}
    for key in TUNABLE_PARAMS:
        if key in params and params[key] is not None:
            out[key] = params[key]
    unknown = set(params) - set(TUNABLE_PARAMS) - {"objective", "num_class", "eval_metric"}
    if unknown:
        raise ValueError(f"unknown XGBoost parameter(s): {sorted(unknown)}")
    if "n_estimators" in out:
        out["n_estimators"] = int(out["n_estimators"])
    if "max_depth" in out:
        out["max_depth"] = int(out["max_depth"])
    for key in ("learning_rate", "subsample", "colsample_bytree", "min_child_weight", "reg_lambda", "reg_alpha"):
        if key in out:
            out[key] = float(out[key])
    return out


def _as_labels(target: pd.Series | np.ndarray) -> np.ndarray:
    y = np.asarray(target, dtype="float64")
    bad = ~np.isin(y, (0.0, 1.0, 2.0))
    if bad.any():
        raise ValueError(f"target must hold only 0, 1, 2 after dropping NaN; got e.g. {y[bad][:3].tolist()}")
    return y.astype(np.int64)


class MLPipeline:
    """XGBoost ``multi:softprob`` classifier over the feature panel.

    Parameters
    ----------
    params:
        XGBoost hyper-parameters (``n_estimators``, ``max_depth``, ``learning_rate``,
        ``subsample``, ``colsample_bytree``, ``min_child_weight``, ``reg_lambda``, ``reg_alpha``);
        an ``XGBParams`` model or dict.
    horizon, up_threshold, down_threshold:
        The target definition used by :meth:`prepare_target`.
    class_weight:
        ``"none"`` (default: rows count equally, raw probabilities aim at the real class
        frequencies) or ``"balanced"`` (``n / (3 * count[class])`` per row).
    min_training_samples:
        Fewer labelled rows than this in :meth:`train` raises :class:`InsufficientDataError`.
    seed, n_jobs:
        XGBoost seed and thread count (``n_jobs`` defaults to 2).

    Anything left out (``None``) comes from the loaded settings, like the CLI's: ``ml.*`` of
    ``config/settings.yaml`` (or ``$SA_CONFIG``) with ``SA_`` overrides, e.g.
    ``SA_ML__PREDICTION_HORIZON=3``. The settings are read the first time such a value is
    needed, so a bare ``MLPipeline()`` follows the configuration and callers that pass every
    value (the tuner, the final fit) never read it. :meth:`from_settings` takes a given
    ``Settings`` object instead.
    """

    #: constructor argument -> ``settings.ml`` field it defaults to
    _FROM_SETTINGS = {"params": "xgb_params", "horizon": "prediction_horizon", "up_threshold": "up_threshold",
                      "down_threshold": "down_threshold", "min_training_samples": "min_training_samples",
                      "seed": "seed", "class_weight": "class_weight"}

    def __init__(
        self,
        params: dict[str, Any] | Any | None = None,
        *,
        horizon: int | None = None,
        up_threshold: float | None = None,
        down_threshold: float | None = None,
        min_training_samples: int | None = None,
        seed: int | None = None,
        n_jobs: int | None = None,
        class_weight: str | None = None,
    ) -> None:
        given = dict(params=params, horizon=horizon, up_threshold=up_threshold, down_threshold=down_threshold,
                     min_training_samples=min_training_samples, seed=seed, class_weight=class_weight)
        for name, value in given.items():
            if value is not None:  # left unset: __getattr__ reads it from the settings when first used
                setattr(self, name, value)
        self.n_jobs = n_jobs

    def __getattr__(self, name: str) -> Any:
        """Only called for attributes not set: the configuration values left to the settings."""
        field = type(self)._FROM_SETTINGS.get(name)
        if field is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        settings = self.__dict__.get("_settings")
        if settings is None:
            settings = self.__dict__["_settings"] = load_settings()
        value = getattr(settings.ml, field)
        setattr(self, name, value)
        return value

    @classmethod
    def from_settings(
        cls, settings: "Settings", params: dict[str, Any] | None = None, *, n_jobs: int | None = None
    ) -> "MLPipeline":
        ml = settings.ml
        return cls(
            params=params if params is not None else ml.xgb_params,
            horizon=ml.prediction_horizon,
            up_threshold=ml.up_threshold,
            down_threshold=ml.down_threshold,
            min_training_samples=ml.min_training_samples,
            seed=ml.seed,
            n_jobs=n_jobs,
            class_weight=ml.class_weight,
        )

    # ------------------------------------------------------------------ target
    def prepare_target(self, df: pd.DataFrame | pd.Series, close_col: str = "close") -> pd.Series:
        """2 = UP, 0 = DOWN, 1 = FLAT; NaN for each symbol's last ``horizon`` rows (no future)."""
        return make_target(
            df,
            horizon=self.horizon,
            up_threshold=self.up_threshold,
            down_threshold=self.down_threshold,
            close_col=close_col,
        )

    # ------------------------------------------------------------------ fitting
    def booster_params(self) -> dict[str, Any]:
        """The native XGBoost parameter dict (without the number of rounds)."""
        p = {"n_estimators": 300, "max_depth": 6, "learning_rate": 0.05, "subsample": 0.8,
             "colsample_bytree": 0.8, "min_child_weight": 5.0, "reg_lambda": 1.0, "reg_alpha": 0.0}
        p.update(xgb_params_from(self.params))
        return {
            "objective": "multi:softprob",
            "num_class": N_CLASSES,
            "eval_metric": "mlogloss",
            "tree_method": "hist",
            "max_depth": p["max_depth"],
            "eta": p["learning_rate"],
            "subsample": p["subsample"],
            "colsample_bytree": p["colsample_bytree"],
            "min_child_weight": p["min_child_weight"],
            "lambda": p["reg_lambda"],
            "alpha": p["reg_alpha"],
            "seed": int(self.seed),
            "nthread": int(self.n_jobs or DEFAULT_N_JOBS),
            "verbosity": 0,
        }

    def sample_weights(self, y: np.ndarray) -> np.ndarray | None:
        """Per-row training weights for ``class_weight`` (None: unweighted)."""
        if self.class_weight == "balanced":
            return balanced_sample_weights(y)
        if self.class_weight in (None, "none"):
            return None
        raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")

    def n_rounds(self) -> int:
        return int(xgb_params_from(self.params).get("n_estimators", 300))

    def _align(self, features: pd.DataFrame, target: pd.Series | np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        if isinstance(target, pd.Series):
            if not target.index.equals(features.index):
                target = target.reindex(features.index)
            t = target.to_numpy(dtype="float64")
        else:
            t = np.asarray(target, dtype="float64")
            if len(t) != len(features):
                raise ValueError(f"features have {len(features)} rows but target has {len(t)}")
        keep = ~np.isnan(t)
        return features.loc[keep] if not keep.all() else features, _as_labels(t[keep])

    @staticmethod
    def _matrix(features: pd.DataFrame, names: Sequence[str] | None = None) -> np.ndarray:
        frame = features if names is None else features.reindex(columns=list(names))
        return frame.to_numpy(dtype=np.float32, na_value=np.nan)

    def train(
        self,
        features: pd.DataFrame,
        target: pd.Series | np.ndarray,
        *,
        eval_set: tuple[pd.DataFrame, pd.Series | np.ndarray] | None = None,
        early_stopping_rounds: int | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """Fit on the labelled rows (NaN targets dropped); return in-sample metrics.

        ``eval_set`` (features, target) enables validation log-loss tracking and, with
        ``early_stopping_rounds``, early stopping; the booster is then truncated to its best
        iteration. ``callbacks`` are passed to ``xgboost.train`` (e.g. an Optuna pruning callback).
        """
        import xgboost as xgb

        X, y = self._align(features, target)
        if len(y) < self.min_training_samples:
            raise InsufficientDataError(
                f"need at least {self.min_training_samples} labelled training rows "
                f"(ml.min_training_samples), got {len(y)}"
            )
        self.feature_names_ = [str(c) for c in X.columns]
        dtrain = xgb.DMatrix(self._matrix(X), label=y, weight=self.sample_weights(y),
                             feature_names=self.feature_names_, missing=np.nan)
        evals: list[tuple[Any, str]] = []
        if eval_set is not None:
            Xv, yv = self._align(*eval_set)
            if len(yv) == 0:
                raise InsufficientDataError("the evaluation set has no labelled rows")
            dval = xgb.DMatrix(self._matrix(Xv, self.feature_names_), label=yv,
                               feature_names=self.feature_names_, missing=np.nan)
            evals = [(dval, "validation")]
        evals_result: dict[str, Any] = {}
        booster = xgb.train(
            self.booster_params(),
            dtrain,
            num_boost_round=self.n_rounds(),
            evals=evals,
            early_stopping_rounds=early_stopping_rounds if evals else None,
            evals_result=evals_result,
            verbose_eval=False,
            callbacks=list(callbacks or []),
        )
        best = getattr(booster, "best_iteration", None) if (evals and early_stopping_rounds) else None
        if best is not None and best + 1 < booster.num_boosted_rounds():
            booster = booster[: best + 1]
        self.booster_ = booster
        self.best_iteration_ = int(booster.num_boosted_rounds()) - 1
        self.evals_result_ = evals_result
        proba = self.predict(X)
        m: dict[str, Any] = {
            "accuracy": M.accuracy(y, proba),
            "log_loss": M.log_loss(y, proba),
            "class_distribution": M.class_distribution(y),
            "n_samples": int(len(y)),
            "n_rounds": int(self.best_iteration_ + 1),
        }
        if evals:
            pv = self.predict(Xv)
            m["val_log_loss"] = M.log_loss(yv, pv)
            m["val_accuracy"] = M.accuracy(yv, pv)
        self.train_metrics_ = m
        return m

    def fit(self, features: pd.DataFrame, target: pd.Series | np.ndarray, **kwargs: Any) -> "MLPipeline":
        self.train(features, target, **kwargs)
        return self

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("MLPipeline is not fitted; call train() first")

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """(n, 3) float64 probabilities in [DOWN, FLAT, UP] order, rows summing to 1."""
        self._check_fitted()
        if len(features) == 0:
            return np.empty((0, N_CLASSES))
        x = self._matrix(features, self.feature_names_)
        return normalize_proba(self.booster_.inplace_predict(x))

    predict_proba = predict

    def matrix(self, features: pd.DataFrame, target: np.ndarray, *, quantile: bool = False, ref: Any = None) -> Any:
        """A training (or, with ``ref``, evaluation) matrix for this pipeline's weights.

        Built once and reused, a matrix keeps XGBoost's histogram index between fits (the cost a
        tuning trial otherwise pays again every time). ``quantile`` builds a ``QuantileDMatrix``,
        which sketches the bins straight from the frame without keeping a float copy.
        """
        import xgboost as xgb

        y = np.asarray(target, dtype=np.int64)
        x = self._matrix(features)
        names = [str(c) for c in features.columns]
        weight = self.sample_weights(y) if ref is None else None
        if quantile:
            return xgb.QuantileDMatrix(x, label=y, weight=weight, feature_names=names, missing=np.nan, ref=ref)
        return xgb.DMatrix(x, label=y, weight=weight, feature_names=names, missing=np.nan)

    def fit_matrices(self, dtrain: Any, dval: Any, y_val: np.ndarray, *, early_stopping_rounds: int | None,
                     callbacks: Sequence[Any] | None = None) -> tuple[int, float]:
        """Fit on prepared matrices and score the early-stopped booster on ``dval``.

        The same rule as :meth:`train` with an ``eval_set`` (rounds cut at the best iteration;
        validation log-loss of the cut booster), without rebuilding the matrices. Returns
        (rounds kept, validation log-loss); the booster is not kept (a tuning trial needs only its score).
        """
        import xgboost as xgb

        booster = xgb.train(self.booster_params(), dtrain, num_boost_round=self.n_rounds(),
                            evals=[(dval, "validation")], early_stopping_rounds=early_stopping_rounds,
                            verbose_eval=False, callbacks=list(callbacks or []))
        best = getattr(booster, "best_iteration", None) if early_stopping_rounds else None
        n_rounds = int(best + 1) if best is not None else int(booster.num_boosted_rounds())
        proba = normalize_proba(booster.predict(dval, iteration_range=(0, n_rounds)))
        return n_rounds, M.log_loss(np.asarray(y_val, dtype=np.int64), proba)

    def feature_importance(self, importance_type: str = "gain") -> dict[str, float]:
        """Per-feature importance (features never used in a split are 0)."""
        self._check_fitted()
        scores = self.booster_.get_score(importance_type=importance_type)
        return {name: float(scores.get(name, 0.0)) for name in self.feature_names_}
