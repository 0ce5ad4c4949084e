"""The documented Python API: ``WalkForwardValidator(...).run(features, target, train_months=...,
test_months=..., step_months=...)`` returns one dict per window; a bare ``MLPipeline()`` follows
the loaded settings (file + ``SA_`` overrides)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.dataset import make_target
from signals.modeling.model import MLPipeline
from signals.modeling.splits import WalkForwardValidator as Splitter
from signals.trading.validator import WalkForwardValidator


def _panel(n_days: int = 760, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Two symbols whose next-5-day move is mostly told by feature ``f0`` (known at t)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=n_days)
    feats, closes = [], {}
    for sym in ("AAA", "BBB"):
        f0 = rng.normal(size=n_days)
        drift = np.zeros(n_days)
        drift[:-1] = 0.01 * np.sign(f0[:-1])  # the day after t moves with sign(f0_t)
        daily = drift + rng.normal(0, 0.002, n_days)
        close = 100 * np.cumprod(1 + np.r_[0, daily[:-1]])
        closes[sym] = pd.Series(close, index=dates)
        idx = pd.MultiIndex.from_arrays([[sym] * n_days, dates], names=["symbol", "date"])
        feats.append(pd.DataFrame({"f0": f0, "f1": rng.normal(size=n_days)}, index=idx))
    features = pd.concat(feats).sort_index()
    close_panel = pd.concat({s: c for s, c in closes.items()}, names=["symbol", "date"])
    target = make_target(close_panel, horizon=1, up_threshold=0.005, down_threshold=-0.005).reindex(features.index)
    return features, target, pd.DataFrame(closes)


def test_run_returns_one_dict_per_splitter_window(settings) -> None:
    features, target, prices = _panel()
    settings = settings.model_copy(update={"ml": settings.ml.model_copy(update={"min_training_samples": 50})})
    validator = WalkForwardValidator(settings=settings, prices=prices, horizon=1,
                                     params={"n_estimators": 30, "max_depth": 2, "learning_rate": 0.3})
    windows = validator.run(features, target, train_months=12, test_months=6, step_months=6)
    expected = list(Splitter(12, 6, 6, horizon=1).split_windows(features.loc[target.notna().to_numpy()]))
    assert [w["start"] for w in windows] == [win.test_start.date().isoformat() for win, _, _ in expected]
    assert [w["end"] for w in windows] == [win.test_end.date().isoformat() for win, _, _ in expected]
    assert len(windows) >= 2
    for w in windows:
        assert set(w) >= {"start", "end", "accuracy", "log_loss", "sharpe", "baseline_accuracy", "baseline_log_loss",
                          "baseline_sharpe"}
        assert w["accuracy"] > w["baseline_accuracy"] + 0.2, w  # f0 tells the move: the model must see it
        assert w["log_loss"] < w["baseline_log_loss"], w
        assert isinstance(w["sharpe"], float) and w["sharpe"] > w["baseline_sharpe"], w
    assert list(validator.split(features))  # still the splitter


def test_bare_mlpipeline_follows_the_loaded_settings(workdir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SA_ML__PREDICTION_HORIZON", "3")
    monkeypatch.setenv("SA_ML__UP_THRESHOLD", "0.02")
    monkeypatch.setenv("SA_ML__XGB_PARAMS__N_ESTIMATORS", "77")
    pipe = MLPipeline()
    assert (pipe.horizon, pipe.up_threshold, pipe.n_rounds()) == (3, 0.02, 77)
    explicit = MLPipeline({"n_estimators": 5}, horizon=2, up_threshold=0.01, down_threshold=-0.01,
                          min_training_samples=1, seed=1, class_weight="none")
    monkeypatch.setattr("signals.modeling.model.load_settings", lambda *a, **k: pytest.fail("read the settings"))
    assert (explicit.horizon, explicit.n_rounds(), explicit.seed) == (2, 5, 1)
    with pytest.raises(AttributeError):
        explicit.booster_  # noqa: B018 - not fitted: a plain AttributeError, not a settings lookup
