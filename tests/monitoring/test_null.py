"""The null-calibrated drift rule: quiet on stationary data, loud on a shift, honest about gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.monitoring.null import (
    MIN_NULL_WINDOWS,
    DateCounts,
    min_windows,
    drift_decision,
    null_drift,
    vector_psi,
)
from signals.monitoring.psi import QuantileBinner, psi_from_counts


def panel(n_dates=600, n_symbols=4, n_features=6, phi=0.97, seed=0, start="2010-01-01"):
    """Persistent AR(1) features (the case where fixed PSI levels cry wolf), (symbol, date) index."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n_dates, name="date")
    x = np.empty((n_symbols, n_dates, n_features))
    x[:, 0] = rng.normal(size=(n_symbols, n_features))
    for t in range(1, n_dates):
        x[:, t] = phi * x[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=(n_symbols, n_features))
    idx = pd.MultiIndex.from_product([[f"S{i}" for i in range(n_symbols)], dates], names=["symbol", "date"])
    cols = [f"f{i}" for i in range(n_features)]
    return pd.DataFrame(x.reshape(-1, n_features), index=idx, columns=cols), dates


def check(hist, dates, end_pos, train_end_pos, *, method="maxstat", level=0.01, window=60, **kw):
    train = hist[hist.index.get_level_values("date") <= dates[train_end_pos]]
    binner = QuantileBinner(10).fit(train)
    nd = null_drift(hist, binner, window=window, train_start=None, train_end=dates[train_end_pos],
                    check_end=dates[end_pos], gap=20, step=5, min_windows=min_windows(method, level, hist.shape[1]), **kw)
    return nd, drift_decision(nd.observed, nd.null, comparable=nd.reference_share >= 0.5, method=method, level=level,
                              exclude=kw.pop("exclude", ()) if "exclude" in kw else ())


def test_vector_psi_matches_the_scalar_psi_with_empty_bins():
    rng = np.random.default_rng(1)
    e = rng.integers(0, 50, size=(30, 8))
    a = rng.integers(0, 50, size=(30, 8))
    e[:, 0] = 0  # a bin empty in the reference
    a[:5, 1] = 0
    e[:3, 2] = a[:3, 2] = 0  # empty in both: dropped
    got = vector_psi(e, a)
    assert got == pytest.approx([psi_from_counts(e[i], a[i]) for i in range(30)], rel=1e-12)


def test_date_counts_add_up_to_the_rows():
    hist, dates = panel(n_dates=100)
    hist.iloc[::7, 2] = np.nan
    c = DateCounts(hist, QuantileBinner(5).fit(hist), hist.index.get_level_values("date"))
    whole = c.span(0, len(c.dates))
    assert (whole.sum(axis=-1) == len(hist)).all() and whole[2, 0] == hist["f2"].isna().sum()


def test_stationary_panel_is_quiet_in_and_after_the_training_period_although_psi_is_large():
    hist, dates = panel(n_dates=900, seed=2)
    train_end = 600
    alarms, big_psi = [], []
    for end in range(100, 900, 10):
        nd, dec = check(hist, dates, end, train_end)
        alarms.append(dec.alarm)
        big_psi.append(int((nd.observed > 0.2).sum()))
        assert dec.judged and dec.n_windows >= 200
    assert np.mean(alarms) <= 0.05
    assert np.mean(big_psi) >= 1  # the fixed 0.2 level would have fired on most checks


def test_day0_check_inside_the_training_period_is_quiet():
    hist, dates = panel(n_dates=700, seed=3)
    for method in ("maxstat", "bh"):
        _, dec = check(hist, dates, 699, 699, method=method, level=0.01 if method == "maxstat" else 0.05)
        assert dec.judged and not dec.alarm, dec.reason


@pytest.mark.parametrize("method,level", [("maxstat", 0.01), ("bh", 0.05)])
def test_a_shifted_feature_alarms_and_carries_the_alarm(method, level):
    hist, dates = panel(n_dates=700, seed=4)
    after = hist.index.get_level_values("date") > dates[660]
    shifted = hist.copy()
    shifted.loc[after, "f3"] += 1.5
    shifted.loc[after, "f1"] *= 2.0
    _, dec = check(shifted, dates, 699, 640, method=method, level=level)
    assert dec.alarm and dec.rejected and dec.rejected[0] in {"f1", "f3"}, dec.reason
    assert set(dec.rejected) <= {"f1", "f3"}
    _, quiet = check(hist, dates, 699, 640, method=method, level=level)
    assert not quiet.alarm


def test_current_rows_given_apart_are_the_ones_judged():
    hist, dates = panel(n_dates=700, seed=5)
    cur = hist[hist.index.get_level_values("date") > dates[639]].copy()
    cur["f0"] += 2.0
    nd, dec = check(hist, dates, 699, 699, current=cur)
    assert dec.alarm and dec.rejected[0] == "f0" and nd.percentile()["f0"] == 100.0


def test_a_feature_absent_from_the_reference_is_not_comparable_and_never_counted():
    hist, dates = panel(n_dates=700, seed=6)
    hist["vix"] = np.nan
    late = hist.index.get_level_values("date") > dates[620]
    hist.loc[late, "vix"] = 20.0 + np.random.default_rng(0).normal(size=int(late.sum()))  # data starts late
    nd, dec = check(hist, dates, 699, 660)
    assert nd.reference_share["vix"] < 0.5 and nd.observed["vix"] > 1.0  # huge PSI: only the missing share moved
    assert dec.not_comparable == ["vix"] and "vix" not in dec.counted and not dec.alarm


def test_excluded_calendar_features_are_not_counted():
    hist, dates = panel(n_dates=700, seed=7)
    hist["month"] = hist.index.get_level_values("date").month.astype(float)
    hist.loc[hist.index.get_level_values("date") > dates[640], "month"] = np.nan  # would alarm if counted
    train = hist[hist.index.get_level_values("date") <= dates[660]]
    nd = null_drift(hist, QuantileBinner(10).fit(train), window=60, train_start=None, train_end=dates[660],
                    gap=20, step=2)
    dec = drift_decision(nd.observed, nd.null, exclude=["month"])
    assert "month" not in dec.counted and not dec.alarm
    assert drift_decision(nd.observed, nd.null).alarm  # counted, it alarms


def test_too_few_null_windows_is_not_judged():
    hist, dates = panel(n_dates=120, seed=8)
    nd, dec = check(hist, dates, 119, 90)
    assert 20 <= nd.n_windows < 99 and not dec.judged and not dec.alarm and "not judged" in dec.reason
    few = nd.null.iloc[:, : MIN_NULL_WINDOWS - 1]
    assert not drift_decision(nd.observed, few, method="bh", level=0.05).judged


def test_bad_arguments_are_named():
    s = pd.Series([0.1], index=["a"])
    with pytest.raises(ValueError, match="method"):
        drift_decision(s, pd.DataFrame(), method="nope")
    with pytest.raises(ValueError, match="level"):
        drift_decision(s, pd.DataFrame(), level=1.5)
