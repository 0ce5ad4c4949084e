"""Purged walk-forward splits over the dates of a (symbol, date) panel.

Rules (every splitter and slice here follows them):

* **Windows by calendar months.** The anchor is the first day of the month of the panel's first
  date. Window ``k`` trains on ``[anchor + k*step, anchor + k*step + train)`` and tests on the
  following ``test`` months. Windows are produced while the test window starts on or before the
  panel's last date, so the final test window may be cut short by the end of the data. With
  ``step < test`` the test windows overlap (each date is then tested by up to ``test/step``
  windows, each time by a model trained on strictly earlier data).
* **Purge.** A row at date ``t`` is labelled with the close ``h`` trading days later (``h`` = the
  horizon, counted in the rows of the same symbol). A training row is kept only if that label
  date is strictly before the first test date; otherwise its label would use test-period prices.
  Rows whose ``t + h`` is beyond the data (unknown) are purged as well.
* **Embargo.** ``embargo_days`` extra trading days are added to the horizon for the purge, i.e. a
  training row survives only if the date ``h + embargo`` rows later is before the test window.
  (In walk-forward the test window always follows the training window, so this is the only place
  an embargo can act.)

The same purge applies to the time-ordered hold-out slices carved out of a training set (the
tuning validation slice, the calibration slice, the train-step hold-out): see
:func:`time_holdout_split`.

Pure: arrays and pandas in, integer index arrays out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Window:
    """One walk-forward window; ``*_end`` dates are exclusive bounds."""

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def as_dict(self) -> dict[str, str | int]:
        d = asdict(self)
        return {k: (v.date().isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in d.items()}


def row_dates(X: Any, groups: Any = None) -> np.ndarray:
    """Per-row dates (datetime64[ns]) from ``groups``, a ``date`` index level or a DatetimeIndex."""
    if groups is not None:
        return pd.DatetimeIndex(np.asarray(groups)).to_numpy(dtype="datetime64[ns]")
    index = getattr(X, "index", None)
    if isinstance(index, pd.MultiIndex):
        level = "date" if "date" in index.names else index.nlevels - 1
        return pd.DatetimeIndex(index.get_level_values(level)).to_numpy(dtype="datetime64[ns]")
    if isinstance(index, pd.DatetimeIndex):
        return index.to_numpy(dtype="datetime64[ns]")
    raise ValueError("cannot find row dates: pass a frame indexed by (symbol, date) or by date, or groups=dates")


def row_symbols(X: Any, n: int) -> np.ndarray:
    index = getattr(X, "index", None)
    if isinstance(index, pd.MultiIndex):
        level = "symbol" if "symbol" in index.names else 0
        return np.asarray(index.get_level_values(level), dtype=object)
    return np.zeros(n, dtype=np.int64)


def label_end_dates(dates: np.ndarray, symbols: np.ndarray, shift: int) -> np.ndarray:
    """For each row, the date ``shift`` rows later within the same symbol (NaT-free: max date if none).

    Rows without a successor that far ahead get ``datetime64`` max, so any purge rule treats
    their label window as reaching past every boundary.
    """
    n = len(dates)
    out = np.full(n, np.datetime64("2262-04-11", "ns"), dtype="datetime64[ns]")
    if n == 0:
        return out
    if shift == 0:
        return dates.astype("datetime64[ns]").copy()
    order = np.lexsort((dates, pd.factorize(symbols)[0]))
    s_sorted = pd.factorize(symbols)[0][order]
    d_sorted = dates[order]
    if shift < n:
        same = s_sorted[shift:] == s_sorted[:-shift]
        ahead = np.where(same, d_sorted[shift:], np.datetime64("2262-04-11", "ns"))
        tmp = np.full(n, np.datetime64("2262-04-11", "ns"), dtype="datetime64[ns]")
        tmp[: n - shift] = ahead
        out[order] = tmp
    return out


def month_anchor(date: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(year=date.year, month=date.month, day=1)


class WalkForwardValidator:
    """Rolling, purged walk-forward splitter (scikit-learn ``split`` / ``get_n_splits``).

    Parameters
    ----------
    train_months, test_months, step_months:
        Window lengths in calendar months (defaults 24 / 6 / 3).
    horizon:
        Label horizon in trading days (rows of a symbol) used for the purge.
    embargo_days:
        Extra trading days purged in front of each test window.
    min_train_rows, min_test_rows:
        Windows with fewer surviving rows are skipped.
    """

    def __init__(
        self,
        train_months: int = 24,
        test_months: int = 6,
        step_months: int = 3,
        horizon: int = 5,
        embargo_days: int = 0,
        min_train_rows: int = 1,
        min_test_rows: int = 1,
    ) -> None:
        self.train_months = train_months
        self.test_months = test_months
        self.step_months = step_months
        self.horizon = horizon
        self.embargo_days = embargo_days
        self.min_train_rows = min_train_rows
        self.min_test_rows = min_test_rows

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "WalkForwardValidator":
        wf = settings.walk_forward
        kw = dict(
            train_months=wf.train_months,
            test_months=wf.test_months,
            step_months=wf.step_months,
            horizon=settings.ml.prediction_horizon,
            embargo_days=wf.embargo_days,
        )
        kw.update(overrides)
        return cls(**kw)

    def _check(self) -> None:
        for name in ("train_months", "test_months", "step_months"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.horizon < 0 or self.embargo_days < 0:
            raise ValueError("horizon and embargo_days must be >= 0")

    # ------------------------------------------------------------------ windows
    def windows(self, dates: Any) -> list[Window]:
        """Calendar windows over ``dates`` (any iterable of dates, duplicates allowed)."""
        self._check()
        d = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[ns]"))
        if len(d) == 0:
            return []
        first, last = d.min(), d.max()
        anchor = month_anchor(first)
        out: list[Window] = []
        k = 0
        while True:
            train_start = anchor + pd.DateOffset(months=k * self.step_months)
            train_end = train_start + pd.DateOffset(months=self.train_months)
            test_end = train_end + pd.DateOffset(months=self.test_months)
            if train_end > last:
                break
            out.append(Window(len(out), train_start, train_end, train_end, test_end))
            k += 1
        return out

    # ------------------------------------------------------------------ splitting
    def _split_with_windows(self, X: Any, groups: Any = None) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        dates = row_dates(X, groups)
        symbols = row_symbols(X, len(dates)) if groups is None else np.zeros(len(dates), dtype=np.int64)
        label_end = label_end_dates(dates, symbols, self.horizon + self.embargo_days)
        for w in self.windows(dates):
            ts, te = np.datetime64(w.test_start, "ns"), np.datetime64(w.test_end, "ns")
            in_train = (dates >= np.datetime64(w.train_start, "ns")) & (dates < ts)
            train_idx = np.flatnonzero(in_train & (label_end < ts))
            test_idx = np.flatnonzero((dates >= ts) & (dates < te))
            if len(train_idx) < self.min_train_rows or len(test_idx) < self.min_test_rows:
                continue
            yield w, train_idx, test_idx

    def split_windows(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        """Like :meth:`split` but also yields the :class:`Window` (for logging)."""
        yield from self._split_with_windows(X, groups)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)`` positional index arrays, one pair per window.

        ``X`` is indexed by (symbol, date) or by date; alternatively pass the row dates as
        ``groups`` (then the purge counts rows of the whole frame as trading days).
        """
        for _, train_idx, test_idx in self._split_with_windows(X, groups):
            yield train_idx, test_idx

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        if X is None and groups is None:
            raise ValueError("WalkForwardValidator needs X (or groups=dates): windows depend on the data's dates")
        return sum(1 for _ in self._split_with_windows(X, groups))


def time_holdout_split(
    dates: np.ndarray,
    symbols: np.ndarray,
    *,
    fraction: float | None = None,
    start: pd.Timestamp | None = None,
    horizon: int,
    embargo_days: int = 0,
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """Split rows into a purged earlier part and a time-ordered later hold-out.

    The hold-out starts at ``start`` or, with ``fraction``, at the first date of the last
    ``fraction`` of the *unique* dates (at least one date). Rows of the earlier part are kept only
    if their label date (``horizon + embargo_days`` rows later, same symbol) is before that start.
    Returns ``(fit_idx, holdout_idx, holdout_start)``.
    """
    dates = np.asarray(dates, dtype="datetime64[ns]")
    if (fraction is None) == (start is None):
        raise ValueError("pass exactly one of fraction or start")
    if start is None:
        if not 0 < float(fraction) < 1:  # type: ignore[arg-type]
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        unique = np.unique(dates)
        if len(unique) < 2:
            raise ValueError("need at least two distinct dates for a time-ordered hold-out")
        n_hold = min(max(1, int(round(len(unique) * float(fraction)))), len(unique) - 1)  # type: ignore[arg-type]
        boundary = unique[len(unique) - n_hold]
    else:
        boundary = np.datetime64(pd.Timestamp(start), "ns")
    label_end = label_end_dates(dates, symbols, horizon + embargo_days)
    fit_idx = np.flatnonzero((dates < boundary) & (label_end < boundary))
    hold_idx = np.flatnonzero(dates >= boundary)
    return fit_idx, hold_idx, pd.Timestamp(boundary)


def frame_holdout_split(
    X: pd.DataFrame, *, fraction: float | None = None, start: Any = None, horizon: int, embargo_days: int = 0
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """:func:`time_holdout_split` on a (symbol, date)- or date-indexed frame."""
    dates = row_dates(X)
    return time_holdout_split(
        dates,
        row_symbols(X, len(dates)),
        fraction=fraction,
        start=pd.Timestamp(start) if start is not None else None,
        horizon=horizon,
        embargo_days=embargo_days,
    )
