"""The words every layer shares, defined once: classes, signal directions, the trading year, time.

* Classes (the model's output order): DOWN = 0, FLAT = 1, UP = 2, by the forward return over
  the horizon against the +- thresholds.
* Signals (what a trading system acts on): LONG, SHORT, or NONE (no trade, always with a reason).
* Trading days per year: 252 (annualising Sharpe ratios and volatilities).
* Time: timezone-aware UTC, ISO-8601 with seconds, for every timestamp this product writes.
"""

from __future__ import annotations

from datetime import datetime, timezone

DOWN, FLAT, UP = 0, 1, 2
CLASS_NAMES: tuple[str, str, str] = ("DOWN", "FLAT", "UP")
CLASS_LABELS: dict[int, str] = dict(enumerate(CLASS_NAMES))

SIGNAL_LONG, SIGNAL_SHORT, SIGNAL_NONE = "LONG", "SHORT", "NONE"
SIGNALS: tuple[str, str, str] = (SIGNAL_LONG, SIGNAL_SHORT, SIGNAL_NONE)

# Why a signal is NONE (a trade has no reason). The prediction guard adds two more:
# ``insufficient_history`` and ``missing_features: a, b, c`` (signals/serving/guard.py).
REASON_PREDICTED_FLAT = "predicted_flat"  # the top class is FLAT
REASON_BELOW_THRESHOLD = "below_threshold"  # UP or DOWN, but confidence does not exceed the threshold

TRADING_DAYS_PER_YEAR = 252


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def utc_now_iso() -> str:
    """Now, UTC, ``YYYY-MM-DDTHH:MM:SS+00:00``."""
    return utc_now().isoformat(timespec="seconds")
