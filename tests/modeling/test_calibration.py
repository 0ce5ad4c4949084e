"""Calibrators, the final-fit recipe (signals.modeling.final_fit.fit_booster) and the evaluation metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.core.digest import frame_digest
from signals.dataset import forward_returns, labelled
from signals.modeling import metrics as M
from signals.modeling.calibration import ISOTONIC_FLOOR, METHODS, ConfidenceCalibrator
from signals.modeling.final_fit import fit_booster, holdout_start, predictions_frame
from signals.modeling.model import InsufficientDataError, MLPipeline
from signals.modeling.splits import label_end_dates
from tests.modeling.test_model import make_panel, single_thread_xgboost  # noqa: F401 - autouse fixture

# deliberately overfitting params: raw probabilities are over-confident out of sample
OVERFIT = {"n_estimators": 150, "max_depth": 8, "learning_rate": 0.3, "subsample": 1.0, "colsample_bytree": 1.0,
           "min_child_weight": 1}


@pytest.fixture(scope="module")
def data():
    X, close = make_panel(n_symbols=3, start="2017-01-01", end="2019-12-31", n_features=6, signal=0.01)
    y = MLPipeline(horizon=5).prepare_target(close)
    return labelled(X, y, forward_returns(close, 5))


def _overconfident(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw probabilities twice as sharp (in log space) as the truth the labels are drawn from."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 0.6, (n, 3))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    raw = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in true])
    return raw, y


@pytest.mark.parametrize("method", METHODS)
def test_every_method_fits_serialises_and_keeps_rows_normalised(method) -> None:
    raw, y = _overconfident(3000)
    cal = ConfidenceCalibrator(method).fit(raw, y)
    out = cal.transform(raw)
    assert out.dtype == np.float64 and np.allclose(out.sum(axis=1), 1.0)
    again = ConfidenceCalibrator.from_dict(cal.to_dict())
    assert np.array_equal(again.transform(raw), out)
    if method == "identity":
        assert np.allclose(out, raw)
    else:  # every real calibrator undoes a doubled temperature, in sample
        assert M.log_loss(y, out) < M.log_loss(y, raw) - 0.01


def test_isotonic_never_promises_certainty() -> None:
    raw, y = _overconfident(2000)
    out = ConfidenceCalibrator("isotonic").fit(raw, y).transform(raw)
    assert out.min() >= ISOTONIC_FLOOR / 2  # floored per class, then renormalised
    assert np.isfinite(M.log_loss(np.zeros(len(out), dtype=int), out))


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown calibration method 'platt'"):
        ConfidenceCalibrator("platt").fit(*_overconfident(50))  # type: ignore[arg-type]


def test_fit_booster_stops_on_a_later_purged_slice_then_refits_everything(data) -> None:
    X, y, _ = data
    m = fit_booster(X, y, OVERFIT, horizon=5, validation_fraction=0.25, early_stopping_rounds=10, seed=1, n_jobs=1)
    dates = np.unique(X.index.get_level_values("date"))
    stop_start = pd.Timestamp(m.stopping_range[0])
    assert stop_start == pd.Timestamp(dates[len(dates) - round(len(dates) * 0.25)])
    assert 1 <= m.n_rounds < OVERFIT["n_estimators"]  # early stopping cut the cap
    assert m.params["n_estimators"] == m.n_rounds and m.pipeline.best_iteration_ + 1 == m.n_rounds
    assert m.rows == len(X) and m.pipeline.train_metrics_["n_samples"] == len(X)  # refit on every row
    # the probe that chose the rounds: every training row's label ends before the stopping slice
    ends = label_end_dates(X.index.get_level_values("date").to_numpy(), X.index.get_level_values("symbol").to_numpy(), 5)
    before = X.index.get_level_values("date") < stop_start
    assert m.stopping_rows == int((X.index.get_level_values("date") >= stop_start).sum())
    assert int((ends[before] < np.datetime64(stop_start)).sum()) == int(before.sum()) - 3 * 5


def test_fit_booster_needs_rows_on_both_sides(data) -> None:
    X, y, _ = data
    small = X.index.get_level_values("date") < pd.Timestamp("2017-01-12")
    with pytest.raises(InsufficientDataError):
        fit_booster(X[small], y[small], OVERFIT, horizon=1, validation_fraction=0.1, n_jobs=1)
    with pytest.raises(InsufficientDataError, match="min_training_samples"):
        fit_booster(X, y, OVERFIT, horizon=5, min_training_samples=len(X) + 1, n_jobs=1)


def test_class_weight_is_an_option_and_balanced_bends_toward_uniform(data) -> None:
    X, y, _ = data
    plain = MLPipeline({**OVERFIT, "n_estimators": 3, "learning_rate": 0.01}, n_jobs=1).fit(X, y)
    weighted = MLPipeline({**OVERFIT, "n_estimators": 3, "learning_rate": 0.01}, n_jobs=1, class_weight="balanced").fit(X, y)
    freq = np.bincount(y, minlength=3) / len(y)
    # unweighted starts from the class prior (XGBoost's per-class intercept); balanced from 1/3 each
    assert np.abs(plain.predict(X).mean(axis=0) - freq).max() < 0.02
    assert np.abs(weighted.predict(X).mean(axis=0) - 1 / 3).max() < 0.02
    with pytest.raises(ValueError, match="class_weight"):
        MLPipeline(OVERFIT, class_weight="inverse").fit(X, y)


def test_evaluation_metrics_and_baselines() -> None:
    y = np.array([0, 1, 2, 2, 2, 1])
    proba = np.tile([0.2, 0.3, 0.5], (6, 1))
    m = M.evaluation_metrics(y, proba, y_train=np.array([0, 0, 1, 2]), raw=proba, confidence_threshold=0.45)
    assert m["accuracy"] == pytest.approx(0.5) and m["baseline_always_up_accuracy"] == pytest.approx(0.5)
    prior = np.tile([0.5, 0.25, 0.25], (6, 1))
    assert m["baseline_prior_log_loss"] == pytest.approx(M.log_loss(y, prior))
    assert m["skill_vs_prior"] == pytest.approx(M.log_loss(y, prior) - M.log_loss(y, proba))
    assert m["log_loss_raw"] == m["log_loss"] and m["ece_raw"] == m["ece"]
    assert m["confident_rows"] == 6 and m["confident_mean_confidence"] == pytest.approx(0.5)
    assert m["confident_accuracy"] == pytest.approx(0.5)
    cm = M.confusion_matrix(y, proba.argmax(axis=1))
    assert cm.sum() == 6 and cm[:, 2].tolist() == [1, 2, 3]


def test_skill_interval_brackets_the_skill_and_widens_with_correlated_rows() -> None:
    rng = np.random.default_rng(3)
    dates = np.repeat(pd.bdate_range("2020-01-01", periods=400).to_numpy(), 5)
    diff = np.repeat(rng.normal(0.01, 0.2, 400), 5)  # the 5 rows of a date move together
    lo, hi = M.block_bootstrap_interval(diff, dates, block=1, n_resamples=4000)
    assert lo < diff.mean() < hi
    mean, se = M.blocked_mean_se(diff, dates, block=1)
    assert mean == pytest.approx(diff.mean())
    naive_se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert se == pytest.approx(0.2 / np.sqrt(400), rel=0.2) and se > 1.8 * naive_se  # 5 rows, one unit
    assert hi - lo == pytest.approx(2 * 1.645 * se, rel=0.2)


def test_information_coefficients_match_scipy() -> None:
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(0)
    days = pd.bdate_range("2020-01-01", periods=60)
    dates = np.repeat(days.to_numpy(), 8)
    score = rng.normal(size=len(dates))
    ret = 0.2 * score + rng.normal(size=len(dates))
    out = M.information_coefficients(dates, score, ret)
    frame = pd.DataFrame({"d": dates, "s": score, "r": ret})
    daily = [pearsonr(g.s, g.r)[0] for _, g in frame.groupby("d")]
    daily_rank = [spearmanr(g.s, g.r)[0] for _, g in frame.groupby("d")]
    assert out["ic"] == pytest.approx(np.mean(daily)) and out["rank_ic"] == pytest.approx(np.mean(daily_rank))
    assert out["icir"] == pytest.approx(np.mean(daily) / np.std(daily, ddof=1))
    assert out["ic_pooled"] == pytest.approx(pearsonr(score, ret)[0]) and out["ic_days"] == 60
    # a date with fewer names than min_names is not a cross-section
    assert np.isnan(M.information_coefficients(dates[:2], score[:2], ret[:2])["ic"])


def test_frame_digest_covers_every_row() -> None:
    a = pd.DataFrame({"x": np.arange(30_000, dtype=float)})
    b = a.copy()
    b.iloc[-1, 0] = -1.0  # beyond MLflow's 10,000-row digest window
    assert frame_digest(a) != frame_digest(b)
    assert frame_digest(a) == frame_digest(a.copy())


def test_predictions_frame_and_holdout_start() -> None:
    idx = pd.MultiIndex.from_arrays([["A", "B"], pd.to_datetime(["2020-01-02", "2020-01-02"])], names=["symbol", "date"])
    f = predictions_frame(idx, np.array([0, 2]), np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), window=3)
    assert list(f.columns) == ["symbol", "date", "window", "y", "p_down", "p_flat", "p_up"]
    assert f["symbol"].tolist() == ["A", "B"] and f["window"].tolist() == [3, 3]
    assert holdout_start("2013-02-22", 6) == pd.Timestamp("2012-08-23")
