"""Suspicious but valid data: what ``signals data check`` warns about, and the features and train
runs log (``data_warnings.json``).

Validation (:mod:`signals.data.validation`) rejects what cannot be right. These checks look for
what is valid but probably wrong, and would quietly teach the model nonsense: an unadjusted
split, a close outside the day's range, a one-day spike that reverts, a volume column of zeros,
a blank sector, a benchmark that never overlaps the bars. Each finding is a
:class:`DataWarning` naming the check, the symbol, the first date and how many rows; the
functions here return them and never print, so the CLI, the logs and MLflow render them alike.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pandas as pd

from signals.data.validation import BarReport

if TYPE_CHECKING:
    from signals.data.base import DataProvider

log = logging.getLogger(__name__)

#: a one-day close move beyond this (either way) without an adj_close column: a likely unadjusted split
SPLIT_MOVE = 0.40
#: a one-day move by this factor (up or down) that the next day takes back: a likely bad print
SPIKE_FACTOR = 5.0
#: relative slack when comparing open/close to the day's low/high (float rounding of adjusted prices)
RANGE_TOLERANCE = 1e-6

CHECKS = {
    "unadjusted_split": f"one-day move beyond +-{SPLIT_MOVE:.0%} and no adj_close column (a split not adjusted for?)",
    "price_outside_range": "open or close outside the day's [low, high]",
    "reverting_spike": f"one-day move of {SPIKE_FACTOR:g}x or more that reverts the next day (a bad print?)",
    "zero_volume": "volume is zero on every row",
    "blank_sector": "no sector in the universe (sector features are NaN)",
    "market_no_overlap": "market series does not overlap the bars' dates (its features are NaN)",
}


@dataclass(frozen=True)
class DataWarning:
    """One suspicious finding: which check, where (symbol or market series), the first date, how many rows."""

    check: str
    symbol: str
    first_date: str | None
    count: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        when = f" from {self.first_date}" if self.first_date else ""
        rows = f" ({self.count} row{'s' if self.count != 1 else ''})" if self.count else ""
        return f"{self.symbol}: {self.check}{when}{rows}: {self.detail}"


def _day(ts: Any) -> str:
    return pd.Timestamp(ts).date().isoformat()


def bar_warnings(symbol: str, bars: pd.DataFrame, report: BarReport, *, adjusted: bool = False) -> list[DataWarning]:
    """The per-symbol checks on validated (adjusted) bars; ``report`` says whether adj_close existed,
    ``adjusted`` that the source's closes are adjusted anyway (no split check then)."""
    out: list[DataWarning] = []
    if bars.empty:
        return out
    close = bars["close"].to_numpy(dtype=np.float64)
    dates = bars.index
    ratio = close[1:] / close[:-1]  # move into day t+1
    spike_days = np.zeros(len(close), dtype=bool)
    if len(close) >= 3:
        up, back = ratio[:-1], ratio[1:]
        big = np.abs(np.log(up)) >= np.log(SPIKE_FACTOR)
        reverts = np.abs(np.log(up * back)) <= 0.5 * np.abs(np.log(up))  # day t+2 lands near day t
        hit = np.flatnonzero(big & reverts) + 1  # the spiked day
        if len(hit):
            spike_days[hit] = True
            spike_days[np.minimum(hit + 1, len(close) - 1)] = True
            worst = float(np.max(np.abs(np.log(up[hit - 1]))))
            out.append(DataWarning("reverting_spike", symbol, _day(dates[hit[0]]), len(hit),
                                   f"{CHECKS['reverting_spike']}; largest {np.exp(worst):.0f}x"))
    if not (report.has_adj_close or adjusted) and len(close) >= 2:
        jump = (np.abs(ratio - 1.0) > SPLIT_MOVE) & ~spike_days[1:]
        if jump.any():
            first = int(np.flatnonzero(jump)[0])
            out.append(DataWarning("unadjusted_split", symbol, _day(dates[first + 1]), int(jump.sum()),
                                   f"{CHECKS['unadjusted_split']}; first move {ratio[first] - 1:+.0%}"))
    if not report.close_only:
        low = bars["low"].to_numpy(dtype=np.float64) * (1 - RANGE_TOLERANCE)
        high = bars["high"].to_numpy(dtype=np.float64) * (1 + RANGE_TOLERANCE)
        opens = bars["open"].to_numpy(dtype=np.float64)
        outside = (close < low) | (close > high) | (opens < low) | (opens > high)
        if outside.any():
            out.append(DataWarning("price_outside_range", symbol, _day(dates[int(np.flatnonzero(outside)[0])]),
                                   int(outside.sum()), CHECKS["price_outside_range"]))
        if not (bars["volume"].to_numpy() != 0).any():
            out.append(DataWarning("zero_volume", symbol, _day(dates[0]), len(bars), CHECKS["zero_volume"]))
    return out


def universe_warnings(universe: pd.DataFrame, symbols: Iterable[str]) -> list[DataWarning]:
    """Symbols whose sector is blank (or missing) in the universe."""
    uni = universe.set_index("symbol")
    out = []
    for sym in symbols:
        sector = uni.at[sym, "sector"] if sym in uni.index else None
        if sector is None or pd.isna(sector) or not str(sector).strip():
            out.append(DataWarning("blank_sector", sym, None, 0, CHECKS["blank_sector"]))
    return out


def market_warnings(markets: Mapping[str, pd.DataFrame | None], first: Any, last: Any) -> list[DataWarning]:
    """Market series (present but) entirely outside the bars' span [first, last]."""
    out = []
    if first is None or last is None:
        return out
    for name, bars in sorted(markets.items()):
        if bars is None or bars.empty:
            continue  # absence is reported as unavailable features, not as suspicious data
        lo, hi = bars.index[0], bars.index[-1]
        if hi < first or lo > last:
            out.append(DataWarning(
                "market_no_overlap", name, _day(lo), len(bars),
                f"{CHECKS['market_no_overlap']}: it covers {_day(lo)} to {_day(hi)}, the bars {_day(first)} to {_day(last)}",
            ))
    return out


def suspicious_data(
    bars: Mapping[str, tuple[pd.DataFrame, BarReport]],
    universe: pd.DataFrame,
    markets: Mapping[str, pd.DataFrame | None],
    *,
    adjusted: bool = False,
) -> list[DataWarning]:
    """Every warning for these symbols' validated bars, their universe rows and the market series
    (``adjusted``: the source's closes are split-adjusted already)."""
    out: list[DataWarning] = []
    for sym, (frame, report) in bars.items():
        out.extend(bar_warnings(sym, frame, report, adjusted=adjusted))
    out.extend(universe_warnings(universe, bars))
    reports = [r for _, r in bars.values() if r.first is not None]
    first = min((r.first for r in reports), default=None)
    last = max((r.last for r in reports), default=None)
    out.extend(market_warnings(markets, first, last))
    return out


def market_names(universe: pd.DataFrame, symbols: Iterable[str]) -> list[str]:
    """SPY, VIX and the symbols' sector ETFs: the market series the features use."""
    uni = universe.set_index("symbol")
    etfs = {str(uni.at[s, "sector_etf"]).strip().upper() for s in symbols if s in uni.index}
    return sorted({"SPY", "VIX", *etfs} - {""})


def provider_warnings(provider: "DataProvider", symbols: Iterable[str] | None = None) -> list[DataWarning]:
    """:func:`suspicious_data` on what ``provider`` holds for ``symbols`` (all: the universe)."""
    syms = provider.resolve_symbols(list(symbols) if symbols is not None else None)
    universe = provider.universe()
    bars = {s: provider.bars_with_report(s) for s in syms}
    markets = {m: provider.market_bars(m) for m in market_names(universe, syms)}
    return suspicious_data(bars, universe, markets, adjusted=provider.adjusted_closes)


def logged_data_warnings(provider: "DataProvider", symbols: Iterable[str] | None = None) -> list[DataWarning]:
    """:func:`provider_warnings`, each also logged as a warning line (what the features and train runs do)."""
    found = provider_warnings(provider, symbols)
    for w in found:
        log.warning("suspicious data: %s", w)
    return found
