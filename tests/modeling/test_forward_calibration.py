"""Forward-chained calibration: identity on a calibrated model, a real calibrator on a
miscalibrated one, and no way for later labels to reach an earlier window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.dataset import forward_returns, labelled
from signals.modeling import metrics as M
from signals.modeling.forward_calibration import CalibrationPolicy, ForwardChainedCalibration
from signals.modeling.tuning.objective import TuneConfig
from signals.modeling.tuning.walk_forward import run_walk_forward
from tests.modeling.test_model import make_panel, single_thread_xgboost  # noqa: F401 - autouse fixture


def synthetic_windows(n_windows: int = 8, rows_per_day: int = 10, days: int = 63, sharpen: float = 1.0,
                      informative: bool = True, seed: int = 0) -> list[tuple[int, pd.Timestamp, pd.DataFrame]]:
    """Walk-forward-shaped OOS frames: quarterly test windows, labels known 5 days after the date.

    Labels are drawn from ``true`` probabilities; the 'raw model' reports them sharpened by
    ``sharpen`` in log space (1.0: perfectly calibrated)."""
    rng = np.random.default_rng(seed)
    out = []
    start = pd.Timestamp("2015-01-01")
    for k in range(n_windows):
        dates = pd.bdate_range(start + pd.DateOffset(months=3 * k), periods=days)
        n = len(dates) * rows_per_day
        logits = rng.normal(0, 0.5 if informative else 0.0, (n, 3)) + np.log([0.4, 0.25, 0.35])
        true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        raw = np.exp(sharpen * logits) / np.exp(sharpen * logits).sum(axis=1, keepdims=True)
        y = (rng.random(n)[:, None] > np.cumsum(true, axis=1)).sum(axis=1)
        d = np.repeat(dates.to_numpy(), rows_per_day)
        frame = pd.DataFrame({
            "symbol": np.tile([f"S{i}" for i in range(rows_per_day)], len(dates)), "date": d,
            "label_end": d + np.timedelta64(7, "D"), "y": y,
            "raw_down": raw[:, 0], "raw_flat": raw[:, 1], "raw_up": raw[:, 2],
        })
        out.append((k, dates[0], frame))
    return out


def replay(windows, policy=None) -> tuple[ForwardChainedCalibration, dict]:
    fcc = ForwardChainedCalibration(policy)
    preds = {}
    for k, start, frame in windows:
        preds[k], _ = fcc.add_window(k, start, frame)
    return fcc, preds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrated_model_keeps_identity(seed) -> None:
    fcc, _ = replay(synthetic_windows(sharpen=1.0, rows_per_day=40, seed=seed))
    choice = fcc.choose(None)
    assert choice.method == "identity", choice.reason
    assert choice.pool_rows == 8 * 63 * 40 and set(choice.candidate_log_loss) >= {"identity", "sigmoid"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_keeps_identity(seed) -> None:
    """Raw probabilities that are the (calibrated) class mix and nothing else: no calibrator wins."""
    fcc, _ = replay(synthetic_windows(informative=False, rows_per_day=40, seed=seed))
    assert fcc.choose(None).method == "identity", fcc.choose(None).reason
    assert sum(c.method != "identity" for c in fcc.choices().values()) <= 1


def test_overconfident_model_gets_a_real_calibrator_that_helps_forward() -> None:
    windows = synthetic_windows(sharpen=2.5)
    fcc, preds = replay(windows)
    choice = fcc.choose(None)
    assert choice.method in {"temperature", "sigmoid", "isotonic"}, choice.reason
    assert choice.z[choice.method] >= 2.0
    # the first window has no earlier rows: identity; later windows calibrated forward, and better for it
    assert fcc.choices()[0].method == "identity" and fcc.choices()[0].pool_rows == 0
    late = [k for k, c in fcc.choices().items() if c.method != "identity"]
    assert late and min(late) >= 1
    y = np.concatenate([windows[k][2]["y"].to_numpy() for k in late])
    raw = np.concatenate([windows[k][2][["raw_down", "raw_flat", "raw_up"]].to_numpy() for k in late])
    cal = np.concatenate([preds[k] for k in late])
    assert M.log_loss(y, cal) < M.log_loss(y, raw) - 0.02
    assert M.expected_calibration_error(y, cal) < M.expected_calibration_error(y, raw)


def test_pool_only_holds_rows_labelled_before_the_boundary() -> None:
    windows = synthetic_windows(n_windows=3)
    fcc, _ = replay(windows)
    boundary = windows[2][1]
    pool = fcc.pool(boundary)
    assert (pd.to_datetime(pool["label_end"]) < boundary).all()
    assert set(pool["window"]) == {0, 1}  # window 2's own rows are never in its own pool
    assert fcc.choices()[2].pool_rows == len(pool)


def test_later_labels_cannot_reach_an_earlier_window() -> None:
    windows = synthetic_windows(sharpen=2.5)
    k = 5
    _, preds = replay(windows)
    fcc_a, _ = replay(windows)
    boundary = windows[k][1]
    tampered = []
    for i, start, frame in windows:
        f = frame.copy()
        later = f["date"] >= boundary
        f.loc[later, "y"] = (f.loc[later, "y"] + 1) % 3  # every label from window k's test start on changes
        tampered.append((i, start, f))
    fcc_b, preds_b = replay(tampered)
    for i in range(k + 1):
        assert fcc_a.choices()[i].calibrator.to_dict() == fcc_b.choices()[i].calibrator.to_dict()
        assert np.array_equal(preds[i], preds_b[i])
    assert not np.array_equal(preds[k + 1], preds_b[k + 1]) or fcc_a.choices()[k + 1].method == "identity"


def test_fixed_method_and_small_pools() -> None:
    windows = synthetic_windows(n_windows=3, rows_per_day=2, days=20)  # 40 rows per window
    fcc, _ = replay(windows, CalibrationPolicy(methods=("sigmoid",)))
    assert [c.method for c in fcc.choices().values()] == ["identity", "identity", "identity"]
    assert "too few" in fcc.choices()[2].reason
    fcc2, _ = replay(windows, CalibrationPolicy(methods=("sigmoid",), min_rows=30))
    assert fcc2.choices()[2].method == "sigmoid"
    with pytest.raises(ValueError, match="unknown calibration method"):
        CalibrationPolicy(methods=("platt",))


def test_replay_from_logged_predictions_gives_the_same_choices() -> None:
    windows = synthetic_windows(sharpen=2.5)
    fcc, _ = replay(windows)
    logged = pd.concat([f.assign(window=k, test_start=start) for k, start, f in windows], ignore_index=True)
    again = ForwardChainedCalibration.from_predictions(logged.sample(frac=1.0, random_state=0))
    assert again.choose(None).calibrator.to_dict() == fcc.choose(None).calibrator.to_dict()
    assert {k: c.method for k, c in again.choices().items()} == {k: c.method for k, c in fcc.choices().items()}
    with pytest.raises(ValueError, match="lack column"):
        ForwardChainedCalibration.from_predictions(logged.drop(columns=["label_end"]))


@pytest.fixture(scope="module")
def panel():
    X, close = make_panel(n_symbols=3, start="2014-01-01", end="2017-12-31", n_features=5, signal=0.02)
    from signals.modeling.model import MLPipeline

    y = MLPipeline(horizon=5).prepare_target(close)
    return labelled(X, y, forward_returns(close, 5))


def test_walk_forward_later_labels_leave_earlier_windows_bit_identical(panel) -> None:
    """The whole loop (tuning, refit, forward-chained calibration): flip every label from window
    k's test start on; windows up to k keep their calibrator and calibrated predictions."""
    X, y, fwd = panel
    config = TuneConfig(train_months=12, test_months=6, step_months=6, n_trials=2, storage=None, seed=3,
                        min_training_samples=100, xgb_threads=1, early_stopping_rounds=5,
                        calibration_method="sigmoid")  # fixed: windows with >= 500 pool rows get a real calibrator
    a = run_walk_forward(X, y, fwd, config=config)
    k = 3
    boundary = a.windows[k].window.test_start
    dates = X.index.get_level_values("date")
    y2 = y.copy()
    y2[dates >= boundary] = (y2[dates >= boundary] + 1) % 3
    b = run_walk_forward(X, y2, fwd, config=config)
    for wa, wb in zip(a.windows[: k + 1], b.windows[: k + 1]):
        assert wa.calibration.calibrator.to_dict() == wb.calibration.calibrator.to_dict()
        cols = ["p_down", "p_flat", "p_up", "raw_down", "raw_flat", "raw_up"]
        assert np.array_equal(wa.predictions[cols].to_numpy(), wb.predictions[cols].to_numpy())
    assert len(a.windows) > k + 1
    assert any(w.calibration.method == "sigmoid" for w in a.windows[: k + 1])
