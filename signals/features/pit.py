"""Point-in-time helpers shared by the event-driven calculators.

**Availability convention (used by every calculator):** an event whose availability date is
``D`` (fundamentals and insider trades: ``filed_at``; short interest: ``published_at``) is
usable from the first bar *strictly after* ``D``, never for the bar of ``D`` itself.

Why strictly after: the availability columns are dates, not timestamps. Most 10-Q/10-K and
Form 4 filings reach EDGAR after the 16:00 close and short interest is published after the
close too, while the features of bar ``D`` are consumed at the close of ``D``. Letting a
filing stamped ``D`` into bar ``D`` would therefore leak information in the common case;
waiting one bar costs at most a day of freshness. Joins never use period end, transaction
date or settlement date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400_000_000_000


def to_ns(values: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Naive datetimes as int64 nanoseconds (the unit every search below uses)."""
    return np.asarray(values, dtype="datetime64[ns]").view("int64")


def last_before(event_ns: np.ndarray, bar_ns: np.ndarray) -> np.ndarray:
    """Index of the last event available *strictly before* each bar (-1 if none).

    ``event_ns`` must be sorted ascending.
    """
    return np.searchsorted(event_ns, bar_ns, side="left") - 1


def window_bounds(event_ns: np.ndarray, bar_ns: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-open index ranges ``[lo, hi)`` of events with ``bar - days <= event < bar``."""
    hi = np.searchsorted(event_ns, bar_ns, side="left")
    lo = np.searchsorted(event_ns, bar_ns - days * NS_PER_DAY, side="left")
    return lo, hi


def asof(
    event_ns: np.ndarray,
    values: np.ndarray,
    bar_ns: np.ndarray,
    max_age_days: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Values of the last event available strictly before each bar.

    ``values`` is ``(n_events, k)``; returns ``(n_bars, k)`` values (NaN where nothing was
    available yet or the latest event is older than ``max_age_days``) and the event index
    used per bar (-1 where none).
    """
    if len(event_ns) == 0:
        return np.full((len(bar_ns), values.shape[1]), np.nan), np.full(len(bar_ns), -1)
    idx = last_before(event_ns, bar_ns)
    if max_age_days is not None:
        idx[(bar_ns - event_ns[np.maximum(idx, 0)]) > max_age_days * NS_PER_DAY] = -1
    # Row -1 of the padded table is all NaN, so "nothing available" needs no masked write.
    padded = np.empty((len(values) + 1, values.shape[1]))
    padded[:-1] = values
    padded[-1] = np.nan
    return padded.take(idx, axis=0), idx


def current_record_positions(avail_ns: np.ndarray, event_ns: np.ndarray) -> np.ndarray:
    """Positions of the records that were current when they became available, in availability order.

    Sorted by availability, a record is kept only if its event date (period end, settlement
    date) is not older than anything already available: a restatement of the latest period
    replaces it from its own availability date, while a late restatement of an *older* period
    (after a newer period was filed) is ignored instead of rolling the data back in time.
    On one availability date the newest event wins, so availability dates are unique.
    """
    if len(avail_ns) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((event_ns, avail_ns))
    ev = event_ns[order]
    order = order[ev >= np.maximum.accumulate(ev)]
    av = avail_ns[order]
    last_of_day = np.r_[av[1:] != av[:-1], True]
    return order[last_of_day]

