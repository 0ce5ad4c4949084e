"""``WalkForwardValidator(...).run(features, target, train_months=24, test_months=6, step_months=3)``:
the purged walk-forward as one call returning a plain dict per test window.

A thin layer over what ``signals tune`` runs (:func:`signals.modeling.tuning.walk_forward.run_walk_forward`
with the splitter :class:`signals.modeling.splits.WalkForwardValidator`, which this class *is*: ``split``
and ``get_n_splits`` still work). It lives in the trading layer because its Sharpe is the strategy's
(:data:`signals.trading.backtest.SHARPE_DEFINITION`), priced by the backtest engine; the modelling
layer below knows nothing of prices.

Each window dict: ``window``, ``train_start``, ``start`` / ``end`` (the test window; ``end`` exclusive),
``n_train``, ``n_test``, ``accuracy``, ``log_loss``, ``sharpe`` and, on the same rows, their naive
baselines ``baseline_accuracy`` (always UP), ``baseline_log_loss`` (the training rows' class prior)
and ``baseline_sharpe`` (equal-weight buy and hold). ``sharpe`` is None without ``prices``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from signals.modeling.splits import WalkForwardValidator as WalkForwardSplitter
from signals.modeling.tuning.objective import TuneConfig
from signals.modeling.tuning.walk_forward import run_walk_forward
from signals.settings.model import Settings, load_settings
from signals.trading.backtest import strategy_metrics

__all__ = ["WalkForwardValidator"]


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


class WalkForwardValidator(WalkForwardSplitter):
    """The walk-forward splitter plus :meth:`run`.

    Parameters
    ----------
    train_months, test_months, step_months, horizon, embargo_days:
        As for the splitter; ``None`` (the default) takes ``walk_forward.*`` / ``ml.prediction_horizon``
        from the settings.
    settings:
        A :class:`~signals.settings.Settings`; ``None`` loads them like the CLI does
        (``config/settings.yaml`` or ``$SA_CONFIG``, then ``SA_`` overrides).
    prices:
        Adjusted closes, date x symbol (``TrainingData.prices()``): needed for ``sharpe``.
    params:
        XGBoost parameters fitted in every window (default ``ml.xgb_params``); ``n_estimators`` is
        the cap, early stopping on the window's last purged slice sets the rounds.
    n_trials:
        0 (default): fit ``params``; > 0: an in-memory Optuna search of that many trials per window.
    """

    def __init__(
        self,
        train_months: int | None = None,
        test_months: int | None = None,
        step_months: int | None = None,
        horizon: int | None = None,
        embargo_days: int | None = None,
        *,
        settings: Settings | None = None,
        prices: pd.DataFrame | None = None,
        params: dict[str, Any] | None = None,
        n_trials: int = 0,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        wf, ml = self.settings.walk_forward, self.settings.ml
        super().__init__(
            train_months=train_months if train_months is not None else wf.train_months,
            test_months=test_months if test_months is not None else wf.test_months,
            step_months=step_months if step_months is not None else wf.step_months,
            horizon=horizon if horizon is not None else ml.prediction_horizon,
            embargo_days=embargo_days if embargo_days is not None else wf.embargo_days,
        )
        self.prices = prices
        self.params = params
        self.n_trials = int(n_trials)

    def run(
        self,
        features: pd.DataFrame,
        target: pd.Series,
        train_months: int | None = None,
        test_months: int | None = None,
        step_months: int | None = None,
        *,
        forward_returns: pd.Series | None = None,
    ) -> list[dict[str, Any]]:
        """Fit (or tune), predict and forward-chain-calibrate every window; one dict per window.

        ``features`` and ``target`` (0 = DOWN, 1 = FLAT, 2 = UP; NaN rows are dropped) are indexed
        by (symbol, date). ``forward_returns`` (optional) feeds the information coefficients of
        ``signals tune``; the dicts here do not need it. Month arguments override the constructor's
        for this call.
        """
        if train_months is not None:
            self.train_months = train_months
        if test_months is not None:
            self.test_months = test_months
        if step_months is not None:
            self.step_months = step_months
        self._check()
        y = target.reindex(features.index)
        keep = y.notna().to_numpy()
        X, y = features.loc[keep], y.loc[keep].astype(np.int64)
        fwd = (forward_returns.reindex(X.index) if forward_returns is not None
               else pd.Series(np.nan, index=X.index))
        config = TuneConfig.from_settings(
            self.settings, train_months=self.train_months, test_months=self.test_months, step_months=self.step_months,
            horizon=self.horizon, embargo_days=self.embargo_days, n_trials=max(1, self.n_trials), n_jobs=1, workers=1,
        )
        config = dataclasses.replace(config, storage=None)  # an in-memory study: no optuna.db left behind
        params = self.params if self.params is not None else self.settings.ml.xgb_params.model_dump()
        result = run_walk_forward(X, y, fwd, config=config, fixed_params=None if self.n_trials > 0 else params)
        s = self.settings
        out = []
        for w in result.windows:
            m = w.metrics
            money = (strategy_metrics(w.predictions, self.prices, confidence_threshold=s.ml.confidence_threshold,
                                      min_hold_days=s.strategy.min_hold_days, cost_bps=s.strategy.cost_bps)
                     if self.prices is not None else {})
            out.append({
                "window": w.window.index,
                "train_start": w.window.train_start.date().isoformat(),
                "start": w.window.test_start.date().isoformat(),
                "end": w.window.test_end.date().isoformat(),
                "n_train": w.n_train,
                "n_test": w.n_test,
                "accuracy": _num(m.get("accuracy")),
                "log_loss": _num(m.get("log_loss")),
                "sharpe": _num(money.get("strategy_sharpe")),
                "baseline_accuracy": _num(m.get("baseline_always_up_accuracy")),
                "baseline_log_loss": _num(m.get("baseline_prior_log_loss")),
                "baseline_sharpe": _num(money.get("baseline_buy_hold_sharpe")),
            })
        return out
