"""Live performance vs the champion's walk-forward OOS record (a test, not a fixed 0.50)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.monitoring.monitor import AccuracyResult, StalenessResult, decide_retrain
from signals.monitoring.performance import block_stats, performance_check
from tests.monitoring.test_monitor import NOW, _drift


def _calibrated(n, seed, skill=True):
    """Rows whose outcome is drawn from their own probabilities (calibrated by construction)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([3.0, 2.0, 3.0], size=n)
    y = np.array([rng.choice(3, p=row) for row in p]) if skill else rng.integers(0, 3, size=n)
    dates = pd.bdate_range("2012-01-02", periods=n // 4 + 1).repeat(4)[:n]
    return pd.DataFrame({"symbol": np.tile(list("ABCD"), n // 4 + 1)[:n], "date": dates,
                         "p_down": p[:, 0], "p_flat": p[:, 1], "p_up": p[:, 2], "y": y})


def _resolved(frame):
    r = frame.rename(columns={"y": "actual_class"})
    r["predicted_class"] = r[["p_down", "p_flat", "p_up"]].to_numpy().argmax(axis=1)
    r["correct"] = r["predicted_class"] == r["actual_class"]
    return r


def test_a_window_like_the_record_passes_and_a_majority_class_model_never_meets_050():
    oos = _calibrated(6000, 0)
    live = _resolved(_calibrated(100, 1))
    res = performance_check(live, oos, window=100, level=0.01)
    assert res.judged and not res.below and res.n_blocks >= 200
    assert res.accuracy < 0.5  # the old fixed 0.50 would have called this a failing model
    assert res.expected_accuracy == pytest.approx(live[["p_down", "p_flat", "p_up"]].max(axis=1).mean())
    assert 0 < res.accuracy_percentile < 100 and res.p_accuracy > 0.01


def test_a_window_that_lost_its_skill_is_below_the_record():
    oos = _calibrated(6000, 0)
    live = _resolved(_calibrated(200, 2, skill=False))  # outcomes no longer follow the probabilities
    live["p_down"], live["p_flat"], live["p_up"] = 0.9, 0.05, 0.05  # and confidently wrong
    res = performance_check(live, oos, window=200, level=0.01)
    assert res.judged and res.below and res.p_log_loss <= 0.01
    d = decide_retrain(_drift(0), AccuracyResult(res.accuracy, res.n, 200, 0.5, res),
                       StalenessResult(NOW, NOW, 14), drifted_features_for_retrain=5)
    assert d.needed and d.reasons[0].startswith("performance: worse than the champion's walk-forward OOS record")


def test_not_judged_without_a_full_window_or_a_record():
    oos = _calibrated(6000, 0)
    short = performance_check(_resolved(_calibrated(40, 3)), oos, window=100)
    assert not short.judged and not short.below and "not full" in short.describe()
    none = performance_check(_resolved(_calibrated(100, 3)), None, window=100)
    assert not none.judged and none.n_blocks == 0
    acc = AccuracyResult(0.3, 100, 100, 0.5, none)  # no record: the fixed threshold still applies
    assert acc.below and not acc.judged_by_record
    assert performance_check(pd.DataFrame(), oos, window=100).accuracy is None


def test_blocks_are_consecutive_rows_of_the_record():
    oos = _calibrated(400, 4)
    b = block_stats(oos, window=100)
    assert len(b) == 13  # starts every 25 rows
    first = oos.sort_values(["date", "symbol"]).head(100)
    acc = (first[["p_down", "p_flat", "p_up"]].to_numpy().argmax(axis=1) == first["y"].to_numpy()).mean()
    assert b["accuracy"].iloc[0] == pytest.approx(acc)
