"""The feature store: builds every symbol's features from a data provider, caches them as
Parquet and serves (symbol, date) panels. The only module of :mod:`signals.features` that
does I/O.

Cache. One file per symbol, ``<cache_dir>/<SYMBOL>.parquet``, holding the symbol's *full
history* of features (so any date slice is served from it without changing a value). Its
Parquet metadata records the cache format, the symbol, :data:`FEATURE_VERSION` and a
fingerprint of every input the features were computed from (the symbol's bars, SPY, VIX and
sector-ETF bars, its own fundamentals, insider and short-interest rows, its sector's
fundamentals, its sector labels). An entry is served only when version and fingerprint both
match, so changed data or changed feature code is never served stale. Files are written to a
temporary file and renamed (atomic); an unreadable or foreign file is logged as a warning
and rebuilt.

Parallelism. Symbols are independent once the shared inputs (benchmarks, event tables,
sector medians) are prepared, so with ``n_jobs > 1`` they are built in a process pool: each
worker loads its symbols' bars from the provider, computes, writes the cache and returns
only the requested date slice. Small requests stay in-process, where starting workers would
cost more than it saves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import pickle
import re
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from signals.errors import SignalsError
from signals.digest import _update_with_values, frame_digest
from signals.features.compute import compute_symbol_features
from signals.features.errors import FeatureError
from signals.features.fundamental import sector_median_timeline
from signals.features.registry import FEATURE_VERSION, feature_names
from signals.io import atomic_write

if TYPE_CHECKING:
    from signals.config import Settings
    from signals.data.providers import DataProvider

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_META_KEY = b"signals.features"
_EVENT_TABLES = ("fundamentals", "insider_transactions", "short_interest")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
    events: dict[str, dict[str, pd.DataFrame] | None]  # table -> symbol -> rows (None: no table)
    empty_events: dict[str, pd.DataFrame]
    event_digests: dict[str, dict[str, str] | None]  # table -> symbol -> frame_digest(rows, index=False)
    sector_medians: dict[str, pd.DataFrame | None]
    sector_digest: dict[str, str]
    lo_ns: int
    hi_ns: int


@dataclass
class _Result:
    symbol: str
    dates: np.ndarray  # int64 ns, sliced to the request
    values: np.ndarray  # (rows, n_features) float64
    status: str  # "hit" | "built" | "rebuilt" (cache entry was invalid) | "stale" | "nocache"
    messages: list[str] = field(default_factory=list)


@dataclass
class _Failure:
    """A user-facing error from a worker, carried back without re-running its ``__init__``."""

    cls: type
    args: tuple
    state: dict

    def exception(self) -> BaseException:
        exc = self.cls.__new__(self.cls)
        exc.args = self.args
        exc.__dict__.update(self.state)
        return exc


@dataclass
class BuildStats:
    """What the last :meth:`FeatureStore.get_features` call did (for the CLI and logs)."""

    symbols: int = 0
    rows: int = 0
    cache_hits: int = 0
    built: int = 0
    stale: int = 0
    invalid: int = 0
    workers: int = 1
    seconds: float = 0.0


class _InvalidEntry(Exception):
    pass


# ----------------------------------------------------------------------------- the store
class FeatureStore:
    """Point-in-time features for many symbols, cached per symbol as Parquet.

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

        With ``n_jobs > 1`` and at least ``min_parallel_symbols`` symbols the work runs in a
        process pool (forkserver), so a calling *script* needs the usual
        ``if __name__ == "__main__":`` guard; the CLI, entry points and notebooks need nothing.
        """
        if data_provider is None:
            raise FeatureError("get_features needs a data provider (see signals.data.get_provider)")
        t0 = time.perf_counter()
        lo, hi = _parse_range(start, end)
        if isinstance(symbols, str):
            symbols = [symbols]
        requested = list(dict.fromkeys(data_provider.resolve_symbols(list(symbols) if symbols else None)))
        shared = _prepare_shared(data_provider, requested, lo, hi)

        n_workers = min(self.n_jobs, len(requested))
        if n_workers > 1 and len(requested) < self.min_parallel_symbols:
            n_workers = 1
        if n_workers > 1 and not _picklable(data_provider):
            log.warning("data provider %s cannot be sent to worker processes; building features in one process", type(data_provider).__name__)
            n_workers = 1
        results = (
            self._run_parallel(requested, data_provider, shared, n_workers, progress)
            if n_workers > 1
            else self._run_serial(requested, data_provider, shared, progress)
        )
        frame = _assemble(results)
        stats = BuildStats(symbols=len(requested), rows=len(frame), workers=n_workers)
        for r in results:
            for msg in r.messages:
                log.warning("%s", msg)
            stats.cache_hits += r.status == "hit"
            stats.built += r.status != "hit"
            stats.stale += r.status == "stale"
            stats.invalid += r.status == "rebuilt"
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        log.info(
            "features: %d symbols, %d rows, %d from cache, %d built (%d stale, %d invalid entries) in %.2fs with %d worker(s)",
            stats.symbols, stats.rows, stats.cache_hits, stats.built, stats.stale, stats.invalid, stats.seconds, n_workers,
        )
        if frame.empty:
            raise FeatureError(
                f"no feature rows for {len(requested)} symbol(s) between "
                f"{_fmt(lo, 'the beginning')} and {_fmt(hi, 'the end')}"
            )
        return frame

    def _run_serial(
        self, symbols: list[str], provider: "DataProvider", shared: _Shared, progress: Callable[[str], None] | None
    ) -> list[_Result]:
        out = []
        for sym in symbols:
            out.append(_build_symbol(sym, provider, shared, self))
            if progress is not None:
                progress(sym)
        return out

    def _run_parallel(
        self,
        symbols: list[str],
        provider: "DataProvider",
        shared: _Shared,
        n_workers: int,
        progress: Callable[[str], None] | None,
    ) -> list[_Result]:
        # forkserver, not fork: the caller may hold threads (MLflow, pyarrow pools) whose
        # locks a forked child would inherit mid-use. It costs ~0.6 s once per process.
        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["signals.features.store"])
        else:  # Windows
            ctx = mp.get_context("spawn")
        out: list[_Result] = []
        with ProcessPoolExecutor(
            max_workers=n_workers, mp_context=ctx, initializer=_init_worker, initargs=(provider, shared, self)
        ) as pool:
            pending = {pool.submit(_worker_task, s) for s in symbols}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    res = fut.result()
                    if isinstance(res, _Failure):
                        for other in pending:
                            other.cancel()
                        raise res.exception()
                    out.append(res)
                    if progress is not None:
                        progress(res.symbol)
        return out

    # ------------------------------------------------------------------ cache
    def cache_path(self, symbol: str) -> Path:
        """Where ``symbol``'s cache entry lives (symbols unsafe as file names are hashed)."""
        sym = str(symbol).upper()
        if _SAFE_NAME.fullmatch(sym):
            name = sym
        else:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", sym).lstrip(".") + "-" + hashlib.sha1(sym.encode()).hexdigest()[:8]
        return self.cache_dir / f"{name}.parquet"

    def load(
        self, symbol: str, start: object = None, end: object = None, *, fingerprint: str | None = None
    ) -> pd.DataFrame | None:
        """Cached features of ``symbol`` between ``start`` and ``end``, or None on a miss.

        A miss is: no entry, an entry from other feature code (:data:`FEATURE_VERSION`), an
        entry computed from other inputs (when ``fingerprint`` is given) or an unreadable /
        foreign file (logged as a warning). Only the input fingerprint the store computes
        guarantees the entry matches today's data; without it only the code version is checked.
        """
        lo, hi = _parse_range(start, end)
        try:
            entry = self._read_entry(str(symbol).upper(), fingerprint)
        except _InvalidEntry as exc:
            log.warning("%s", exc)
            return None
        if entry is None:
            return None
        dates, values = _slice(*entry, lo, hi)
        return pd.DataFrame(values, index=pd.DatetimeIndex(dates.view("datetime64[ns]"), name="date"), columns=feature_names())

    def save(self, symbol: str, features: pd.DataFrame, *, fingerprint: str | None = None) -> Path:
        """Atomically write ``symbol``'s full-history features (registry columns, date index)."""
        if list(features.columns) != feature_names():
            raise FeatureError(f"cannot cache features for {symbol}: columns differ from the feature registry")
        if not isinstance(features.index, pd.DatetimeIndex) or not features.index.is_monotonic_increasing or features.index.has_duplicates:
            raise FeatureError(f"cannot cache features for {symbol}: index must be sorted unique dates")
        return self._write_entry(
            str(symbol).upper(), np.asarray(features.index, dtype="datetime64[ns]").view("int64"),
            features.to_numpy(dtype=np.float64), fingerprint,
        )

    def _write_entry(self, symbol: str, dates_ns: np.ndarray, values: np.ndarray, fingerprint: str | None) -> Path:
        names = feature_names()
        meta = {"format": CACHE_FORMAT, "symbol": symbol, "feature_version": FEATURE_VERSION, "fingerprint": fingerprint}
        # Column-major copy first: pa.array on a contiguous column is zero-copy, on a strided
        # column view of the row-major block it is ~10x slower.
        columns = np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)
        arrays = [pa.array(dates_ns.astype("datetime64[ns]"))] + [pa.array(columns[j]) for j in range(len(names))]
        schema = pa.schema(
            [pa.field("date", pa.timestamp("ns"))] + [pa.field(n, pa.float64()) for n in names],
            metadata={_META_KEY: json.dumps(meta).encode()},
        )
        table = pa.Table.from_arrays(arrays, schema=schema)
        return atomic_write(
            self.cache_path(symbol),
            lambda p: pq.write_table(table, p, compression="lz4", use_dictionary=False, write_statistics=False),
        )

    def _read_entry(self, symbol: str, fingerprint: str | None) -> tuple[np.ndarray, np.ndarray] | None:
        """``(dates_ns, values)`` of a valid, current entry; None if absent or stale.

        Raises :class:`_InvalidEntry` (message ready to log) for a corrupt or foreign file.
        """
        path = self.cache_path(symbol)
        if not path.is_file():
            return None
        try:
            pfile = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - any read failure means a corrupt file
            raise _InvalidEntry(f"feature cache {path} is unreadable ({type(exc).__name__}: {exc}); rebuilding it") from None
        with pfile:
            return self._read_open_entry(pfile, path, symbol, fingerprint)

    def _read_open_entry(
        self, pfile: pq.ParquetFile, path: Path, symbol: str, fingerprint: str | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        schema = pfile.schema_arrow
        raw = (schema.metadata or {}).get(_META_KEY)
        try:
            meta = json.loads(raw) if raw is not None else None
        except ValueError:
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("symbol") != symbol:
            raise _InvalidEntry(f"feature cache {path} was not written by this feature store for {symbol}; rebuilding it")
        if meta.get("feature_version") != FEATURE_VERSION or (fingerprint is not None and meta.get("fingerprint") != fingerprint):
            return None
        names = feature_names()
        try:
            if schema.names != ["date", *names]:
                raise ValueError("columns differ from the feature registry")
            table = pfile.read(use_threads=False)
            dates = np.asarray(table.column("date").to_numpy(), dtype="datetime64[ns]").view("int64")
            values = np.empty((table.num_rows, len(names)))
            for j in range(len(names)):
                values[:, j] = table.column(j + 1).to_numpy(zero_copy_only=False)
            if len(dates) > 1 and not (np.diff(dates) > 0).all():
                raise ValueError("dates are not sorted and unique")
        except Exception as exc:  # noqa: BLE001
            raise _InvalidEntry(f"feature cache {path} is corrupt ({type(exc).__name__}: {exc}); rebuilding it") from None
        return dates, values


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
    i, j = np.searchsorted(dates, lo, side="left"), np.searchsorted(dates, hi, side="right")
    return dates[i:j], values[i:j]


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:  # noqa: BLE001 - any failure means "cannot ship it"
        return False
    return True


def _by_symbol(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(s): g for s, g in frame.groupby("symbol", sort=False)} if len(frame) else {}


def _group_digests(frame: pd.DataFrame) -> dict[str, str]:
    """``frame_digest(group, index=False)`` of each symbol's rows, without per-group pandas work.

    Byte for byte what :func:`frame_digest` hashes for the group ``groupby("symbol")`` yields
    (same header, the same column values in row order), so cache fingerprints are unchanged.
    """
    if not len(frame):
        return {}
    header = ([str(c) for c in frame.columns], [str(t) for t in frame.dtypes], list(frame.index.names))
    columns = [frame.iloc[:, c].to_numpy() for c in range(frame.shape[1])]
    out: dict[str, str] = {}
    for sym, pos in frame.groupby("symbol", sort=False).indices.items():
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((*header, len(pos))).encode())
        for arr in columns:
            _update_with_values(h, arr[pos])
        h.update(b"\x1d")
        out[str(sym)] = h.hexdigest()
    return out


def _prepare_shared(provider: "DataProvider", symbols: list[str], lo: int, hi: int) -> _Shared:
    """Load what symbols share (benchmarks, event tables, sector medians) once."""
    uni = provider.universe().set_index("symbol")
    labels = {s: (str(uni.at[s, "sector"]), str(uni.at[s, "sector_etf"]).upper()) for s in symbols}
    market_names = sorted({"SPY", "VIX", *(etf for _, etf in labels.values())})
    market = {m: provider.market_bars(m) for m in market_names}
    tables = {t: getattr(provider, t)(None) for t in _EVENT_TABLES}
    selected = {t: (None if df.empty else df[df["symbol"].isin(symbols)]) for t, df in tables.items()}
    events: dict[str, dict[str, pd.DataFrame] | None] = {
        t: (None if df is None else _by_symbol(df)) for t, df in selected.items()
    }
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
        empty_events={t: df.iloc[0:0] for t, df in tables.items()},
        event_digests=event_digests,
        sector_medians=sector_medians,
        sector_digest=sector_digest,
        lo_ns=lo,
        hi_ns=hi,
    )


def _event_digest(shared: _Shared, table: str, symbol: str, rows: pd.DataFrame | None) -> str:
    digests = shared.event_digests[table]
    if rows is None or digests is None or symbol not in digests:
        return frame_digest(rows, index=False)  # None or the (cheap) empty frame
    return digests[symbol]


def _build_symbol(symbol: str, provider: "DataProvider", shared: _Shared, store: FeatureStore) -> _Result:
    """Serve one symbol from the cache or compute (and cache) it; returns the requested slice."""
    bars = provider.bars(symbol)
    sector, etf = shared.labels[symbol]
    ev: dict[str, pd.DataFrame | None] = {}
    for t in _EVENT_TABLES:
        by_sym = shared.events[t]
        ev[t] = None if by_sym is None else by_sym.get(symbol, shared.empty_events[t])
    fingerprint = _combine(
        [
            f"format={CACHE_FORMAT}",
            symbol,
            sector,
            etf,
            frame_digest(bars),
            shared.market_digest["SPY"],
            shared.market_digest["VIX"],
            shared.market_digest[etf],
            shared.sector_digest[sector],
            *(_event_digest(shared, t, symbol, ev[t]) for t in _EVENT_TABLES),
        ]
    )
    messages: list[str] = []
    status = "nocache"
    if store.use_cache:
        status = "built"
        try:
            if store.cache_path(symbol).is_file():
                entry = store._read_entry(symbol, fingerprint)
                if entry is not None:
                    return _Result(symbol, *_slice(*entry, shared.lo_ns, shared.hi_ns), status="hit")
                status = "stale"
        except _InvalidEntry as exc:
            messages.append(str(exc))
            status = "rebuilt"
    features = compute_symbol_features(
        symbol,
        bars,
        shared.market["SPY"],
        shared.market["VIX"],
        shared.market[etf],
        ev["fundamentals"],
        None,
        ev["insider_transactions"],
        ev["short_interest"],
        sector=sector,
        sector_medians=shared.sector_medians[sector],
    )
    dates = np.asarray(features.index, dtype="datetime64[ns]").view("int64")
    values = features.to_numpy(dtype=np.float64)
    if store.use_cache:
        store._write_entry(symbol, dates, values, fingerprint)
    return _Result(symbol, *_slice(dates, values, shared.lo_ns, shared.hi_ns), status=status, messages=messages)


def _assemble(results: list[_Result]) -> pd.DataFrame:
    """One (symbol, date)-indexed float64 frame, sorted, from per-symbol results."""
    names = feature_names()
    parts = sorted((r for r in results if len(r.dates)), key=lambda r: r.symbol)
    if not parts:
        index = pd.MultiIndex.from_arrays(
            [pd.Index([], dtype=object, name="symbol"), pd.DatetimeIndex([], name="date")], names=["symbol", "date"]
        )
        return pd.DataFrame(np.empty((0, len(names))), index=index, columns=names)
    counts = np.array([len(r.dates) for r in parts])
    values = np.concatenate([r.values for r in parts], axis=0) if len(parts) > 1 else parts[0].values
    all_dates = np.concatenate([r.dates for r in parts])
    date_level, date_codes = np.unique(all_dates, return_inverse=True)
    index = pd.MultiIndex(
        levels=[pd.Index([r.symbol for r in parts], dtype=object), pd.DatetimeIndex(date_level.view("datetime64[ns]"))],
        codes=[np.repeat(np.arange(len(parts)), counts), date_codes.ravel()],
        names=["symbol", "date"],
        verify_integrity=False,
    )
    return pd.DataFrame(values, index=index, columns=names, copy=False)


# ----------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _init_worker(provider: "DataProvider", shared: _Shared, store: FeatureStore) -> None:
    _WORKER.update(provider=provider, shared=shared, store=store)


def _worker_task(symbol: str) -> _Result | _Failure:
    try:
        return _build_symbol(symbol, _WORKER["provider"], _WORKER["shared"], _WORKER["store"])
    except SignalsError as exc:  # user-facing: rebuild the same exception type in the parent
        return _Failure(type(exc), exc.args, dict(exc.__dict__))


__all__ = ["FeatureStore", "BuildStats"]
