"""A feature build as independent chunk tasks, run by whichever executor the store is given.

Symbols are independent once the shared inputs are prepared, so a build is cut into chunks
of symbols and each chunk is one call of :func:`build_chunk`: a module-level function of
one picklable :class:`ChunkTask` that needs nothing from the process that made it (no fork,
no shared memory, no pipes of ours). It loads and checks its symbols' bars, fingerprints
their inputs, takes each symbol from a current cache entry or computes it, and writes what
it computed as ONE new cache segment (temporary file, then rename: all or nothing).

The chunk's results travel back in one of two ways (:attr:`ChunkTask.ship_values`):

* the values themselves, one contiguous ``(features, rows)`` block per chunk: what an
  in-process build uses (nothing is pickled) and what a build without a cache must use;
* only *where* each symbol's values are (its cache entry): the cache is the transport.
  Pickling ~0.9 GB of features back through an executor's pipes and copying them into the
  panel cost more than computing them (a 500-symbol build was 2-4x slower end to end that
  way; reading the segments back costs ~0.5 s), so a build in other processes ships values
  only for what could not be cached (a full or read-only disk).

An executor is anything with ``map(fn, tasks)`` that returns the results in task order:
:class:`JoblibExecutor` (the default, loky processes), a
``concurrent.futures.ProcessPoolExecutor``, or an adapter around a Dask client
(``client.map`` then ``result()`` per future).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

import numpy as np
import pandas as pd

from signals.core.digest import frame_digest
from signals.features import cache
from signals.features.arrays import empty_block
from signals.features.cache import CacheIndex, Entry, InvalidEntry, SegmentReader, SegmentWriter, copy_rows
from signals.features.compute import CalendarMemo, symbol_feature_matrix
from signals.features.errors import FeatureError
from signals.features.inputs import SharedInputs
from signals.features.spec import BAR_FIELDS, feature_names
from signals.features.technical import frame_absent_bar_fields

if TYPE_CHECKING:
    from signals.data.base import DataProvider

#: Chunks cut per worker: enough that a worker slowed by the host, or handed heavier
#: symbols, holds the build up by a fraction of its share, few enough that each chunk's
#: fixed costs (a task, a segment) stay small.
CHUNKS_PER_WORKER = 4

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` on every task, anywhere, and returns the results in task order."""

    def map(self, fn: Callable[[T], R], tasks: Iterable[T], /) -> Iterable[R]: ...


@dataclass(frozen=True)
class JoblibExecutor:
    """The local default: ``n_jobs`` loky worker processes, kept warm between builds by joblib."""

    n_jobs: int
    backend: str = "loky"

    def map(self, fn: Callable[[T], R], tasks: Iterable[T], /) -> Iterator[R]:
        from joblib import Parallel, delayed

        # One task per dispatch (chunks are already sized for balance); no automatic
        # memmapping of large arguments, so a task travels exactly as it would to Dask.
        parallel = Parallel(n_jobs=self.n_jobs, backend=self.backend, batch_size=1, max_nbytes=None, return_as="generator")
        return parallel(delayed(fn)(task) for task in tasks)


def split_chunks(symbols: Sequence[str], n_chunks: int) -> list[tuple[str, ...]]:
    """``symbols`` cut into ``n_chunks`` consecutive chunks whose sizes differ by at most one."""
    n = max(1, min(n_chunks, len(symbols)))
    size, extra = divmod(len(symbols), n)
    chunks, at = [], 0
    for k in range(n):
        stop = at + size + (k < extra)
        chunks.append(tuple(symbols[at:stop]))
        at = stop
    return [c for c in chunks if c]


def describe_chunk(symbols: Sequence[str]) -> str:
    """The chunk's symbols for an error message: all of them, or the ends of a long run."""
    if len(symbols) <= 12:
        return ", ".join(symbols)
    return f"{', '.join(symbols[:3])}, ..., {symbols[-1]} ({len(symbols)} symbols)"


# ----------------------------------------------------------------------------- the task
@dataclass(frozen=True)
class ChunkTask:
    """Everything one chunk's build needs; pickles cheaply (the provider travels without
    what it has read, the shared inputs are the chunk's part, a few MB of plain arrays)."""

    provider: "DataProvider"
    symbols: tuple[str, ...]
    shared: SharedInputs
    lo: int  # the requested date range, inclusive, int64 ns
    hi: int
    index: CacheIndex | None  # the chunk's cache entries and the cache directory; None: no cache
    feature_version: str  # the parent's feature code: a worker running other code refuses the task
    ship_values: bool  # True: every symbol's values come back; False: only those not in the cache


@dataclass
class SymbolOutcome:
    """One symbol of a chunk: its rows in the requested range and where their values are."""

    symbol: str
    dates: np.ndarray  # the requested slice of its bar dates, int64 ns
    status: str  # hit | built | stale | rebuilt | nocache
    absent_fields: tuple[str, ...] = ()  # bar fields without values (close-only symbols)
    messages: list[str] = field(default_factory=list)
    entry: Entry | None = None  # its values are in this cache entry (None: in ChunkResult.values)
    first_row: int = 0  # row of ``dates[0]`` in the entry

    @property
    def rows(self) -> int:
        return len(self.dates)


@dataclass
class ChunkResult:
    outcomes: list[SymbolOutcome]
    #: ``(features, rows)``: the requested rows of every outcome without an entry, in order
    values: np.ndarray
    messages: list[str] = field(default_factory=list)


def build_chunk(task: ChunkTask) -> ChunkResult:
    """Build one chunk (see the module docstring). A failure names the symbol and the chunk;
    nothing of a failed chunk reaches the cache."""
    build = _ChunkBuild(task)
    try:
        if task.feature_version != cache.FEATURE_VERSION:
            raise FeatureError(
                f"this process runs feature code {cache.FEATURE_VERSION}, the build asked for {task.feature_version}"
            )
        return build.run()
    except Exception as exc:
        where = f"{build.current} in " if build.current else ""
        exc.add_note(f"feature build failed at {where}the chunk {describe_chunk(task.symbols)}; none of the chunk was cached")
        raise


@dataclass
class _Loaded:
    """A symbol's bars and what the build decides from them before computing anything."""

    symbol: str
    bars: pd.DataFrame
    dates: np.ndarray  # all bar dates, int64 ns
    span: tuple[int, int]  # row positions of the requested slice
    absent_fields: tuple[str, ...]
    fingerprint: str
    entry: Entry | None  # a current cache entry, if any


class _ChunkBuild:
    """The state of one :func:`build_chunk` call: its segment writer, reader and messages."""

    def __init__(self, task: ChunkTask) -> None:
        self.task = task
        self.current = ""  # the symbol being worked on, for error messages
        self.messages: list[str] = []
        self.calendars = CalendarMemo()
        self.reader = SegmentReader()
        self.writer = None if task.index is None else SegmentWriter(task.index.directory, per_segment=len(task.symbols) + 1)

    def run(self) -> ChunkResult:
        try:
            loaded = [self._load(symbol) for symbol in self.task.symbols]
            self.current = ""
            kept = [item for item in loaded if self.task.ship_values or item.entry is None]
            reuse = not self.task.ship_values
            block, slots = _allocate(kept, reuse)
            outcomes = []
            for item in loaded:
                self.current = item.symbol
                outcomes.append(self._serve(item, slots.get(item.symbol)))
            self.current = ""
            shipped = self._publish(outcomes)
        except BaseException:
            if self.writer is not None:
                self.writer.abort()
            raise
        finally:
            self.reader.close()
        if not shipped:
            return ChunkResult(outcomes, np.empty((len(block), 0)), self.messages)
        if reuse:  # the cache could not be written: the block travels back, so it is not refilled
            _reusable.block = None
        return ChunkResult(outcomes, block, self.messages)

    def _load(self, symbol: str) -> _Loaded:
        self.current = symbol
        task = self.task
        bars, _ = task.provider.bars_with_report(symbol)  # the provider's own frame: read here, never changed
        dates = np.asarray(bars.index, dtype="datetime64[ns]").view("int64")
        span = int(np.searchsorted(dates, task.lo, side="left")), int(np.searchsorted(dates, task.hi, side="right"))
        absent = tuple(c for c in BAR_FIELDS if c in frame_absent_bar_fields(bars))
        fingerprint = task.shared.fingerprint(symbol, frame_digest(bars))
        entry = None if task.index is None else task.index.find(symbol, fingerprint)
        return _Loaded(symbol, bars, dates, span, absent, fingerprint, entry)

    def _serve(self, item: _Loaded, out: np.ndarray | None) -> SymbolOutcome:
        """The symbol from its cache entry or computed; ``out`` is its slot in the chunk's
        block (None: a cache hit the parent reads itself)."""
        i, j = item.span
        outcome = SymbolOutcome(item.symbol, item.dates[i:j], "nocache", item.absent_fields, first_row=i)
        index = self.task.index
        if item.entry is not None:
            if out is None:
                outcome.status, outcome.entry = "hit", item.entry
                return outcome
            outcome.status = self._read(item, out, outcome.messages)
            if outcome.status == "hit":
                return outcome
        elif index is not None:
            outcome.status = "stale" if index.has(item.symbol) else "built"
        assert out is not None, "a symbol to compute has a slot"
        self._compute(item, out)
        return outcome

    def _read(self, item: _Loaded, out: np.ndarray, messages: list[str]) -> str:
        """Copies the symbol's cache entry into ``out``: the status ("hit", or why not)."""
        assert item.entry is not None
        try:
            cached_dates, columns, offset = self.reader.read(item.entry)
            if not np.array_equal(cached_dates, item.dates):
                raise InvalidEntry(f"feature cache entry of {item.symbol} in {item.entry.path} has other dates than the bars")
            copy_rows(columns, offset + item.span[0], out)
        except InvalidEntry as exc:
            messages.append(f"{exc}; rebuilding it")
            return "rebuilt"
        except FileNotFoundError:  # removed by another process's clean-up since the index was read
            return "built"
        return "hit"

    def _compute(self, item: _Loaded, out: np.ndarray) -> None:
        """All features of the symbol's full history; its requested rows into ``out``, the
        full history to the chunk's segment."""
        shared, (i, j) = self.task.shared, item.span
        sector, etf = shared.labels[item.symbol]
        whole = out if (i, j) == (0, len(item.dates)) else None
        _, values = symbol_feature_matrix(
            item.symbol,
            item.bars,
            shared.market["SPY"],
            shared.market["VIX"],
            shared.market[etf],
            shared.events_of("fundamentals", item.symbol),
            None,
            shared.events_of("insider_transactions", item.symbol),
            shared.events_of("short_interest", item.symbol),
            sector=sector,
            sector_medians=shared.sector_medians[sector],
            out=whole,
            calendars=self.calendars,
        )
        if whole is None:
            out[:] = values[:, i:j]
        if self.writer is not None:
            try:
                self.writer.add(item.symbol, item.dates, values, item.fingerprint)
            except OSError as exc:
                self._stop_caching(exc)

    def _publish(self, outcomes: list[SymbolOutcome]) -> bool:
        """Closes the chunk's segment and points the built symbols at it (unless their values
        are shipped anyway). True when the chunk's block must travel back."""
        written: dict[str, Entry] = {}
        if self.writer is not None:
            try:
                self.writer.flush()
                written = {entry.symbol: entry for entry in self.writer.published}
            except OSError as exc:
                self._stop_caching(exc)
        if self.task.ship_values:
            return True
        shipped = False
        for outcome in outcomes:
            if outcome.entry is None:
                outcome.entry = written.get(outcome.symbol)
                shipped = shipped or outcome.entry is None
        return shipped

    def _stop_caching(self, exc: OSError) -> None:
        """A write failed (disk full, read-only): the chunk's values are returned, not cached."""
        assert self.writer is not None
        self.writer.abort()
        self.writer = None
        self.messages.append(
            f"could not write the feature cache ({type(exc).__name__}: {exc}); "
            f"the features of {describe_chunk(self.task.symbols)} were computed but not cached"
        )


#: Per thread, the block of the last chunk whose values did not travel back (see :func:`_allocate`).
_reusable = threading.local()


def _allocate(kept: list[_Loaded], reuse: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One ``(features, rows)`` block for the requested rows of ``kept``, and each one's slot.

    ``reuse``: the values will be in the cache, not returned, so the thread's previous block
    is filled again. A fresh block per chunk costs its page faults anew: reusing one made a
    500-symbol cold build ~15% faster here (the parent pays those faults once, for the panel).
    """
    counts = [item.span[1] - item.span[0] for item in kept]
    n_features, rows = len(feature_names()), sum(counts)
    if reuse:
        spare = getattr(_reusable, "block", None)
        if spare is None or spare.shape[1] < rows:
            spare = _reusable.block = empty_block(n_features, rows)
        block = spare[:, :rows]
    else:
        block = empty_block(n_features, rows)
    slots, at = {}, 0
    for item, n in zip(kept, counts):
        slots[item.symbol] = block[:, at : at + n]
        at += n
    return block, slots


def run_chunks(executor: Executor | None, tasks: Sequence[ChunkTask]) -> Iterator[ChunkResult]:
    """The tasks' results in task order: by ``executor``, or in this process when it is None.

    A failure the tasks could not label themselves (a worker that died) names the chunks
    that had not come back.
    """
    if executor is None:
        yield from map(build_chunk, tasks)
        return
    done = 0
    try:
        for result in executor.map(build_chunk, tasks):
            done += 1
            yield result
    except Exception as exc:
        if not any("feature build failed at" in note for note in getattr(exc, "__notes__", ())):
            pending = "; ".join(describe_chunk(t.symbols) for t in tasks[done:])
            exc.add_note(f"feature build failed with chunks still running or queued: {pending}")
        raise


__all__ = [
    "CHUNKS_PER_WORKER",
    "ChunkResult",
    "ChunkTask",
    "Executor",
    "JoblibExecutor",
    "SymbolOutcome",
    "build_chunk",
    "describe_chunk",
    "run_chunks",
    "split_chunks",
]
