"""Null-calibrated drift: each feature's PSI judged against its own in-sample distribution.

Why
---
A fixed PSI threshold (0.2 = "major") ignores how large PSI gets *when nothing changed*. A
60-day window of a small universe holds few independent values of a persistent feature (a
200-day statistic, a quarterly fundamental), so its PSI against a multi-year reference is
large in any period; a fixed threshold then flags most features on a model trained minutes
earlier. Here the same statistic is computed for many windows of the same length *inside the
training period*, and the check's window is compared with that distribution.

How (all counts, no resampling of rows)
---------------------------------------
* Every feature value is mapped to its reference-quantile bin (:class:`QuantileBinner`, the
  NaN bin included) and counted per trading date, giving a dates x features x bins tensor
  and its cumulative sum over dates: any window's counts are one subtraction.
* The reference of a window is **the training period minus the window and ``gap`` trading
  dates on each side** (leave-window-out). A window compared with a reference that contains
  it would look trivially close; the gap keeps slowly changing features of neighbouring
  dates out too. The check's own window is treated the same way, so on the day a model is
  trained (window inside the training period) the observed statistic is one more draw of
  the null, and after training it is compared like for like.
* Null windows end every ``step`` trading dates inside the training period.
* PSI per (window, feature) uses the empty-bin rule of :mod:`signals.monitoring.psi`
  (Evidently's), vectorised.

Features with a finite value in fewer than ``min_reference_share`` of the training rows
(e.g. VIX when the reference period has almost none) are *not comparable*: their PSI mostly
measures the missing share; they are reported apart and never counted.

:func:`drift_decision` is the one alarm rule (pure, documented there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from signals.monitoring.psi import QuantileBinner

METHOD_MAXSTAT, METHOD_BH = "maxstat", "bh"
METHODS = (METHOD_MAXSTAT, METHOD_BH)
#: fewer null windows than this: the null is too thin to judge, the rule does not fire
MIN_NULL_WINDOWS = 20
#: PSI floor before the log in the standardisation (PSI 0 exactly: a constant feature)
LOG_EPS = 1e-4
#: floor of the per-feature standard deviation of log PSI (a constant null cannot divide by 0)
SD_FLOOR = 0.05


def vector_psi(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """PSI over the last axis of two count arrays (same shape), Evidently's empty-bin rule.

    Bins empty in both samples are dropped; a zero share elsewhere becomes
    ``min(non-zero share) / 1e6`` if that minimum is <= 1e-4, else 1e-4 (per sample). An
    empty sample gives NaN.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    keep = (e > 0) | (a > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        es = _fill(e / e.sum(axis=-1, keepdims=True), keep)
        as_ = _fill(a / a.sum(axis=-1, keepdims=True), keep)
        terms = np.where(keep, (as_ - es) * np.log(as_ / es), 0.0)
    return terms.sum(axis=-1)


def _fill(shares: np.ndarray, keep: np.ndarray) -> np.ndarray:
    nonzero_min = np.where(shares > 0, shares, np.inf).min(axis=-1, keepdims=True)
    fill = np.where(nonzero_min <= 1e-4, nonzero_min / 1e6, 1e-4)
    return np.where(keep & (shares == 0), fill, np.where(keep, shares, 1.0))


class DateCounts:
    """Bin counts per (trading date, feature, bin) of a feature history, cumulated over dates."""

    def __init__(self, history: pd.DataFrame, binner: QuantileBinner, dates: pd.DatetimeIndex) -> None:
        self.features = list(binner.columns_)
        codes = binner.transform(history).to_numpy(dtype=np.int64) + 1  # NaN bin -> 0
        self.n_bins = int(max(len(e) for e in binner.edges_.values())) + 2 if self.features else 2
        self.dates, date_pos = _date_positions(dates)
        n_d, n_f, n_b = len(self.dates), len(self.features), self.n_bins
        flat = (date_pos[:, None] * n_f + np.arange(n_f)[None, :]) * n_b + codes
        counts = np.bincount(flat.ravel(), minlength=n_d * n_f * n_b).reshape(n_d, n_f, n_b)
        self.cum = np.concatenate([np.zeros((1, n_f, n_b), dtype=np.int64), np.cumsum(counts, axis=0)])
        #: null PSI per (t0, t1, window, gap, step): the null does not depend on the check date
        self.null_cache: dict[tuple[int, ...], np.ndarray] = {}

    def span(self, start: np.ndarray | int, stop: np.ndarray | int) -> np.ndarray:
        """Counts over date positions ``start .. stop-1`` (arrays broadcast: windows x features x bins)."""
        return self.cum[np.asarray(stop)] - self.cum[np.asarray(start)]

    def position(self, day: object, side: str = "right") -> int:
        """Number of dates <= ``day`` (side right) or < ``day`` (side left)."""
        return int(self.dates.searchsorted(pd.Timestamp(day), side=side))


def _date_positions(dates: pd.DatetimeIndex) -> tuple[pd.DatetimeIndex, np.ndarray]:
    uniq = pd.DatetimeIndex(dates.unique()).sort_values()
    return uniq, uniq.get_indexer(dates)


@dataclass
class NullDrift:
    """The check window's PSI and the null (in-sample windows) PSI, per feature."""

    observed: pd.Series  # feature -> PSI of the check window vs its leave-window-out reference
    null: pd.DataFrame  # features x null-window end dates
    reference_share: pd.Series  # feature -> share of training rows with a finite value
    window: int
    gap: int
    step: int
    reference_start: pd.Timestamp | None = None
    reference_end: pd.Timestamp | None = None

    @property
    def n_windows(self) -> int:
        return int(self.null.shape[1])

    def percentile(self) -> pd.Series:
        """Share of null windows with PSI below the observed one (the in-sample percentile, 0..100)."""
        if self.n_windows == 0:
            return pd.Series(np.nan, index=self.observed.index)
        below = (self.null.to_numpy() < self.observed.to_numpy()[:, None]).mean(axis=1)
        return pd.Series(100.0 * below, index=self.observed.index)


def null_drift(
    history: pd.DataFrame,
    binner: QuantileBinner,
    *,
    window: int,
    train_start: object,
    train_end: object,
    check_end: object = None,
    gap: int = 60,
    step: int = 5,
    counts: DateCounts | None = None,
    current: pd.DataFrame | None = None,
    min_windows: int = 0,
    warmup: int = 0,
) -> NullDrift:
    """PSI of the check window (the last ``window`` dates up to ``check_end``) and of the null windows.

    ``history`` holds feature rows indexed by (symbol, date) at least over the training period
    (and the check window unless ``current`` gives its rows); ``counts`` may be passed to reuse
    the binned counts across checks (the replay does). When stepping by ``step`` would give
    fewer than ``min_windows`` null windows (a short training period), the step shrinks (down
    to 1 date) so that a p-value as small as the alarm level can exist at all. Null windows
    start ``warmup`` dates into the training period (features still filling their lookback, e.g.
    a 252-day high, are unlike any later window), as far as ``min_windows`` windows remain.
    """
    if counts is None:
        counts = DateCounts(history, binner, _dates(history))
    t0 = counts.position(train_start, side="left") if train_start is not None else 0
    t1 = counts.position(train_end, side="right")  # training dates: positions t0 .. t1-1
    end = counts.position(check_end, side="right") if check_end is not None else len(counts.dates)
    if t1 <= t0:
        raise ValueError(f"no feature dates inside the training period {train_start} .. {train_end}")
    total = counts.span(t0, t1)  # features x bins
    n_train = total.sum(axis=-1)
    finite = n_train - total[..., 0]
    share = pd.Series(np.where(n_train > 0, finite / np.maximum(n_train, 1), 0.0), index=counts.features)

    def leave_out(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        lo = np.clip(starts - gap, t0, t1)
        hi = np.clip(stops + gap, t0, t1)
        return total[None] - counts.span(np.maximum(lo, 0), np.maximum(hi, lo))

    if current is not None and len(current):
        cur_dates = _dates(current)
        start, end = counts.position(cur_dates.min(), side="left"), counts.position(cur_dates.max(), side="right")
        codes = binner.transform(current[counts.features]).to_numpy(dtype=np.int64) + 1
        n_f, n_b = len(counts.features), counts.n_bins
        cur_counts = np.bincount((np.arange(n_f)[None, :] * n_b + codes).ravel(), minlength=n_f * n_b).reshape(n_f, n_b)
    else:
        start = max(end - window, 0)
        cur_counts = counts.span(start, end)
    obs = vector_psi(leave_out(np.array([start]), np.array([max(end, start)]))[0], cur_counts)
    first = t0 + max(0, min(warmup, t1 - t0 - window + 1 - max(min_windows, 1)))
    n_possible = t1 - first - window + 1
    if min_windows > 0 and n_possible > 0 and -(-n_possible // max(step, 1)) < min_windows:
        step = max(1, n_possible // min_windows)
    ends = np.arange(first + window, t1 + 1, max(step, 1))
    key = (t0, first, t1, window, gap, int(step))
    if key in counts.null_cache:
        null = counts.null_cache[key]
    elif len(ends):
        starts = ends - window
        null = counts.null_cache[key] = vector_psi(leave_out(starts, ends), counts.span(starts, ends)).T
    else:
        null = np.empty((len(counts.features), 0))
    return NullDrift(
        observed=pd.Series(obs, index=counts.features, name="psi"),
        null=pd.DataFrame(null, index=counts.features, columns=counts.dates[ends - 1] if len(ends) else []),
        reference_share=share,
        window=window,
        gap=gap,
        step=step,
        reference_start=counts.dates[t0],
        reference_end=counts.dates[t1 - 1],
    )


def _dates(frame: pd.DataFrame) -> pd.DatetimeIndex:
    idx = frame.index
    if isinstance(idx, pd.MultiIndex):
        level = "date" if "date" in idx.names else idx.nlevels - 1
        return pd.DatetimeIndex(idx.get_level_values(level))
    return pd.DatetimeIndex(idx)


def min_windows(method: str, level: float, n_features: int) -> int:
    """Null windows needed before the rule can fire at all (twice the bare minimum).

    maxstat: one p-value per check, so ``1 / (1 + windows) <= level``. BH: the smallest
    per-feature p-value must pass ``level / n_features``, which needs ``n_features / level``
    windows: with 80 features at 0.05, 1,600 windows, more than most training periods hold.
    """
    need = 1.0 / level if method == METHOD_MAXSTAT else max(n_features, 1) / level
    return int(np.ceil(2.0 * need))


# --------------------------------------------------------------------------- the rule
@dataclass
class DriftDecision:
    """What :func:`drift_decision` decided, with everything needed to explain it."""

    alarm: bool
    method: str
    level: float
    p_value: float | None  # maxstat: the check's p-value; bh: smallest per-feature p-value
    statistic: float | None  # maxstat: max standardised log-PSI; bh: number of rejections
    p_values: pd.Series  # counted feature -> empirical p-value
    z: pd.Series  # counted feature -> standardised log-PSI vs its null
    rejected: list[str]  # the features that carry the alarm (sorted, strongest first)
    counted: list[str]
    not_comparable: list[str]
    n_windows: int
    reason: str
    judged: bool = True
    details: dict = field(default_factory=dict)


def drift_decision(
    observed: pd.Series,
    null: pd.DataFrame,
    *,
    comparable: pd.Series | None = None,
    exclude: Sequence[str] = (),
    method: str = METHOD_MAXSTAT,
    level: float = 0.01,
    min_features: int = 1,
) -> DriftDecision:
    """The drift alarm rule: is the check's PSI pattern more extreme than chance allows?

    ``observed``: feature -> PSI of the check window; ``null``: features x in-sample windows,
    the same statistic where nothing is supposed to have changed. Features in ``exclude``
    (calendar features) and those with ``comparable`` False (absent or nearly absent from the
    reference) are never counted.

    Per counted feature, the empirical p-value is ``(1 + #null windows with PSI >= observed) /
    (1 + #null windows)`` and the standardised score ``z = (log PSI - mean) / sd`` of log PSI
    over its null windows (sd floored at 0.05).

    * ``method="maxstat"`` (default): the check's statistic is the largest ``z`` over the
      counted features; it is compared with the same maximum computed for every null window
      (each window scored against the same per-feature mean and sd). p-value =
      ``(1 + #null maxima >= observed) / (1 + #windows)``; alarm when ``p <= level``. One
      test per check, so correlated features (ten volatility measures moving together) do not
      multiply the false alarms, and one feature moving far beyond its own history is enough.
    * ``method="bh"``: Benjamini-Hochberg over the per-feature empirical p-values at false
      discovery rate ``level``; alarm when at least ``min_features`` features are rejected.
      Its resolution is limited by the number of windows: a p-value cannot be below
      ``1 / (1 + windows)``.

    With fewer than :data:`MIN_NULL_WINDOWS` null windows (maxstat: fewer than ``1/level - 1``,
    so that the smallest possible p-value reaches the level) or no counted feature, nothing is
    judged and the alarm stays off (``judged`` False, the reason says why).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    comp = comparable.reindex(observed.index).fillna(False).astype(bool) if comparable is not None else None
    not_comparable = [] if comp is None else [f for f in observed.index if not comp[f] and f not in exclude]
    counted = [f for f in observed.index if f not in exclude and f not in not_comparable and f in null.index]
    n_win = int(null.shape[1])
    empty = pd.Series(dtype=np.float64)
    # maxstat: a p-value of (1 + 0) / (1 + windows) must be able to reach the level
    needed = MIN_NULL_WINDOWS if method == METHOD_BH else max(MIN_NULL_WINDOWS, int(np.ceil(1.0 / level - 1e-9)) - 1)
    if n_win < needed or not counted:
        why = (f"not judged: {n_win} in-sample windows (< {needed} needed at level {level:g})" if n_win < needed
               else "not judged: no comparable feature")
        return DriftDecision(False, method, level, None, None, empty, empty, [], counted, not_comparable, n_win,
                             why, judged=False)
    obs = observed[counted].to_numpy(dtype=np.float64)
    nul = null.loc[counted].to_numpy(dtype=np.float64)
    obs = np.where(np.isfinite(obs), obs, np.inf)
    nul = np.where(np.isfinite(nul), nul, np.nan)
    valid = np.isfinite(nul)
    n_valid = valid.sum(axis=1)
    p = (1.0 + ((nul >= obs[:, None]) & valid).sum(axis=1)) / (1.0 + n_valid)
    log_null = np.log(np.maximum(nul, 0.0) + LOG_EPS)
    mu = np.nanmean(log_null, axis=1)
    sd = np.maximum(np.nanstd(log_null, axis=1), SD_FLOOR)
    z = (np.log(np.maximum(obs, 0.0) + LOG_EPS) - mu) / sd
    p_s, z_s = pd.Series(p, index=counted), pd.Series(z, index=counted)
    if method == METHOD_MAXSTAT:
        null_max = np.nanmax(np.where(valid, (log_null - mu[:, None]) / sd[:, None], -np.inf), axis=0)
        stat = float(np.max(z))
        pval = float((1.0 + np.sum(null_max >= stat)) / (1.0 + n_win))
        alarm = pval <= level
        top = z_s.sort_values(ascending=False)
        rejected = [f for f in top.index if top[f] >= np.quantile(null_max, 1 - level)] if alarm else []
        reason = (f"max standardised log-PSI {stat:.2f} ({top.index[0]}); in-sample p = {pval:.4f} over {n_win} "
                  f"windows ({'<=' if alarm else '>'} {level:g})")
        return DriftDecision(alarm, method, level, pval, stat, p_s, z_s, rejected, counted, not_comparable, n_win,
                             reason, details={"null_max_quantile": float(np.quantile(null_max, 1 - level))})
    order = np.argsort(p, kind="stable")
    m = len(p)
    below = p[order] <= level * np.arange(1, m + 1) / m
    k = int(np.max(np.nonzero(below)[0]) + 1) if below.any() else 0
    rejected = [counted[i] for i in order[:k]]
    alarm = k >= min_features
    reason = (f"Benjamini-Hochberg at FDR {level:g}: {k} of {m} features rejected "
              f"({'>=' if alarm else '<'} {min_features}); smallest p = {float(p.min()):.4f} over {n_win} windows")
    return DriftDecision(alarm, method, level, float(p.min()), float(k), p_s, z_s, rejected, counted,
                         not_comparable, n_win, reason)
