"""Purged walk-forward splitter: exact calendar boundaries, purge, embargo, sklearn contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signals.modeling.splits import (
    WalkForwardValidator,
    frame_holdout_split,
    label_end_dates,
    time_holdout_split,
)


def _panel(symbols=("A", "B"), start="2020-01-01", end="2021-06-30") -> pd.DataFrame:
    dates = pd.bdate_range(start, end)
    idx = pd.MultiIndex.from_product([list(symbols), dates], names=["symbol", "date"])
    return pd.DataFrame({"f": np.arange(len(idx), dtype=float)}, index=idx)


def _dates(X: pd.DataFrame, idx: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(X.index.get_level_values("date")[idx])


def test_windows_are_calendar_months() -> None:
    X = _panel()
    v = WalkForwardValidator(train_months=6, test_months=2, step_months=2, horizon=5)
    ws = v.windows(X.index.get_level_values("date"))
    assert [w.as_dict()["train_start"] for w in ws] == [
        "2020-01-01", "2020-03-01", "2020-05-01", "2020-07-01", "2020-09-01", "2020-11-01"
    ]
    w0 = ws[0]
    assert (w0.train_end, w0.test_start, w0.test_end) == (
        pd.Timestamp("2020-07-01"), pd.Timestamp("2020-07-01"), pd.Timestamp("2020-09-01")
    )
    # the last test window starts on/before the last date; no window starts after it
    assert ws[-1].test_start <= pd.Timestamp("2021-06-30") < ws[-1].test_start + pd.DateOffset(months=2)
    assert v.get_n_splits(X) == len(ws) == 6


def test_anchor_is_first_of_month_of_first_date() -> None:
    X = _panel(start="2020-01-15", end="2020-12-31")
    ws = WalkForwardValidator(6, 3, 3, horizon=1).windows(X.index.get_level_values("date"))
    assert ws[0].train_start == pd.Timestamp("2020-01-01")
    assert ws[0].test_start == pd.Timestamp("2020-07-01")


def test_exact_train_test_boundaries_and_purge() -> None:
    X = _panel()
    v = WalkForwardValidator(train_months=6, test_months=2, step_months=2, horizon=5)
    tr, te = next(iter(v.split(X)))
    trd, ted = _dates(X, tr), _dates(X, te)
    assert ted.min() == pd.Timestamp("2020-07-01") and ted.max() == pd.Timestamp("2020-08-31")
    assert trd.min() == pd.Timestamp("2020-01-01")
    # 2020-06-30 is the last business day before the test window; 5 trading days earlier the label
    # of 2020-06-23 ends on 06-30 (kept), 06-24's ends on 07-01 (inside the test window: purged)
    assert trd.max() == pd.Timestamp("2020-06-23")
    assert pd.Timestamp("2020-06-24") not in set(trd)
    assert len(te) == 2 * len(pd.bdate_range("2020-07-01", "2020-08-31"))


@pytest.mark.parametrize("horizon,embargo", [(1, 0), (5, 0), (5, 3), (10, 2)])
def test_no_purged_row_survives(horizon: int, embargo: int) -> None:
    X = _panel(symbols=("A", "B", "C"))
    # make the calendars differ per symbol: drop some days of B
    X = X.drop(index=[("B", d) for d in pd.bdate_range("2020-06-15", "2020-06-19")])
    v = WalkForwardValidator(6, 2, 2, horizon=horizon, embargo_days=embargo)
    dates = X.index.get_level_values("date")
    symbols = X.index.get_level_values("symbol")
    n = 0
    for tr, te in v.split(X):
        test_start = dates[te].min()
        assert dates[tr].max() < test_start
        for i in tr:
            own = dates[symbols == symbols[i]]
            pos = own.get_loc(dates[i])
            # the label (horizon) plus embargo days of the row's own symbol end before the test window
            assert pos + horizon + embargo < len(own) and own[pos + horizon + embargo] < test_start
        # and the purge is not over-eager: the next row after each symbol's last training row is
        # exactly the first one whose label window reaches the test window
        for s in np.unique(symbols[tr]):
            own = dates[symbols == s]
            last = dates[tr][symbols[tr] == s].max()
            pos = own.get_loc(last)
            assert own[pos + 1 + horizon + embargo] >= test_start
        n += 1
    assert n == v.get_n_splits(X) > 0


def test_embargo_shrinks_training_set() -> None:
    X = _panel()
    a = next(iter(WalkForwardValidator(6, 2, 2, horizon=5).split(X)))[0]
    b = next(iter(WalkForwardValidator(6, 2, 2, horizon=5, embargo_days=3).split(X)))[0]
    assert len(a) - len(b) == 2 * 3
    assert set(b) < set(a)


def test_split_is_positional_and_order_independent() -> None:
    X = _panel().sample(frac=1.0, random_state=0)
    v = WalkForwardValidator(6, 2, 2, horizon=5)
    for tr, te in v.split(X):
        assert tr.dtype.kind == "i" and te.dtype.kind == "i"
        assert len(np.intersect1d(tr, te)) == 0
        assert _dates(X, tr).max() < _dates(X, te).min()


def test_groups_dates_and_sklearn_composition() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    dates = pd.bdate_range("2020-01-01", "2020-12-31")
    rng = np.random.default_rng(0)
    Xa = rng.normal(size=(len(dates), 2))
    y = (Xa[:, 0] > 0).astype(int)
    v = WalkForwardValidator(6, 2, 2, horizon=2)
    scores = cross_val_score(LogisticRegression(), Xa, y, cv=v, groups=dates)
    assert len(scores) == v.get_n_splits(groups=dates) == 3
    with pytest.raises(ValueError):
        v.get_n_splits()


def test_short_data_gives_no_windows() -> None:
    X = _panel(start="2020-01-01", end="2020-05-31")
    assert WalkForwardValidator(6, 2, 2).get_n_splits(X) == 0


def test_label_end_dates_per_symbol() -> None:
    d = pd.bdate_range("2020-01-01", periods=4).to_numpy()
    dates = np.concatenate([d, d[:3]])
    syms = np.array(["A"] * 4 + ["B"] * 3, dtype=object)
    end = label_end_dates(dates, syms, 2)
    assert end[0] == d[2] and end[1] == d[3]
    assert end[2] > d[3] and end[3] > d[3]  # no future: pushed beyond every boundary
    assert end[4] == d[2] and end[5] > d[3]


def test_time_holdout_split_fraction_and_purge() -> None:
    X = _panel(start="2020-01-01", end="2020-04-30")
    fit, hold, start = frame_holdout_split(X, fraction=0.25, horizon=3)
    d = X.index.get_level_values("date")
    unique = np.unique(d)
    assert start == pd.Timestamp(unique[len(unique) - round(len(unique) * 0.25)])
    assert d[hold].min() == start and d[fit].max() < start
    # purge: exactly 3 trading days per symbol dropped between fit and hold-out
    assert len(fit) + len(hold) == len(X) - 2 * 3
    fit2, hold2, start2 = time_holdout_split(
        d.to_numpy(), X.index.get_level_values("symbol").to_numpy(), start=start, horizon=3, embargo_days=1
    )
    assert start2 == start and np.array_equal(hold2, hold) and len(fit2) == len(fit) - 2
    with pytest.raises(ValueError):
        frame_holdout_split(X, horizon=1)
