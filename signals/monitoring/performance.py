"""Live performance judged against the champion's own walk-forward out-of-sample record.

Why: a fixed accuracy threshold (0.50) means nothing for a 3-class model whose majority class
is 42 %: it is never reached, so the check either always fires or is switched off. The right
question is whether the recent resolved predictions are worse than this model's honest
out-of-sample record: the walk-forward OOS predictions of the tune run the champion was built
from (``oos_predictions.parquet``; raw probabilities of models that never saw those rows).

The test: the rolling statistic of the newest ``window`` resolved predictions (accuracy, and
log-loss of the served probabilities) is placed in the distribution of the same statistic
over blocks of ``window`` consecutive OOS rows (by date, then symbol; blocks start every
``window // 4`` rows). One-sided empirical p-values: ``(1 + #blocks at least as bad) / (1 +
#blocks)``; the performance check fires when either is <= ``level``. Consecutive rows share
dates and 5-day labels overlap, so blocks of consecutive rows keep that dependence, as the
live window has it.

Label-free estimate (CBPE, as NannyML calls it): the expected accuracy of calibrated
probabilities is the mean of their maximum. It needs no outcome, so it is available at once,
but it is only valid while the model stays calibrated: under drift the probabilities
themselves go wrong. It is shown next to the realised accuracy, never used alone.

Caveat: the OOS record holds *raw* booster probabilities while the served model is
calibrated; accuracy (argmax) hardly changes, log-loss of the live window is if anything
better than the raw record's, so the log-loss test is conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PROBS = ("p_down", "p_flat", "p_up")
#: fewer OOS blocks than this: the record is too short to judge
MIN_BLOCKS = 20
EPS = 1e-15


def row_log_loss(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.clip(probs[np.arange(len(y)), y.astype(int)], EPS, 1.0)
    return -np.log(p)


def block_stats(oos: pd.DataFrame, window: int, step: int | None = None) -> pd.DataFrame:
    """Accuracy and log-loss of blocks of ``window`` consecutive OOS rows (columns y, p_*)."""
    o = oos.sort_values(["date", "symbol"], kind="stable") if {"date", "symbol"} <= set(oos.columns) else oos
    probs = o[list(PROBS)].to_numpy(dtype=np.float64)
    y = o["y"].to_numpy()
    ok = np.isfinite(probs).all(axis=1) & np.isfinite(y.astype(np.float64))
    probs, y = probs[ok], y[ok].astype(int)
    if len(y) < window:
        return pd.DataFrame(columns=["accuracy", "log_loss"])
    correct = np.concatenate([[0.0], np.cumsum(probs.argmax(axis=1) == y)])
    ll = np.concatenate([[0.0], np.cumsum(row_log_loss(probs, y))])
    starts = np.arange(0, len(y) - window + 1, max(1, step or window // 4))
    return pd.DataFrame({
        "accuracy": (correct[starts + window] - correct[starts]) / window,
        "log_loss": (ll[starts + window] - ll[starts]) / window,
    })


@dataclass
class PerformanceResult:
    n: int  # resolved predictions in the rolling window (<= window)
    window: int
    level: float
    accuracy: float | None
    log_loss: float | None
    expected_accuracy: float | None  # CBPE: mean max calibrated probability (valid while calibrated)
    n_blocks: int = 0
    accuracy_percentile: float | None = None  # share (0..100) of OOS blocks with a lower accuracy
    log_loss_percentile: float | None = None  # share of OOS blocks with a lower log-loss
    p_accuracy: float | None = None  # one-sided: blocks at least as inaccurate
    p_log_loss: float | None = None  # one-sided: blocks with at least this log-loss
    oos_accuracy: float | None = None  # the record's median block
    oos_log_loss: float | None = None

    @property
    def sufficient(self) -> bool:
        return self.n >= self.window

    @property
    def judged(self) -> bool:
        return self.sufficient and self.n_blocks >= MIN_BLOCKS and self.p_accuracy is not None

    @property
    def below(self) -> bool:
        """Worse than the OOS record at ``level`` (accuracy lower or log-loss higher)."""
        return self.judged and (self.p_accuracy <= self.level or self.p_log_loss <= self.level)

    def describe(self) -> str:
        if self.accuracy is None:
            return "no resolved predictions"
        ll = "" if self.log_loss is None else f", log-loss {self.log_loss:.3f}"
        txt = f"accuracy {self.accuracy:.3f}{ll} over {self.n} resolved"
        if self.expected_accuracy is not None:
            txt += f"; expected accuracy {self.expected_accuracy:.3f} (CBPE, valid only while calibrated)"
        if not self.sufficient:
            return txt + f" (window {self.window} not full: not judged)"
        if self.n_blocks < MIN_BLOCKS:
            return txt + f" (OOS record has {self.n_blocks} blocks: not judged)"
        txt += f"; OOS record: accuracy percentile {self.accuracy_percentile:.0f} (p {self.p_accuracy:.3f})"
        if self.log_loss_percentile is not None:
            txt += f", log-loss percentile {self.log_loss_percentile:.0f} (p {self.p_log_loss:.3f})"
        return txt + f" over {self.n_blocks} blocks"


def performance_check(resolved: pd.DataFrame, oos: pd.DataFrame | None, *, window: int, level: float = 0.01
                      ) -> PerformanceResult:
    """The newest ``window`` resolved predictions vs the OOS record (see the module docstring)."""
    if resolved is None or resolved.empty:
        return PerformanceResult(0, window, level, None, None, None)
    r = resolved.sort_values(["date", "symbol"], kind="stable").tail(window)
    acc = float(np.mean(r["correct"].astype(bool)))
    ll = exp_acc = None
    if set(PROBS) <= set(r.columns) and "actual_class" in r.columns:
        probs = r[list(PROBS)].to_numpy(dtype=np.float64)
        ll = float(np.mean(row_log_loss(probs, r["actual_class"].to_numpy())))
        exp_acc = float(np.mean(probs.max(axis=1)))
    out = PerformanceResult(len(r), window, level, acc, ll, exp_acc)
    if oos is None or oos.empty:
        return out
    blocks = block_stats(oos, window)
    out.n_blocks = len(blocks)
    if not len(blocks):
        return out
    a, b = blocks["accuracy"].to_numpy(), blocks["log_loss"].to_numpy()
    out.oos_accuracy, out.oos_log_loss = float(np.median(a)), float(np.median(b))
    out.accuracy_percentile = float(100.0 * np.mean(a < acc))
    out.p_accuracy = float((1 + np.sum(a <= acc)) / (1 + len(a)))
    if ll is not None:
        out.log_loss_percentile = float(100.0 * np.mean(b < ll))
        out.p_log_loss = float((1 + np.sum(b >= ll)) / (1 + len(b)))
    else:
        out.p_log_loss = 1.0
    return out
