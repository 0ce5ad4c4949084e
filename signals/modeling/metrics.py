"""Classification and calibration metrics on (n, 3) probabilities in [DOWN, FLAT, UP] order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from signals.core.vocabulary import CLASS_NAMES  # noqa: F401 - re-exported for plots
from signals.modeling.calibration import normalize_proba

if TYPE_CHECKING:
    import pandas as pd



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
# Baselines and the one evaluation report used by walk-forward windows, the pooled OOS and the
# hold-out (Sharpe is a trading figure: it comes from the backtest engine, see signals.trading.backtest)
# ---------------------------------------------------------------------------------------------
def confusion_matrix(y: np.ndarray, pred: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_prior_proba(y_train: np.ndarray, n_rows: int) -> np.ndarray:
    """The constant prediction 'class frequencies of the training rows' for ``n_rows`` rows."""
    prior = np.asarray(class_distribution(y_train), dtype=np.float64)
    return normalize_proba(np.tile(prior, (n_rows, 1)))


def confident_rows(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Rows whose top probability exceeds ``threshold`` (the rows that would trade): how many,
    their mean confidence and how often the top class came true. A calibrated model has the
    two close; an over-confident one promises more than it delivers exactly where it trades."""
    p = normalize_proba(proba)
    conf = p.max(axis=1)
    hit = p.argmax(axis=1) == np.asarray(y)
    mask = conf > threshold
    n = int(mask.sum())
    return {
        "confident_rows": float(n),
        "confident_mean_confidence": float(conf[mask].mean()) if n else float("nan"),
        "confident_accuracy": float(hit[mask].mean()) if n else float("nan"),
    }


def evaluation_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    *,
    raw: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    dates: np.ndarray | None = None,
    forward_returns: np.ndarray | None = None,
    confidence_threshold: float | None = None,
    interval: bool = False,
    block: int = 5,
    seed: int = 0,
    prefix: str = "",
) -> dict[str, float]:
    """Out-of-sample metrics with their baselines on the same rows (one definition per number).

    Always: ``log_loss``, ``accuracy``, ``brier``, ``ece``, ``n_rows`` and
    ``baseline_always_up_accuracy``. With ``raw`` (the booster before calibration): the same four
    as ``*_raw``. With ``prior`` (per-row class-prior probabilities; or ``y_train`` to use its
    class frequencies): ``baseline_prior_log_loss``, ``baseline_prior_ece`` (the prior's own ECE:
    on a short period the realised class mix alone moves ECE) and ``skill_vs_prior`` = prior log-loss -
    model log-loss (> 0: the model knows more than the class mix), and with ``interval`` and
    ``dates`` its 90% date-blocked bootstrap interval ``skill_vs_prior_lo`` / ``_hi``. With
    ``dates`` and ``forward_returns``: IC, rank IC, ICIR of ``p_up - p_down``
    (:func:`information_coefficients`). With ``confidence_threshold``: :func:`confident_rows`.
    """
    y = np.asarray(y, dtype=np.int64)
    out: dict[str, float] = {
        "log_loss": log_loss(y, proba),
        "accuracy": accuracy(y, proba),
        "brier": brier_score(y, proba),
        "ece": expected_calibration_error(y, proba),
        "n_rows": float(len(y)),
        "baseline_always_up_accuracy": float(np.mean(y == 2)),
    }
    if raw is not None:
        out.update(log_loss_raw=log_loss(y, raw), accuracy_raw=accuracy(y, raw), brier_raw=brier_score(y, raw),
                   ece_raw=expected_calibration_error(y, raw))
    if prior is None and y_train is not None:
        prior = class_prior_proba(y_train, len(y))
    if prior is not None:
        out["baseline_prior_log_loss"] = log_loss(y, prior)
        out["baseline_prior_ece"] = expected_calibration_error(y, prior)
        out["skill_vs_prior"] = out["baseline_prior_log_loss"] - out["log_loss"]
        if interval and dates is not None and len(y):
            diff = per_row_log_loss(y, prior) - per_row_log_loss(y, proba)
            lo, hi = block_bootstrap_interval(diff, dates, block=block, seed=seed)
            out["skill_vs_prior_lo"], out["skill_vs_prior_hi"] = lo, hi
    if dates is not None and forward_returns is not None and len(y):
        out.update(information_coefficients(dates, signal_score(normalize_proba(proba)), forward_returns))
    if confidence_threshold is not None:
        out.update(confident_rows(y, proba, confidence_threshold))
    return {f"{prefix}{k}": float(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Uncertainty of a mean over overlapping, same-day-correlated rows
# ---------------------------------------------------------------------------------------------
def date_blocks(dates: np.ndarray, block: int) -> np.ndarray:
    """Block id per row: the sorted distinct dates cut into runs of ``block`` consecutive dates.

    Rows of one date are correlated across symbols and ``h``-day labels overlap for ``h``
    dates, so a block of ``h`` dates is the smallest unit that is roughly independent.
    """
    codes, _ = _factorize_dates(dates)
    return codes // max(1, int(block))


def _factorize_dates(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(dates, dtype="datetime64[ns]")
    uniques, codes = np.unique(d, return_inverse=True)
    return codes.astype(np.int64), uniques


def blocked_mean_se(values: np.ndarray, dates: np.ndarray, block: int = 5) -> tuple[float, float]:
    """(mean, standard error) of ``values`` treating blocks of ``block`` dates as the units.

    Ratio estimator over blocks: mean = sum / count, SE from the spread of the block sums around
    ``mean * block count``. 0.0 SE when there are fewer than two blocks.
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    blocks = date_blocks(dates, block)
    sums = np.bincount(blocks, weights=v)
    counts = np.bincount(blocks).astype(np.float64)
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    mean = float(sums.sum() / counts.sum())
    b = len(sums)
    if b < 2:
        return mean, 0.0
    resid = sums - mean * counts
    se = float(np.sqrt(np.sum(resid**2) * b / (b - 1)) / counts.sum())
    return mean, se


def block_bootstrap_interval(
    values: np.ndarray, dates: np.ndarray, *, block: int = 5, level: float = 0.9, n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` by a circular block bootstrap over dates.

    Whole dates are resampled in runs of ``block`` consecutive dates (the same scheme as the
    promotion gate), so the interval is not narrowed by same-day or overlapping-label rows.
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    codes, _ = _factorize_dates(dates)
    sums = np.bincount(codes, weights=v)
    counts = np.bincount(codes).astype(np.float64)
    n = len(sums)
    block = max(1, min(int(block), n))
    n_blocks = -(-n // block)
    rng = np.random.default_rng(seed)
    offsets = np.arange(block)
    means = np.empty(n_resamples)
    chunk = max(1, min(n_resamples, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_resamples:
        m = min(chunk, n_resamples - done)
        starts = rng.integers(0, n, size=(m, n_blocks))
        idx = ((starts[:, :, None] + offsets) % n).reshape(m, -1)[:, :n]
        means[done:done + m] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
        done += m
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# Information coefficient of the score p_up - p_down against the forward return
# ---------------------------------------------------------------------------------------------
def signal_score(proba: np.ndarray) -> np.ndarray:
    """The model's directional score: p_up - p_down (what IC is measured on)."""
    p = np.asarray(proba, dtype=np.float64)
    return p[:, 2] - p[:, 0]


def information_coefficients(
    dates: np.ndarray, score: np.ndarray, forward_returns: np.ndarray, *, min_names: int = 3
) -> dict[str, float]:
    """IC the way qlib reports it, plus the pooled correlation.

    Per date with at least ``min_names`` symbols and some spread: Pearson (IC) and Spearman
    (rank IC) correlation across symbols of ``score`` with the realised forward return.
    ``ic`` / ``rank_ic`` are their means over dates, ``icir`` / ``rank_icir`` mean / std
    (ddof=1) of the daily series; ``ic_pooled`` is the Pearson correlation over all rows
    (time series and cross-section together, meaningful for small universes); ``ic_days``
    counts the dates used.
    """

    frame = pd.DataFrame({"date": np.asarray(dates, dtype="datetime64[ns]"),
                          "s": np.asarray(score, dtype=np.float64),
                          "r": np.asarray(forward_returns, dtype=np.float64)}).dropna()
    out = {"ic": float("nan"), "rank_ic": float("nan"), "icir": float("nan"), "rank_icir": float("nan"),
           "ic_pooled": float("nan"), "ic_days": 0.0}
    if len(frame) >= 3 and frame["s"].std() > 0 and frame["r"].std() > 0:
        out["ic_pooled"] = float(np.corrcoef(frame["s"], frame["r"])[0, 1])
    frame = frame[frame.groupby("date")["s"].transform("size") >= min_names]
    if frame.empty:
        return out
    ranked = frame.assign(s=frame.groupby("date")["s"].rank(), r=frame.groupby("date")["r"].rank())
    daily = _daily_corr(frame)
    daily_rank = _daily_corr(ranked)
    for key, ir_key, series in (("ic", "icir", daily), ("rank_ic", "rank_icir", daily_rank)):
        series = series.dropna()
        if len(series):
            out[key] = float(series.mean())
            sd = float(series.std(ddof=1)) if len(series) > 1 else float("nan")
            out[ir_key] = float(series.mean() / sd) if np.isfinite(sd) and sd > 0 else float("nan")
    out["ic_days"] = float(daily.notna().sum())
    return out


def _daily_corr(frame: "pd.DataFrame") -> "pd.Series":
    """Per-date Pearson correlation of columns s and r (NaN where either has no spread)."""

    g = frame.groupby("date")
    ms, mr = g["s"].transform("mean").to_numpy(), g["r"].transform("mean").to_numpy()
    ds, dr = frame["s"].to_numpy() - ms, frame["r"].to_numpy() - mr
    parts = pd.DataFrame({"date": frame["date"].to_numpy(), "sr": ds * dr, "ss": ds * ds, "rr": dr * dr})
    agg = parts.groupby("date")[["sr", "ss", "rr"]].sum()
    den = np.sqrt(agg["ss"] * agg["rr"])
    return (agg["sr"] / den.where(den > 1e-15)).rename("ic")
