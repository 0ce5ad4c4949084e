"""Classification and calibration metrics on (n, 3) probabilities in [DOWN, FLAT, UP] order."""

from __future__ import annotations

import numpy as np

from signals.ml.calibration import normalize_proba

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
