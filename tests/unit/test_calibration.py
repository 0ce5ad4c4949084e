"""Time-ordered calibration (signals.ml.train.fit_calibrated) and the metrics it reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.ml import metrics as M
from signals.ml.calibration import ConfidenceCalibrator
from signals.ml.pipeline import InsufficientDataError, MLPipeline
from signals.ml.splits import label_end_dates
from signals.ml.target import forward_returns
from signals.digest import frame_digest
from signals.ml.train import fit_calibrated, holdout_start, labelled, predictions_frame
from tests.unit.test_pipeline import make_panel, single_thread_xgboost  # noqa: F401 - autouse fixture

# deliberately overfitting params: raw probabilities are over-confident out of sample
OVERFIT = {"n_estimators": 150, "max_depth": 8, "learning_rate": 0.3, "subsample": 1.0, "colsample_bytree": 1.0,
           "min_child_weight": 1}


@pytest.fixture(scope="module")
def data():
    X, close = make_panel(n_symbols=3, start="2017-01-01", end="2019-12-31", n_features=6, signal=0.01)
    y = MLPipeline(horizon=5).prepare_target(close)
    return labelled(X, y, forward_returns(close, 5))


def test_calibration_slice_is_later_and_purged(data) -> None:
    X, y, _ = data
    m = fit_calibrated(X, y, OVERFIT, horizon=5, calibration_fraction=0.25, seed=1, n_jobs=1)
    dates = np.unique(X.index.get_level_values("date"))
    cal_start = pd.Timestamp(m.calibration_range[0])
    assert cal_start == pd.Timestamp(dates[len(dates) - round(len(dates) * 0.25)])
    assert pd.Timestamp(m.fit_range[1]) < cal_start
    # the booster's rows: every label window ends before the calibration slice starts
    ends = label_end_dates(X.index.get_level_values("date").to_numpy(), X.index.get_level_values("symbol").to_numpy(), 5)
    before = X.index.get_level_values("date") < cal_start
    assert m.fit_rows == int((ends[before] < np.datetime64(cal_start)).sum())
    assert m.fit_rows + m.calibration_rows == len(X) - 3 * 5  # 5 purged days per symbol
    assert m.calibration_rows == len(m.calibration_y)


def test_calibration_improves_overconfident_model_out_of_sample(data) -> None:
    X, y, _ = data
    test = X.index.get_level_values("date") >= pd.Timestamp("2019-07-01")
    # train on data ending 5 trading days before the test period (purged by hand: labels end before it)
    train = X.index.get_level_values("date") < pd.Timestamp("2019-06-21")
    m = fit_calibrated(X[train], y[train], OVERFIT, horizon=5, calibration_fraction=0.3, seed=1, n_jobs=1)
    raw, cal = m.predict_raw(X[test]), m.predict(X[test])
    yt = y[test].to_numpy()
    assert M.log_loss(yt, cal) < M.log_loss(yt, raw)
    assert M.expected_calibration_error(yt, cal) < M.expected_calibration_error(yt, raw)
    assert m.calibration_metrics["calibration_log_loss_calibrated"] < m.calibration_metrics["calibration_log_loss_raw"]
    assert np.allclose(cal.sum(axis=1), 1.0) and cal.dtype == np.float64


@pytest.mark.parametrize("method", ["sigmoid", "temperature", "isotonic"])
def test_methods_are_selectable_and_serialise(data, method) -> None:
    X, y, _ = data
    m = fit_calibrated(X, y, OVERFIT, horizon=5, calibration_fraction=0.3, method=method, seed=1, n_jobs=1)
    assert m.calibrator.method == method
    again = ConfidenceCalibrator.from_dict(m.calibrator.to_dict())
    p = m.predict_raw(X.head(20))
    assert np.allclose(again.transform(p), m.calibrator.transform(p))
    pred = m.to_predictor(0.55, {"k": 1})
    assert np.allclose(pred.predict_proba(X.head(20)), m.predict(X.head(20)))


def test_too_small_calibration_slice(data) -> None:
    X, y, _ = data
    small = X.index.get_level_values("date") < pd.Timestamp("2017-01-12")
    with pytest.raises(InsufficientDataError):
        fit_calibrated(X[small], y[small], OVERFIT, horizon=1, calibration_fraction=0.1, n_jobs=1)


def test_sharpe_non_overlapping_by_hand() -> None:
    dates = pd.bdate_range("2020-01-01", periods=8).to_numpy()
    fwd = np.array([0.02, -0.01, 0.03, 0.00, -0.02, 0.01, 0.04, -0.03])
    pos = np.array([1, -1, 1, 0, -1, 1, 1, 1], dtype=float)
    # horizon 2: offset 0 uses dates 0,2,4,6: r = .02, .03, .02, .04; offset 1 uses 1,3,5,7: .01, 0, .01, -.03
    r0, r1 = np.array([0.02, 0.03, 0.02, 0.04]), np.array([0.01, 0.0, 0.01, -0.03])
    expect = np.mean([r.mean() / r.std(ddof=1) * np.sqrt(252 / 2) for r in (r0, r1)])
    assert M.sharpe_ratio(dates, pos, fwd, horizon=2) == pytest.approx(expect)
    assert M.sharpe_ratio(dates, np.zeros(8), fwd, horizon=2) == 0.0
    # equal-weighted across symbols on the same date
    two = M.period_returns(np.r_[dates[:2], dates[:2]], np.ones(4), np.array([0.1, 0.2, 0.3, 0.0]), 1)
    assert two.tolist() == pytest.approx([0.2, 0.1])


def test_evaluation_metrics_and_baselines() -> None:
    y = np.array([0, 1, 2, 2, 2, 1])
    proba = np.tile([0.2, 0.3, 0.5], (6, 1))
    m = M.evaluation_metrics(y, proba, y_train=np.array([0, 0, 1, 2]))
    assert m["accuracy"] == pytest.approx(0.5) and m["baseline_always_up_accuracy"] == pytest.approx(0.5)
    prior = np.tile([0.5, 0.25, 0.25], (6, 1))
    assert m["baseline_prior_log_loss"] == pytest.approx(M.log_loss(y, prior))
    cm = M.confusion_matrix(y, proba.argmax(axis=1))
    assert cm.sum() == 6 and cm[:, 2].tolist() == [1, 2, 3]


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
