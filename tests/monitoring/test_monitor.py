"""ModelMonitor: drift levels, rolling accuracy window, staleness clock, the pure retrain rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from signals.monitoring.monitor import (
    AccuracyResult,
    DriftResult,
    ModelMonitor,
    MonitoringError,
    StalenessResult,
    build_alerts,
    decide_retrain,
    psi_heatmap,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _frames(n_ref=3000, n_cur=600, shifted=("f0", "f1", "f2"), seed=0):
    rng = np.random.default_rng(seed)
    cols = [f"f{i}" for i in range(8)]
    ref = pd.DataFrame(rng.normal(size=(n_ref, len(cols))), columns=cols)
    cur = pd.DataFrame(rng.normal(size=(n_cur, len(cols))), columns=cols)
    for c in shifted:
        cur[c] += 1.0  # one standard deviation: major drift
    idx = pd.MultiIndex.from_product([["A", "B"], pd.bdate_range("2013-01-01", periods=n_cur // 2)], names=["symbol", "date"])
    cur.index = idx
    return ref, cur


def _monitor(ref, **kw):
    defaults = dict(psi_bins=10, drifted_features_for_retrain=3, rolling_window=4, accuracy_threshold=0.5, staleness_days=14, clock=lambda: NOW)
    defaults.update(kw)
    return ModelMonitor(ref, **defaults)


def test_drift_finds_the_shifted_features_with_both_engines():
    ref, cur = _frames()
    mon = _monitor(ref)
    ev = mon.check_drift(cur, engine="evidently")
    nu = mon.check_drift(cur, engine="numpy")
    pd.testing.assert_series_equal(ev.psi, nu.psi, rtol=1e-9)
    assert set(ev.drifted()) == {"f0", "f1", "f2"}
    assert ev.n_major == 3 and ev.levels.drop(["f0", "f1", "f2"]).eq("none").all()
    assert ev.window_start == pd.Timestamp("2013-01-01") and ev.n_current == 600
    assert ev.snapshot is not None and nu.snapshot is None


def test_drift_rejects_a_window_without_the_models_features():
    ref, cur = _frames()
    with pytest.raises(MonitoringError, match="lacks 1 of the model's 8 features"):
        _monitor(ref).check_drift(cur.drop(columns="f3"), engine="numpy")
    with pytest.raises(MonitoringError, match="empty"):
        _monitor(ref).check_drift(cur.iloc[0:0], engine="numpy")
    with pytest.raises(MonitoringError, match="reference"):
        ModelMonitor(ref.iloc[0:0])


def _resolved(correct: list[bool]) -> pd.DataFrame:
    dates = pd.bdate_range("2013-01-01", periods=len(correct))
    return pd.DataFrame({"symbol": "A", "date": dates, "correct": correct})


def test_rolling_accuracy_uses_the_newest_full_window_only():
    mon = _monitor(_frames()[0], rolling_window=4, accuracy_threshold=0.5)
    a = mon.check_accuracy(_resolved([True] * 10 + [False, False, False, True]))
    assert a.accuracy == 0.25 and a.n == 4 and a.sufficient and a.below
    short = mon.check_accuracy(_resolved([False, False]))  # fewer than the window: reported, not judged
    assert short.accuracy == 0.0 and short.n == 2 and not short.sufficient and not short.below
    none = mon.check_accuracy(_resolved([]))
    assert none.accuracy is None and not none.below
    at = mon.check_accuracy(_resolved([True, True, False, False]))
    assert at.accuracy == 0.5 and not at.below  # "below" is strict


def test_staleness_uses_the_injected_clock_and_treats_naive_times_as_utc():
    mon = _monitor(_frames()[0], staleness_days=14)
    fresh = mon.check_staleness(NOW - timedelta(days=13, hours=23))
    old = mon.check_staleness(datetime(2026, 11, 6, 11, 0))  # naive = UTC; 14 days + 1 hour
    assert not fresh.stale and old.stale
    assert old.age_days == pytest.approx(14 + 1 / 24)


def _drift(n_major: int) -> DriftResult:
    psi = pd.Series([0.5] * n_major + [0.01] * (6 - n_major), index=[f"f{i}" for i in range(6)])
    levels = psi.map(lambda v: "major" if v > 0.2 else "none")
    return DriftResult(psi=psi, levels=levels, n_reference=100, n_current=50, engine="numpy")


@pytest.mark.parametrize(
    "n_major,acc,n_acc,age,needed,kinds",
    [
        (0, 0.6, 100, 1, False, []),
        (4, 0.6, 100, 1, False, []),  # drift on fewer features than the trigger
        (5, 0.6, 100, 1, True, ["drift"]),
        (0, 0.49, 100, 1, True, ["accuracy"]),
        (0, 0.10, 99, 1, False, []),  # accuracy below, but the window is not full yet
        (0, 0.6, 100, 15, True, ["staleness"]),
        (6, 0.3, 100, 30, True, ["drift", "accuracy", "staleness"]),
    ],
)
def test_retrain_decision(n_major, acc, n_acc, age, needed, kinds):
    accuracy = AccuracyResult(acc, n_acc, 100, 0.5)
    staleness = StalenessResult(NOW - timedelta(days=age), NOW, 14)
    d = decide_retrain(_drift(n_major), accuracy, staleness, drifted_features_for_retrain=5)
    assert d.needed is needed
    assert [r.split(":")[0].split(" (")[0] for r in d.reasons] == kinds


def test_unusual_drift_rule_counts_only_features_above_their_in_sample_p90():
    drift = _drift(6)  # all six features have PSI 0.5 > 0.2
    drift.baseline_p90 = pd.Series([0.9, 0.9, 0.9, 0.9, 0.1, 0.1], index=drift.psi.index)
    accuracy = AccuracyResult(0.6, 100, 100, 0.5)
    staleness = StalenessResult(NOW - timedelta(days=1), NOW, 14)
    plain = decide_retrain(drift, accuracy, staleness, drifted_features_for_retrain=5, drift_rule="psi")
    unusual = decide_retrain(drift, accuracy, staleness, drifted_features_for_retrain=5, drift_rule="unusual")
    assert plain.needed and "6 feature(s)" in plain.reasons[0]
    assert drift.n_major_unusual == 2 and not unusual.needed
    drift.baseline_p90 = None  # no in-sample baseline: fall back to the plain count
    assert decide_retrain(drift, accuracy, staleness, drifted_features_for_retrain=5, drift_rule="unusual").needed


def test_evaluate_and_alerts():
    ref, cur = _frames()
    mon = _monitor(ref, drifted_features_for_retrain=3, rolling_window=4)
    report = mon.evaluate(cur, _resolved([False] * 4), NOW - timedelta(days=30), engine="numpy")
    assert report.decision.needed and len(report.decision.reasons) == 3
    alerts = build_alerts(report, "signals-xgb/7", "2013-03-01")
    assert [a.kind for a in alerts] == ["drift", "accuracy", "staleness"]
    assert {a.dedup_key for a in alerts} == {"drift:signals-xgb/7", "accuracy:signals-xgb/7", "staleness:signals-xgb/7"}
    assert "PSI > 0.2" in alerts[0].message and "2013-03-01" in alerts[0].message
    summary = report.summary()
    assert summary["drifted_features"] == 3 and summary["retrain_needed"] is True
    quiet = mon.evaluate(ref.iloc[:600], _resolved([True] * 4), NOW, engine="numpy")
    assert build_alerts(quiet, "m/1", None) == [] and not quiet.decision.needed


def test_psi_heatmap_png(tmp_path):
    hist = pd.DataFrame(
        [[0.01, 0.15, np.nan], [0.3, 0.25, 0.9]], index=["f0", "f1"], columns=pd.to_datetime(["2013-01-02", "2013-01-03", "2013-01-04"])
    )
    out = psi_heatmap(hist, tmp_path / "h" / "psi.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_excluded_features_are_reported_but_not_counted():
    ref, cur = _frames(shifted=("f0", "f1", "f2"))
    d = _monitor(ref, exclude=("f0", "not_a_feature")).check_drift(cur, engine="numpy")
    assert d.levels["f0"] == "major" and d.excluded == ("f0",)
    assert d.n_major == 2 and "f0" not in d.drifted()
    assert d.table().set_index("feature").loc["f0", "counted"] == False  # noqa: E712


def test_in_sample_baseline_separates_usual_from_unusual_psi():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(rng.normal(size=(3000, 4)), columns=["a", "b", "c", "slow"])
    dates = pd.bdate_range("2010-01-01", periods=400)
    idx = pd.MultiIndex.from_product([["A", "B"], dates], names=["symbol", "date"])
    hist = pd.DataFrame(rng.normal(size=(len(idx), 4)), columns=["a", "b", "c", "slow"], index=idx)
    # a persistent feature: one value per symbol per 100 days -> large PSI in every short window
    hist["slow"] = np.repeat(rng.normal(size=2 * 4), 100)
    cur = hist.loc[(slice(None), dates[-60:]), :].copy()
    cur["a"] += 1.0  # real drift in a
    mon = _monitor(ref)
    base = mon.baseline_psi(hist, end=dates[-61], window=60, n_windows=5)
    assert base.shape == (4, 5) and base.columns.max() <= dates[-61]
    d = mon.check_drift(cur, engine="numpy", history=hist, baseline_end=dates[-61])
    assert d.n_baseline_windows == d.null.n_windows >= 20  # in-sample windows every 5 dates
    assert d.levels["a"] == "major" and d.levels["slow"] == "major"
    assert d.unusual["a"] and not d.unusual["slow"]  # slow's PSI is normal for it
    assert d.n_major == 2 and d.n_major_unusual == 1
    # the calibrated rule: a carries the alarm, slow's large PSI is ordinary for it
    assert d.alarm and d.decision.rejected[0] == "a" and "slow" not in d.decision.rejected
    assert d.in_sample_percentile["a"] == 100.0 and d.in_sample_percentile["slow"] < 100.0
    assert _monitor(ref).check_drift(cur, engine="numpy").n_major_unusual is None  # no history, no baseline


def test_calibrated_rule_drives_the_retrain_and_the_alert_explains_it():
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2010-01-01", periods=500)
    idx = pd.MultiIndex.from_product([["A", "B"], dates], names=["symbol", "date"])
    hist = pd.DataFrame(rng.normal(size=(len(idx), 4)), columns=["a", "b", "c", "d"], index=idx)
    ref = hist[hist.index.get_level_values("date") <= dates[439]]
    cur = hist.loc[(slice(None), dates[-60:]), :].copy()
    mon = _monitor(ref, staleness_days=120)  # data age 84 days
    quiet = mon.evaluate(cur, _resolved([]), NOW, engine="numpy", history=hist, baseline_end=dates[439])
    assert quiet.drift.alarm is False and not quiet.decision.needed and build_alerts(quiet, "m/3", dates[-1]) == []
    assert quiet.staleness.data_age_days == (dates[-1] - dates[439]).days and quiet.staleness.basis == "data"
    cur["b"] += 1.0
    loud = mon.evaluate(cur, _resolved([]), NOW, engine="numpy", history=hist, baseline_end=dates[439])
    assert loud.drift.alarm and loud.decision.needed and loud.decision.reasons[0].startswith("drift: max standardised")
    (alert,) = [a for a in build_alerts(loud, "m/3", dates[-1]) if a.kind == "drift"]
    assert alert.fields["model"] == "m/3" and alert.fields["as_of"] == dates[-1].date().isoformat()
    assert alert.fields["decision"] == "alarm" and "in-sample p" in alert.fields["rule"]
    assert alert.fields["top_features"].startswith("b (PSI ") and "in-sample pct 100" in alert.fields["top_features"]
    summary = loud.summary()
    assert summary["drift_alarm"] is True and summary["top_features"][0]["feature"] == "b"


def test_bar_chart_and_heatmap_leave_calendar_features_out(tmp_path):
    from signals.monitoring.monitor import psi_bars

    rng = np.random.default_rng(6)
    dates = pd.bdate_range("2010-01-01", periods=400)
    idx = pd.MultiIndex.from_product([["A", "B"], dates], names=["symbol", "date"])
    hist = pd.DataFrame(rng.normal(size=(len(idx), 3)), columns=["a", "b", "month"], index=idx)
    mon = _monitor(hist, exclude=("month",))
    d = mon.check_drift(hist.loc[(slice(None), dates[-60:]), :], engine="numpy", history=hist, baseline_end=dates[-1])
    assert "month" not in d.top(10)["feature"].tolist()
    out = psi_bars(d, tmp_path / "bars.png")
    assert out.stat().st_size > 1000
