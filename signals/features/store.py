"""The feature store: builds every symbol's features from a data provider, caches them as
Parquet and serves (symbol, date) panels. The only module of :mod:`signals.features` that
does I/O.

Cache. Each symbol's entry holds its *full history* of features (so any date slice is
served from it without changing a value), keyed by :data:`FEATURE_VERSION` and a
fingerprint of every input the features were computed from (the symbol's bars, SPY, VIX and
sector-ETF bars, its own fundamentals, insider and short-interest rows, its sector's
fundamentals, its sector labels). An entry is served only when version and fingerprint both
match, so changed data or changed feature code is never served stale. Entries are stored in
Parquet segments of several symbols, written atomically (:mod:`signals.features.cache`);
damaged files are reported and rebuilt.

Parallelism. Symbols are independent once the shared inputs (benchmarks, event tables,
sector medians) are prepared, so with ``n_jobs > 1`` they are built by worker processes
(:mod:`signals.features.workers`): the workers load and check their symbols' bars while
this process prepares the shared inputs; then each worker fingerprints, computes or reads
from the cache, and writes its symbols straight into one shared block that becomes the
returned frame's data (no results are pickled back). Small requests stay in-process,
where starting workers would cost more than it saves.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.core.digest import frame_digest
from signals.features.cache import (
    CACHE_FORMAT,
    CacheIndex,
    CacheItem,
    InvalidEntry,
    SegmentReader,
    SegmentWriter,
    copy_rows,
    write_segment,
)
from signals.features.compute import CalendarMemo, compute_symbol_features, symbol_feature_matrix
from signals.features.errors import FeatureError
from signals.features.events import EventArrays, GroupedEvents
from signals.features.fundamental import sector_median_timeline
from signals.features.registry import BAR_FIELDS, feature_names, features_needing
from signals.features.technical import frame_absent_bar_fields
from signals.features.workers import Scanned, run_pool, run_serial

if TYPE_CHECKING:
    from signals.settings.model import Settings
    from signals.data.base import DataProvider

log = logging.getLogger(__name__)

_EVENT_TABLES = ("fundamentals", "insider_transactions", "short_interest")


# ----------------------------------------------------------------------------- fingerprints
def _combine(parts: Iterable[str]) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


# ----------------------------------------------------------------------------- shared inputs
@dataclass
class _Shared:
    """Everything a symbol's build needs besides its own bars; prepared once per request."""

    labels: dict[str, tuple[str, str]]  # symbol -> (sector, sector_etf)
    market: dict[str, pd.DataFrame | None]
    market_digest: dict[str, str]
    events: dict[str, GroupedEvents | None]  # table -> each symbol's rows (None: no table)
    empty_events: dict[str, EventArrays]
    empty_event_digests: dict[str, str]  # table -> frame_digest of its empty frame (a symbol without rows)
    event_digests: dict[str, dict[str, str] | None]  # table -> symbol -> frame_digest(rows, index=False)
    sector_medians: dict[str, pd.DataFrame | None]
    sector_digest: dict[str, str]


@dataclass
class BuildStats:
    """What the last :meth:`FeatureStore.get_features` call did (for the CLI and logs)."""

    symbols: int = 0
    rows: int = 0
    cache_hits: int = 0
    built: int = 0
    stale: int = 0
    invalid: int = 0  # damaged cache files and entries found (all rebuilt)
    workers: int = 1
    seconds: float = 0.0
    #: symbol -> the bar fields it lacks (close-only symbols), so the caller can name the lost features
    absent_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the store
class FeatureStore:
    """Point-in-time features for many symbols, cached as Parquet segments (:mod:`signals.features.cache`).

    Build it with :meth:`from_settings` in application code; the constructor arguments are
    the same settings spelled out. ``min_parallel_symbols``: below this many symbols the
    build stays in-process, because starting workers would cost more than it saves.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] = "data/features",
        n_jobs: int = 1,
        use_cache: bool = True,
        *,
        min_parallel_symbols: int = 32,
    ) -> None:
        if n_jobs < 1:
            raise FeatureError(f"n_jobs must be >= 1, got {n_jobs}")
        self.cache_dir = Path(cache_dir)
        self.n_jobs = int(n_jobs)
        self.use_cache = bool(use_cache)
        self.min_parallel_symbols = int(min_parallel_symbols)
        self.last_stats = BuildStats()

    @classmethod
    def from_settings(cls, settings: "Settings", **overrides: Any) -> "FeatureStore":
        """The store configured by ``settings.features`` (cache_dir, n_jobs)."""
        kwargs: dict[str, Any] = {"cache_dir": settings.features.cache_dir, "n_jobs": settings.features.n_jobs}
        kwargs.update(overrides)
        return cls(**kwargs)

    def __repr__(self) -> str:
        return f"FeatureStore(cache_dir={str(self.cache_dir)!r}, n_jobs={self.n_jobs}, use_cache={self.use_cache})"

    # ------------------------------------------------------------------ computing
    def compute_features(
        self,
        symbol: str,
        bars: pd.DataFrame,
        spy_bars: pd.DataFrame | None = None,
        vix_bars: pd.DataFrame | None = None,
        sector_bars: pd.DataFrame | None = None,
        fundamentals: pd.DataFrame | None = None,
        sector_fundamentals: pd.DataFrame | None = None,
        insider_transactions: pd.DataFrame | None = None,
        short_interest: pd.DataFrame | None = None,
        *,
        sector: str | None = None,
    ) -> pd.DataFrame:
        """All features of one symbol, indexed by its bar dates (no cache involved).

        See :func:`signals.features.compute.compute_symbol_features` for the arguments.
        """
        return compute_symbol_features(
            symbol,
            bars,
            spy_bars,
            vix_bars,
            sector_bars,
            fundamentals,
            sector_fundamentals,
            insider_transactions,
            short_interest,
            sector=sector,
        )

    def get_features(
        self,
        symbols: Iterable[str] | str | None,
        start: object = None,
        end: object = None,
        data_provider: "DataProvider | None" = None,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> pd.DataFrame:
        """Features of ``symbols`` (None/empty: the whole universe) between ``start`` and ``end``.

        Each symbol is computed on its full available history and then sliced (inclusive),
        so warm-up uses earlier data and a slice never changes a value. Returns float64
        columns in :func:`feature_names` order on a sorted ("symbol", "date") MultiIndex.
        Raises :class:`~signals.data.errors.UnknownSymbolError` for unknown symbols and
        :class:`FeatureError` when nothing falls in the range. ``progress`` is called with
        each symbol as it completes.

        With ``n_jobs > 1`` and at least ``min_parallel_symbols`` symbols the work runs in
        worker processes (:mod:`signals.features.workers`). They are forked when the caller
        runs no other thread; otherwise they start through a forkserver, and then a calling
        *script* needs the usual ``if __name__ == "__main__":`` guard (the CLI, entry points
        and notebooks need nothing). The returned frame's values live in one shared-memory
        block on Linux; it behaves like any frame and is freed with it.
        """
        if data_provider is None:
            raise FeatureError("get_features needs a data provider (see signals.data.get_provider)")
        t0 = time.perf_counter()
        lo, hi = _parse_range(start, end)
        if isinstance(symbols, str):
            symbols = [symbols]
        requested = list(dict.fromkeys(data_provider.resolve_symbols(list(symbols) if symbols else None)))

        n_workers = min(self.n_jobs, len(requested))
        if n_workers > 1 and len(requested) < self.min_parallel_symbols:
            n_workers = 1
        if n_workers > 1 and not _picklable(data_provider):
            log.warning("data provider %s cannot be sent to worker processes; building features in one process", type(data_provider).__name__)
            n_workers = 1
        job = _BuildJob(data_provider, self, requested, lo, hi)
        n_features = len(feature_names())
        if n_workers > 1:
            results, block, messages = run_pool(
                requested, n_workers, job, (SignalsError,), n_features, progress, preload=["signals.features.store"]
            )
        else:
            results, block, messages = run_serial(requested, job, n_features, progress)
        frame = _assemble(results, block)
        stats = BuildStats(symbols=len(requested), rows=len(frame), workers=n_workers)
        if job.index is not None:
            stats.invalid += len(job.index.problems)  # already reported by _scan_cache
        for r in results:
            for msg in r.messages:
                log.warning("%s", msg)
            if r.absent_fields:
                stats.absent_fields[r.symbol] = r.absent_fields
            stats.cache_hits += r.status == "hit"
            stats.built += r.status != "hit"
            stats.stale += r.status == "stale"
            stats.invalid += r.status == "rebuilt"
        for msg in messages:
            log.warning("%s", msg)
        if job.index is not None:
            job.index.collect_garbage(r.symbol for r in results if r.status != "hit")
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        log.info(
            "features: %d symbols, %d rows, %d from cache, %d built (%d stale, %d invalid entries) in %.2fs with %d worker(s)",
            stats.symbols, stats.rows, stats.cache_hits, stats.built, stats.stale, stats.invalid, stats.seconds, n_workers,
        )
        _log_absent_fields(stats.absent_fields)
        if frame.empty:
            raise FeatureError(
                f"no feature rows for {len(requested)} symbol(s) between "
                f"{_fmt(lo, 'the beginning')} and {_fmt(hi, 'the end')}"
            )
        return frame

    # ------------------------------------------------------------------ cache
    def _scan_cache(self) -> CacheIndex:
        """The cache directory's index; the damaged files the scan found (and removed) are reported."""
        index = CacheIndex.scan(self.cache_dir)
        for problem in index.problems:
            log.warning("%s", problem)
        return index

    def cache_file(self, symbol: str) -> Path | None:
        """The cache segment holding ``symbol``'s newest entry from the current feature code, if any."""
        entry = self._scan_cache().find(str(symbol).upper(), None)
        return None if entry is None else entry.path

    def load(
        self, symbol: str, start: object = None, end: object = None, *, fingerprint: str | None = None
    ) -> pd.DataFrame | None:
        """Cached features of ``symbol`` between ``start`` and ``end``, or None on a miss.

        A miss is: no entry, only entries from other feature code (:data:`FEATURE_VERSION`) or,
        when ``fingerprint`` is given, computed from other inputs, or a damaged entry or file
        (logged as a warning). Only the input fingerprint the store computes guarantees the
        entry matches today's data; without it only the code version is checked.
        """
        lo, hi = _parse_range(start, end)
        entry = self._scan_cache().find(str(symbol).upper(), fingerprint)
        if entry is None:
            return None
        reader = SegmentReader()
        try:
            dates, table, offset = reader.read(entry)
            values = np.empty((len(feature_names()), len(dates)))
            copy_rows(table, offset, values)
        except InvalidEntry as exc:
            log.warning("%s", exc)
            return None
        except FileNotFoundError:  # removed by another process's clean-up
            return None
        finally:
            reader.close()
        dates, values = _slice(dates, values, lo, hi)
        rows = pd.DatetimeIndex(dates.view("datetime64[ns]"), name="date")
        return pd.DataFrame(values.T, index=rows, columns=feature_names(), copy=False)

    def save(self, symbol: str, features: pd.DataFrame, *, fingerprint: str | None = None) -> Path:
        """Atomically write ``symbol``'s full-history features (registry columns, date index) as a new segment."""
        if list(features.columns) != feature_names():
            raise FeatureError(f"cannot cache features for {symbol}: columns differ from the feature registry")
        if not isinstance(features.index, pd.DatetimeIndex) or not features.index.is_monotonic_increasing or features.index.has_duplicates:
            raise FeatureError(f"cannot cache features for {symbol}: index must be sorted unique dates")
        item = CacheItem(
            str(symbol).upper(),
            np.asarray(features.index, dtype="datetime64[ns]").view("int64"),
            np.ascontiguousarray(features.to_numpy(dtype=np.float64).T),
            fingerprint,
        )
        path = write_segment(self.cache_dir, [item])
        self._scan_cache().collect_garbage([])  # the new entry supersedes the symbol's older ones
        return path


# ----------------------------------------------------------------------------- helpers
def _fmt(ns: int, default: str) -> str:
    return default if ns in (_MIN_NS, _MAX_NS) else str(pd.Timestamp(ns).date())


_MIN_NS = np.iinfo(np.int64).min
_MAX_NS = np.iinfo(np.int64).max


def _to_ns(value: object, what: str) -> int | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise FeatureError(f"invalid {what} date {value!r}") from None
    if ts is pd.NaT:
        raise FeatureError(f"invalid {what} date {value!r}")
    if ts.tz is not None:
        ts = ts.tz_localize(None)
    return int(ts.value)


def _parse_range(start: object, end: object) -> tuple[int, int]:
    lo = _to_ns(start, "start")
    hi = _to_ns(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise FeatureError(f"start {pd.Timestamp(lo).date()} is after end {pd.Timestamp(hi).date()}")
    return (_MIN_NS if lo is None else lo), (_MAX_NS if hi is None else hi)


def _slice(dates: np.ndarray, values: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The inclusive [lo, hi] date slice of dates and column-major values."""
    i, j = np.searchsorted(dates, lo, side="left"), np.searchsorted(dates, hi, side="right")
    return dates[i:j], values[:, i:j]


def _log_absent_fields(absent: dict[str, tuple[str, ...]]) -> None:
    """Say which symbols lack bar fields and which features are NaN for them because of it."""
    by_fields: dict[tuple[str, ...], list[str]] = {}
    for symbol, fields in absent.items():
        by_fields.setdefault(fields, []).append(symbol)
    for fields, symbols in by_fields.items():
        lost = [f.name for f in features_needing(fields)]
        log.info(
            "features: %d symbol(s) without %s (%s): %d features NaN for them: %s",
            len(symbols), "/".join(fields), ", ".join(symbols), len(lost), ", ".join(lost),
        )


def _write_failure(exc: OSError) -> str:
    return f"could not write the feature cache ({type(exc).__name__}: {exc}); these features were computed but not cached"


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:  # noqa: BLE001 - any failure means "cannot ship it"
        return False
    return True


def _group_digests(frame: pd.DataFrame) -> dict[str, str]:
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


def _prepare_shared(provider: "DataProvider", symbols: list[str]) -> _Shared:
    """Load what symbols share (benchmarks, event tables, sector medians) once."""
    uni = provider.universe().set_index("symbol")
    labels = {s: (str(uni.at[s, "sector"]), str(uni.at[s, "sector_etf"]).upper()) for s in symbols}
    market_names = sorted({"SPY", "VIX", *(etf for _, etf in labels.values())})
    market = {m: provider.market_bars(m) for m in market_names}
    tables = {t: getattr(provider, t)(None) for t in _EVENT_TABLES}
    selected = {t: (None if df.empty else df[df["symbol"].isin(symbols)]) for t, df in tables.items()}
    events = {t: (None if df is None else GroupedEvents(df)) for t, df in selected.items()}
    event_digests = {t: (None if df is None else _group_digests(df)) for t, df in selected.items()}
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
    return _Shared(
        labels=labels,
        market=market,
        market_digest={m: frame_digest(df) for m, df in market.items()},
        events=events,
        empty_events={t: EventArrays.from_frame(df.iloc[0:0]) for t, df in tables.items()},
        empty_event_digests={t: frame_digest(df.iloc[0:0], index=False) for t, df in tables.items()},
        event_digests=event_digests,
        sector_medians=sector_medians,
        sector_digest=sector_digest,
    )


def _event_digest(shared: _Shared, table: str, symbol: str) -> str:
    digests = shared.event_digests[table]
    if digests is None:  # the source has no such table
        return frame_digest(None)
    return digests.get(symbol, shared.empty_event_digests[table])


@dataclass
class _Pending:
    """What the scan of one symbol keeps for its fill."""

    bars: pd.DataFrame
    dates: np.ndarray  # the bars' dates, int64 ns
    bars_digest: str
    span: tuple[int, int]  # row positions of the requested slice in the full history
    absent_fields: tuple[str, ...]  # bar fields without values (close-only symbols)


class _BuildJob:
    """The store's per-symbol work for :mod:`signals.features.workers`.

    ``scan`` loads and checks one symbol's bars (it needs nothing shared, so workers scan
    while the parent runs :meth:`prepare`); ``receive`` hands a worker the shared inputs and
    cache entries of its symbols; ``fill`` fingerprints every input, then reads the current
    cache entry or computes the full history and keeps the requested slice, straight into
    the symbol's slot of the panel block, and queues what it computed for the cache;
    ``finish`` writes the last queued segment.
    """

    def __init__(self, provider: "DataProvider", store: FeatureStore, symbols: list[str], lo: int, hi: int) -> None:
        self.provider, self.store, self.symbols, self.lo, self.hi = provider, store, symbols, lo, hi
        self.shared: _Shared | None = None
        self.index: CacheIndex | None = None  # parent: the whole cache index (None: the cache is off)
        self.mine: CacheIndex | None = None  # worker: the entries of its symbols
        self.pending: dict[str, _Pending] = {}
        self.calendars = CalendarMemo()
        self.reader: SegmentReader | None = None
        self.writer: SegmentWriter | None = None

    def __getstate__(self) -> dict[str, Any]:  # sent to spawned workers before any scan
        state = dict(self.__dict__)
        state.update(shared=None, index=None, mine=None, pending={}, calendars=CalendarMemo(), reader=None, writer=None)
        return state

    # -- parent side
    def prepare(self) -> None:
        """Load what symbols share (benchmarks, event tables, sector medians) and index the cache."""
        self.shared = _prepare_shared(self.provider, self.symbols)
        if self.store.use_cache:
            self.index = self.store._scan_cache()

    def context(self) -> tuple[_Shared, CacheIndex | None]:
        """The shared inputs and the requested symbols' cache entries (what every worker is sent)."""
        assert self.shared is not None, "prepare() first"
        return self.shared, (None if self.index is None else self.index.only(self.symbols))

    # -- worker side
    def receive(self, context: tuple[_Shared, CacheIndex | None]) -> None:
        self.shared, index = context
        if index is not None:
            self.mine = index
            self.reader = SegmentReader()
            self.writer = SegmentWriter(self.store.cache_dir)

    def scan(self, symbol: str) -> Scanned:
        bars, _ = self.provider.bars_with_report(symbol)  # the provider's own frame: read here, never changed
        dates = np.asarray(bars.index, dtype="datetime64[ns]").view("int64")
        i, j = int(np.searchsorted(dates, self.lo, side="left")), int(np.searchsorted(dates, self.hi, side="right"))
        absent = tuple(c for c in BAR_FIELDS if c in frame_absent_bar_fields(bars))
        self.pending[symbol] = _Pending(bars, dates, frame_digest(bars), (i, j), absent)
        return Scanned(symbol, dates[i:j], "scanned", absent_fields=absent)

    def forget(self, symbol: str) -> None:
        self.pending.pop(symbol, None)

    def fill(self, symbol: str, out: np.ndarray) -> Scanned:
        shared, store = self.shared, self.store
        assert shared is not None, "receive() the shared inputs first"
        p = self.pending.pop(symbol)
        sector, etf = shared.labels[symbol]
        fingerprint = _combine(
            [
                f"format={CACHE_FORMAT}",
                symbol,
                sector,
                etf,
                p.bars_digest,
                shared.market_digest["SPY"],
                shared.market_digest["VIX"],
                shared.market_digest[etf],
                shared.sector_digest[sector],
                *(_event_digest(shared, t, symbol) for t in _EVENT_TABLES),
            ]
        )
        dates = p.dates
        i, j = p.span
        messages: list[str] = []
        status = "nocache"
        if self.writer is not None:
            status, hit = self._from_cache(symbol, fingerprint, dates, i, out, messages)
            if hit:
                return Scanned(symbol, dates[i:j], status, absent_fields=p.absent_fields)
        full = out if (i, j) == (0, len(dates)) else None
        _, values = symbol_feature_matrix(
            symbol,
            p.bars,
            shared.market["SPY"],
            shared.market["VIX"],
            shared.market[etf],
            self._events("fundamentals", symbol),
            None,
            self._events("insider_transactions", symbol),
            self._events("short_interest", symbol),
            sector=sector,
            sector_medians=shared.sector_medians[sector],
            out=full,
            calendars=self.calendars,
        )
        if full is None:
            out[:] = values[:, i:j]
        if self.writer is not None:
            try:
                self.writer.add(symbol, dates, values, fingerprint)
            except OSError as exc:
                messages.append(_write_failure(exc))
        return Scanned(symbol, dates[i:j], status, messages, p.absent_fields)

    def _from_cache(
        self, symbol: str, fingerprint: str, dates: np.ndarray, i: int, out: np.ndarray, messages: list[str]
    ) -> tuple[str, bool]:
        """Fills ``out`` from a current cache entry if there is one: ``(status, hit)``."""
        assert self.mine is not None and self.reader is not None
        entry = self.mine.find(symbol, fingerprint)
        if entry is None:
            return ("stale" if self.mine.has(symbol) else "built"), False
        try:
            cached_dates, table, offset = self.reader.read(entry)
            if not np.array_equal(cached_dates, dates):
                raise InvalidEntry(f"feature cache entry of {symbol} in {entry.path} has other dates than the bars")
            copy_rows(table, offset + i, out)
        except InvalidEntry as exc:
            messages.append(f"{exc}; rebuilding it")
            return "rebuilt", False
        except FileNotFoundError:  # removed by another process's clean-up since the index was read
            return "built", False
        return "hit", True

    def finish(self) -> list[str]:
        """Write what is still queued for the cache; the messages to report."""
        messages = []
        if self.reader is not None:
            self.reader.close()
        if self.writer is not None:
            try:
                self.writer.flush()
            except OSError as exc:
                messages.append(_write_failure(exc))
        return messages

    def _events(self, table: str, symbol: str) -> EventArrays | None:
        assert self.shared is not None
        by_sym = self.shared.events[table]
        return None if by_sym is None else by_sym.get(symbol, self.shared.empty_events[table])


def _code_dtype(n: int) -> type:
    # the dtype pandas would shrink MultiIndex codes to anyway (it copies any wider codes)
    return np.int8 if n < 2**7 else np.int16 if n < 2**15 else np.int32 if n < 2**31 else np.int64


def _date_codes(calendars: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The sorted union of the symbols' dates and every row's position in it.

    Symbols mostly share a few calendars: each distinct calendar is searched once, instead
    of sorting all rows together (~10x faster for a full universe).
    """
    distinct: dict[tuple[int, int, int], list[tuple[np.ndarray, list[int]]]] = {}
    for k, dates in enumerate(calendars):
        if not len(dates):
            continue
        bucket = distinct.setdefault((len(dates), int(dates[0]), int(dates[-1])), [])
        for rep, members in bucket:
            if np.array_equal(rep, dates):
                members.append(k)
                break
        else:
            bucket.append((dates, [k]))
    reps = [rep for bucket in distinct.values() for rep, _ in bucket]
    level = np.unique(np.concatenate(reps)) if reps else np.empty(0, dtype=np.int64)
    dtype = _code_dtype(len(level))
    codes_of = {}
    for bucket in distinct.values():
        for rep, members in bucket:
            codes = np.searchsorted(level, rep).astype(dtype)
            for k in members:
                codes_of[k] = codes
    parts = [codes_of[k] for k in range(len(calendars)) if k in codes_of]
    return level, (np.concatenate(parts) if parts else np.empty(0, dtype=dtype))


def _assemble(parts: list[Scanned], block: np.ndarray) -> pd.DataFrame:
    """The (symbol, date)-indexed frame over ``block`` (features, rows), without copying it."""
    names = feature_names()
    if not parts:
        index = pd.MultiIndex.from_arrays(
            [pd.Index([], dtype=object, name="symbol"), pd.DatetimeIndex([], name="date")], names=["symbol", "date"]
        )
        return pd.DataFrame(np.empty((0, len(names))), index=index, columns=names)
    counts = np.array([r.rows for r in parts])
    date_level, date_codes = _date_codes([r.dates for r in parts])
    index = pd.MultiIndex(
        levels=[pd.Index([r.symbol for r in parts], dtype=object), pd.DatetimeIndex(date_level.view("datetime64[ns]"))],
        codes=[np.repeat(np.arange(len(parts), dtype=_code_dtype(len(parts))), counts), date_codes],
        names=["symbol", "date"],
        verify_integrity=False,
    )
    # block.T is F-contiguous (rows, features): pandas stores it as one block, no copy.
    return pd.DataFrame(block.T, index=index, columns=names, copy=False)


__all__ = ["FeatureStore", "BuildStats"]
