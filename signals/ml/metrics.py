"""Classification and calibration metrics on (n, 3) probabilities in [DOWN, FLAT, UP] order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from signals.ml.calibration import normalize_proba

if TYPE_CHECKING:
    import pandas as pd

CLASS_NAMES = ("DOWN", "FLAT", "UP")


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = normalize_proba(proba)
    y = np.asarray(y, dtype=np.int64)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def per_row_log_loss(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per-row negative log-likelihood; the promotion gate pairs these across models."""
    p = normalize_proba(proba)
    y = np.asarray(y, dtype=np.int64)
    return -np.log(p[np.arange(len(y)), y])


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == np.asarray(y)))


def brier_score(y: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass Brier score: mean squared distance to the one-hot outcome (0 is perfect, 2 worst)."""
    p = normalize_proba(proba)
    onehot = np.eye(3)[np.asarray(y, dtype=np.int64)]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def reliability_table(y: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Top-label reliability: per confidence bin, mean confidence, accuracy and count."""
    p = normalize_proba(proba)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(y)).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": acc, "count": count}


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: count-weighted |accuracy - confidence| over equal-width confidence bins."""
    t = reliability_table(y, proba, n_bins)
    mask = t["count"] > 0
    return float(np.sum(t["count"][mask] * np.abs(t["accuracy"][mask] - t["confidence"][mask])) / t["count"].sum())


def class_distribution(y: np.ndarray) -> list[float]:
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=3).astype(float)
    return (counts / max(counts.sum(), 1.0)).tolist()


# ---------------------------------------------------------------------------------------------
# Signal returns, Sharpe ratio and baselines (used by walk-forward and the train hold-out)
# ---------------------------------------------------------------------------------------------
TRADING_DAYS_PER_YEAR = 252


def confusion_matrix(y: np.ndarray, pred: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_prior_proba(y_train: np.ndarray, n_rows: int) -> np.ndarray:
    """The constant prediction 'class frequencies of the training rows' for ``n_rows`` rows."""
    prior = np.asarray(class_distribution(y_train), dtype=np.float64)
    return normalize_proba(np.tile(prior, (n_rows, 1)))


def signal_positions(proba: np.ndarray) -> np.ndarray:
    """+1 where UP is the most likely class, -1 where DOWN is, 0 for FLAT."""
    cls = np.argmax(np.asarray(proba), axis=1)
    return np.where(cls == 2, 1.0, np.where(cls == 0, -1.0, 0.0))


def period_returns(
    dates: np.ndarray, positions: np.ndarray, forward_returns: np.ndarray, horizon: int, offset: int = 0
) -> "pd.Series":
    """Non-overlapping portfolio returns of holding ``position * forward_return`` for ``horizon`` days.

    The distinct dates are sorted and every ``horizon``-th one is kept, starting at ``offset``; on
    each kept date the portfolio return is the equal-weighted mean over the symbols present of
    ``position * forward_return`` (a FLAT position contributes 0). Consecutive kept dates are
    ``horizon`` trading days apart, so the periods do not overlap.
    """
    import pandas as pd

    frame = pd.DataFrame(
        {"date": np.asarray(dates, dtype="datetime64[ns]"),
         "r": np.asarray(positions, dtype=np.float64) * np.asarray(forward_returns, dtype=np.float64)}
    ).dropna()
    per_date = frame.groupby("date", sort=True)["r"].mean()
    return per_date.iloc[offset::horizon]


def sharpe_ratio(
    dates: np.ndarray,
    positions: np.ndarray,
    forward_returns: np.ndarray,
    horizon: int,
    periods_per_year: float = TRADING_DAYS_PER_YEAR,
) -> float:
    """Annualised Sharpe ratio of non-overlapping ``horizon``-day signal returns (no costs, rf = 0).

    For each of the ``horizon`` possible start offsets the non-overlapping series of
    :func:`period_returns` gives ``mean / std * sqrt(periods_per_year / horizon)``; the result is
    the average over the offsets, so it does not depend on an arbitrary first date. 0.0 when the
    returns have no variance (e.g. never in the market) or there are fewer than two periods.
    """
    values = []
    for offset in range(max(1, int(horizon))):
        r = period_returns(dates, positions, forward_returns, horizon, offset).to_numpy()
        if len(r) < 2:
            continue
        sd = float(np.std(r, ddof=1))
        values.append(0.0 if sd <= 1e-12 else float(np.mean(r)) / sd * np.sqrt(periods_per_year / horizon))
    return float(np.mean(values)) if values else 0.0


def evaluation_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    *,
    dates: np.ndarray | None = None,
    forward_returns: np.ndarray | None = None,
    horizon: int | None = None,
    y_train: np.ndarray | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """Out-of-sample metrics plus the baselines computed on the same rows.

    ``log_loss``, ``accuracy``, ``brier``, ``ece``; with ``y_train``: ``baseline_prior_log_loss``
    (class priors of the training rows) and ``baseline_always_up_accuracy``; with dates, forward
    returns and horizon: ``sharpe`` of the signal and ``baseline_buy_hold_sharpe``.
    """
    y = np.asarray(y, dtype=np.int64)
    out = {
        "log_loss": log_loss(y, proba),
        "accuracy": accuracy(y, proba),
        "brier": brier_score(y, proba),
        "ece": expected_calibration_error(y, proba),
        "n_rows": float(len(y)),
        "baseline_always_up_accuracy": float(np.mean(y == 2)),
    }
    if y_train is not None:
        out["baseline_prior_log_loss"] = log_loss(y, class_prior_proba(y_train, len(y)))
    if dates is not None and forward_returns is not None and horizon:
        out["sharpe"] = sharpe_ratio(dates, signal_positions(proba), forward_returns, horizon)
        out["baseline_buy_hold_sharpe"] = sharpe_ratio(dates, np.ones(len(y)), forward_returns, horizon)
    return {f"{prefix}{k}": float(v) for k, v in out.items()}
