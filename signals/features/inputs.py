"""What every symbol's features are computed from besides its own bars, prepared once per
request, and the fingerprint that keys a symbol's cache entry.

The shared inputs (benchmark bars, each event table grouped by symbol, sector medians and
the digests of all of them) are plain data: they pickle in milliseconds, so a chunk task
(:mod:`signals.features.build`) carries them to whichever process runs it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

from signals.core.digest import frame_digest
from signals.features.cache import CACHE_FORMAT
from signals.features.events import EventArrays, GroupedEvents
from signals.features.fundamental import sector_median_timeline

if TYPE_CHECKING:
    from signals.data.base import DataProvider

EVENT_TABLES = ("fundamentals", "insider_transactions", "short_interest")


@dataclass
class SharedInputs:
    """Everything a symbol's build needs besides its own bars."""

    labels: dict[str, tuple[str, str]]  # symbol -> (sector, sector_etf)
    market: dict[str, pd.DataFrame | None]
    market_digest: dict[str, str]
    events: dict[str, GroupedEvents | None]  # table -> each symbol's rows (None: no table)
    empty_events: dict[str, EventArrays]
    empty_event_digests: dict[str, str]  # table -> frame_digest of its empty frame (a symbol without rows)
    event_digests: dict[str, dict[str, str] | None]  # table -> symbol -> frame_digest(rows, index=False)
    sector_medians: dict[str, pd.DataFrame | None]
    sector_digest: dict[str, str]

    def for_symbols(self, symbols: Iterable[str]) -> "SharedInputs":
        """Only what ``symbols`` need: what one build task carries. Through an executor's pipes
        the whole 500-symbol inputs (~11 MB) cost ~45 ms per task; a chunk's part a fraction."""
        symbols = list(symbols)
        if set(symbols) >= set(self.labels):
            return self
        labels = {s: self.labels[s] for s in symbols}
        markets = {"SPY", "VIX", *(etf for _, etf in labels.values())}
        sectors = {sector for sector, _ in labels.values()}
        return SharedInputs(
            labels=labels,
            market={m: v for m, v in self.market.items() if m in markets},
            market_digest={m: v for m, v in self.market_digest.items() if m in markets},
            events={t: (None if g is None else g.subset(symbols)) for t, g in self.events.items()},
            empty_events=self.empty_events,
            empty_event_digests=self.empty_event_digests,
            event_digests={
                t: (None if d is None else {s: d[s] for s in symbols if s in d}) for t, d in self.event_digests.items()
            },
            sector_medians={k: v for k, v in self.sector_medians.items() if k in sectors},
            sector_digest={k: v for k, v in self.sector_digest.items() if k in sectors},
        )

    def events_of(self, table: str, symbol: str) -> EventArrays | None:
        """``symbol``'s rows of ``table`` (empty when it has none; None when the source has no such table)."""
        by_symbol = self.events[table]
        return None if by_symbol is None else by_symbol.get(symbol, self.empty_events[table])

    def fingerprint(self, symbol: str, bars_digest: str) -> str:
        """The key of ``symbol``'s cache entry: a digest of every input its features are computed from."""
        sector, etf = self.labels[symbol]
        return _combine(
            [
                f"format={CACHE_FORMAT}",
                symbol,
                sector,
                etf,
                bars_digest,
                self.market_digest["SPY"],
                self.market_digest["VIX"],
                self.market_digest[etf],
                self.sector_digest[sector],
                *(self._event_digest(table, symbol) for table in EVENT_TABLES),
            ]
        )

    def _event_digest(self, table: str, symbol: str) -> str:
        digests = self.event_digests[table]
        if digests is None:  # the source has no such table
            return frame_digest(None)
        return digests.get(symbol, self.empty_event_digests[table])


def prepare_shared(provider: "DataProvider", symbols: list[str]) -> SharedInputs:
    """Load what ``symbols`` share (benchmarks, event tables, sector medians) once."""
    uni = provider.universe().set_index("symbol")
    labels = {s: (str(uni.at[s, "sector"]), str(uni.at[s, "sector_etf"]).upper()) for s in symbols}
    market_names = sorted({"SPY", "VIX", *(etf for _, etf in labels.values())})
    market = {m: provider.market_bars(m) for m in market_names}
    tables = {t: getattr(provider, t)(None) for t in EVENT_TABLES}
    selected = {t: (None if df.empty else df[df["symbol"].isin(symbols)]) for t, df in tables.items()}
    fund = tables["fundamentals"]
    sector_medians: dict[str, pd.DataFrame | None] = {}
    sector_digest: dict[str, str] = {}
    for sector in sorted({sec for sec, _ in labels.values()}):
        if fund.empty:
            sector_medians[sector], sector_digest[sector] = None, "none"
            continue
        members = uni.index[uni["sector"].astype(str) == sector]
        peers = fund[fund["symbol"].isin(members)]
        sector_medians[sector] = sector_median_timeline(peers)
        sector_digest[sector] = frame_digest(peers, index=False)
    return SharedInputs(
        labels=labels,
        market=market,
        market_digest={m: frame_digest(df) for m, df in market.items()},
        events={t: (None if df is None else GroupedEvents(df)) for t, df in selected.items()},
        empty_events={t: EventArrays.from_frame(df.iloc[0:0]) for t, df in tables.items()},
        empty_event_digests={t: frame_digest(df.iloc[0:0], index=False) for t, df in tables.items()},
        event_digests={t: (None if df is None else group_digests(df)) for t, df in selected.items()},
        sector_medians=sector_medians,
        sector_digest=sector_digest,
    )


def _combine(parts: Iterable[str]) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def group_digests(frame: pd.DataFrame) -> dict[str, str]:
    """``frame_digest(group, index=False)`` of each symbol's rows, without per-group pandas work.

    Byte for byte what :func:`frame_digest` hashes for the group ``groupby("symbol")`` yields
    (same header, the same column values in row order), so cache fingerprints are unchanged.
    """
    if not len(frame):
        return {}
    header = ([str(c) for c in frame.columns], [str(t) for t in frame.dtypes], list(frame.index.names))
    codes, uniques = pd.factorize(frame["symbol"].to_numpy())
    order = np.argsort(codes, kind="stable")  # each symbol's rows contiguous, in their original order
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    columns = []
    for c in range(frame.shape[1]):
        if frame.columns[c] == "symbol":  # constant within a group: joined from its one value below
            columns.append((b"", None, False))
            continue
        arr = frame.iloc[:, c].to_numpy()[order]
        numeric = arr.dtype.kind in "biufcmM"
        columns.append((str(arr.dtype).encode(), arr.view(np.uint8).reshape(len(arr), -1) if numeric else arr, numeric))
    out: dict[str, str] = {}
    for k, sym in enumerate(uniques):
        lo, hi = bounds[k], bounds[k + 1]
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((*header, int(hi - lo))).encode())
        for dtype, arr, numeric in columns:
            if numeric:
                h.update(dtype)
                h.update(arr[lo:hi])
            elif arr is None:
                h.update("\x1f".join([str(sym)] * int(hi - lo)).encode())
            else:
                h.update("\x1f".join(map(str, arr[lo:hi].tolist())).encode())
            h.update(b"\x1e")
        h.update(b"\x1d")
        out[str(sym)] = h.hexdigest()
    return out


__all__ = ["EVENT_TABLES", "SharedInputs", "group_digests", "prepare_shared"]
