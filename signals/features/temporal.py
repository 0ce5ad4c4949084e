"""Calendar features. They depend on the bar's date alone, so they are causal by construction.

``is_month_end`` marks the month's last weekday by the calendar rule, not "the last bar of
the month in the data": knowing that a bar is the last one of its month would require the
next bar's date, which is lookahead (and would change when data is truncated).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signals.features.spec import category_frame


def temporal_columns(dates: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Day of week (Mon=1), month, quarter, day of year and a month-end flag per bar date."""
    days = np.asarray(dates, dtype="datetime64[D]")
    months = days.astype("datetime64[M]")
    month = months.astype(np.int64) % 12 + 1
    last_weekday = np.busday_offset((months + 1).astype("datetime64[D]") - 1, 0, roll="backward")
    return {
        "day_of_week": (days.astype(np.int64) + 3) % 7 + 1,  # 1970-01-01 was a Thursday
        "month": month,
        "quarter": (month - 1) // 3 + 1,
        "day_of_year": (days - days.astype("datetime64[Y]")).astype(np.int64) + 1,
        "is_month_end": (days == last_weekday).astype(np.float64),
    }


def compute_temporal(dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Calendar features of each bar date."""
    return category_frame("temporal", temporal_columns(dates), dates)
