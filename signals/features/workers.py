"""Runs the feature store's per-symbol work, in worker processes or in-process, in two phases.

Why not a ``ProcessPoolExecutor``: a full-universe build returns ~0.9 GB of float64
features. Pickling that back through a pipe, unpickling it and concatenating it in the
parent cost more than computing it, and every fresh page costs a fault on a VM. So:

1. **scan**: each symbol's inputs are loaded and checked and its cache entry looked up;
   workers report only the symbol's dates (rows), keeping what they loaded. Symbols are
   then moved between workers until each has about the same rows to fill (the receiver
   loads them again), because a worker fills what it scanned.
2. the parent now knows every symbol's place in the final frame and allocates the frame's
   block once: a Linux ``memfd`` shared with the workers.
3. **fill**: handed out a few symbols at a time (a worker that runs out takes the busiest
   one's remaining symbols), each worker computes (or reads from the cache) its symbols
   straight into their rows of that block; the parent wraps the block as the frame's data
   without a copy.

Where ``memfd_create`` does not exist (macOS, Windows) the values travel through the pipe.

Start method: ``fork`` when the caller runs no other Python thread (the CLI, scripts,
the benchmark): workers start in milliseconds, with the job (provider, settings) inherited.
Otherwise ``forkserver`` (``spawn`` on Windows): a forked child would inherit the locks of
threads (MLflow's, say) that were mid-use.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing as mp
import os
import pickle
import queue
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler, recv_handle, send_handle
from typing import Any, Callable, Protocol, Sequence

import numpy as np

_FLOAT = np.dtype(np.float64)
log = logging.getLogger(__name__)


@dataclass
class Scanned:
    """One symbol after the scan (and, updated, after the fill): its dates (int64 ns) in the frame."""

    symbol: str
    dates: np.ndarray
    status: str
    messages: list[str] = field(default_factory=list)
    #: bar fields the symbol has no values for (close-only bars: open, high, low, volume)
    absent_fields: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return len(self.dates)


class Job(Protocol):
    """The per-symbol work, in the order the runners call it.

    ``scan(symbol)`` (worker) loads what the symbol needs and reports its rows;
    ``prepare()`` (parent, while the workers scan) builds what all symbols share;
    ``context()`` (parent) is what the workers need of it for any symbol (a worker may
    fill symbols another one scanned) and ``receive(context)`` (worker) takes it;
    ``fill(symbol, out)`` (worker) writes the symbol's values into its ``(features, rows)``
    slot of the final block and returns the final :class:`Scanned` (with how the values
    were obtained); ``finish()`` (worker) runs after its last fill, while the block is
    still mapped, and returns messages to report.
    ``forget(symbol)`` (worker) drops what ``scan`` kept for a symbol that another worker
    will fill instead.
    """

    def scan(self, symbol: str) -> Scanned: ...

    def forget(self, symbol: str) -> None: ...

    def prepare(self) -> None: ...

    def context(self) -> Any: ...

    def receive(self, context: Any) -> None: ...

    def fill(self, symbol: str, out: np.ndarray) -> Scanned: ...

    def finish(self) -> list[str]: ...


class WorkerFailure(Exception):
    """A worker raised something that is not a user-facing error (a bug), or died."""


def start_method() -> str:
    """``fork`` when it is safe (no other Python thread), else ``forkserver`` / ``spawn``."""
    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def frame_order(scans: list[Scanned]) -> tuple[list[Scanned], dict[str, int], int]:
    """Symbols with rows, sorted (the frame's order), their first row, and the total rows."""
    ordered = sorted((s for s in scans if s.rows), key=lambda s: s.symbol)
    offsets: dict[str, int] = {}
    at = 0
    for s in ordered:
        offsets[s.symbol] = at
        at += s.rows
    return ordered, offsets, at


def run_serial(
    symbols: Sequence[str], job: Job, n_features: int, progress: Callable[[str], None] | None = None
) -> tuple[list[Scanned], np.ndarray, list[str]]:
    """Both phases in this process; same result as :func:`run_pool`."""
    scans = [job.scan(s) for s in symbols]
    job.prepare()
    ordered, offsets, total = frame_order(scans)
    job.receive(job.context())
    block = np.empty((n_features, total))
    filled = {}
    for s in ordered:
        filled[s.symbol] = job.fill(s.symbol, block[:, offsets[s.symbol] : offsets[s.symbol] + s.rows])
        if progress is not None:
            progress(s.symbol)
    return [filled[s.symbol] for s in ordered], block, job.finish()


# ----------------------------------------------------------------------------- parent side
def run_pool(
    symbols: Sequence[str],
    n_workers: int,
    job: Job,
    error_types: tuple[type[BaseException], ...],
    n_features: int,
    progress: Callable[[str], None] | None = None,
    preload: Sequence[str] = (),
) -> tuple[list[Scanned], np.ndarray, list[str]]:
    """Both phases in ``n_workers`` processes.

    Returns the symbols with rows in frame order, one ``(n_features, total_rows)`` block
    holding their values in that order, and the workers' ``finish()`` messages. An
    exception of ``error_types`` raised by the job is re-raised here with its type;
    anything else becomes :class:`WorkerFailure`.
    """
    method = start_method()
    log.info("feature build: %d worker processes (%s)", n_workers, method)
    ctx = mp.get_context(method)
    if method == "forkserver" and preload:
        ctx.set_forkserver_preload(list(preload))
    procs: list[Any] = []
    conns: list[Connection] = []
    try:
        for _ in range(n_workers):
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker_main, args=(child_end, job, error_types), daemon=True)
            proc.start()
            child_end.close()
            procs.append(proc)
            conns.append(parent_end)
        # The parent prepares the shared inputs in a thread while the workers scan (the
        # scheduling loop below only waits on pipes, so the two barely share the GIL), and
        # sends them as soon as they are ready: a worker takes them between scan chunks.
        sent: list[bool] = []

        def send_context() -> None:
            if not sent and prepared.done():
                prepared.result()  # its exception, if it raised
                _broadcast(conns, procs, "context", job.context())
                sent.append(True)

        with ThreadPoolExecutor(1, thread_name_prefix="signals-prepare") as prep:
            prepared = prep.submit(job.prepare)
            scans, scanned_by = _scan(symbols, conns, procs, send_context)
            _rebalance(scans, scanned_by, conns, procs)
            prepared.result()
            send_context()
        ordered, offsets, total = frame_order(scans)
        filled = _fill(conns, procs, n_features, total, {s.symbol: s for s in ordered}, offsets, scanned_by, progress)
        for conn in conns:
            conn.send(("stop",))
        for proc in procs:
            proc.join(timeout=10)
        return ordered, filled[0], filled[1]
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in conns:
            conn.close()


def _broadcast(conns: list[Connection], procs: list[Any], kind: str, payload: Any) -> None:
    """Sends every worker ``(kind, payload)``, pickled once.

    Through a memfd where there is one: the shared inputs are ~10 MB, and pushing them
    through each worker's socket took ~25 ms per worker while the fill waited for them.
    """
    fd = _memfd()
    if fd is None:
        message = ForkingPickler.dumps((kind, payload))
        for i in range(len(conns)):
            _send(conns, procs, i, message)
        return
    try:
        data = ForkingPickler.dumps(payload)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        for i in range(len(conns)):
            _send(conns, procs, i, (f"{kind}@fd", len(data)), fd)
    finally:
        os.close(fd)


def _chunk_size(n_symbols: int, n_workers: int, largest: int = 8) -> int:
    # Up to `largest` symbols per message: small enough to balance the load near the end,
    # large enough that the messages cost nothing next to the work.
    return max(1, min(largest, n_symbols // (n_workers * 8) or 1))


def _scan(
    symbols: Sequence[str], conns: list[Connection], procs: list[Any], between: Callable[[], None] = lambda: None
) -> tuple[list[Scanned], dict[str, int]]:
    """Scans every symbol; returns the scans and which worker scanned (and will fill) each.
    ``between`` runs after every reply (the caller's chance to send something meanwhile).

    Each worker keeps two chunks queued and answers a chunk with one message: while the
    parent's prepare thread holds the GIL the main thread may answer late, and a worker
    that had to wait for its next chunk would sit idle.
    """
    todo = list(symbols)
    size = _chunk_size(len(todo), len(conns))
    queued = [0] * len(conns)
    scans: list[Scanned] = []
    scanned_by: dict[str, int] = {}

    def feed(i: int) -> None:
        if todo:
            _send(conns, procs, i, ("scan", todo[:size]))
            del todo[:size]
            queued[i] += 1

    for _ in range(2):
        for i in range(len(conns)):
            feed(i)
    while any(queued):
        i, msg = _next_message(conns, procs, {k for k, q in enumerate(queued) if q})
        if msg[0] == "scanned":
            for scanned in msg[1]:
                scans.append(scanned)
                scanned_by[scanned.symbol] = i
            queued[i] -= 1
            feed(i)
        between()
    return scans, scanned_by


def balance_moves(rows: dict[str, int], owner: dict[str, int], n_workers: int) -> list[tuple[str, int, int]]:
    """``(symbol, from_worker, to_worker)`` moves that even out the workers' rows to fill.

    The scan hands out symbols to whichever worker asks first, so a worker that shared its
    core with the parent's prepare ends up with far fewer symbols (188 against 312 in one
    measured build) and, since a worker fills what it scanned, idles for a second while the
    other finishes. Rows are what the fill costs (computing or copying), so they are what
    is balanced. Each move takes the largest symbol no bigger than half the busiest and
    idlest workers' gap, so the gap only shrinks and never flips: it stops within about
    one symbol of even, with few moves (each costs the receiver a re-read of the bars).
    """
    owned: list[list[str]] = [[] for _ in range(n_workers)]
    for symbol, worker in owner.items():
        if rows.get(symbol, 0):
            owned[worker].append(symbol)
    load = [sum(rows[s] for s in mine) for mine in owned]
    moves: list[tuple[str, int, int]] = []
    while True:
        busy = max(range(n_workers), key=load.__getitem__)
        idle = min(range(n_workers), key=load.__getitem__)
        half_gap = (load[busy] - load[idle]) // 2
        fits = [s for s in owned[busy] if rows[s] <= half_gap]
        if not fits:
            return moves
        symbol = max(fits, key=rows.__getitem__)
        owned[busy].remove(symbol)
        owned[idle].append(symbol)
        load[busy] -= rows[symbol]
        load[idle] += rows[symbol]
        moves.append((symbol, busy, idle))


def _rebalance(scans: list[Scanned], scanned_by: dict[str, int], conns: list[Connection], procs: list[Any]) -> None:
    """Applies :func:`balance_moves`: the receiver scans the symbol again (while the parent
    still prepares, so mostly for free), then the sender forgets it. A symbol whose re-read
    bars have other dates (the file changed in between) stays where it was."""
    by_symbol = {s.symbol: s for s in scans}
    moves = balance_moves({s: v.rows for s, v in by_symbol.items()}, scanned_by, len(conns))
    if not moves:
        return
    to: dict[int, list[tuple[str, int]]] = {}
    for symbol, src, dst in moves:
        to.setdefault(dst, []).append((symbol, src))
    for dst, items in to.items():
        _send(conns, procs, dst, ("scan", [symbol for symbol, _ in items]))
    dropped: dict[int, list[str]] = {}
    waiting = set(to)
    while waiting:
        dst, msg = _next_message(conns, procs, waiting)
        if msg[0] != "scanned":
            continue
        waiting.discard(dst)
        src_of = dict(to[dst])
        for again in msg[1]:
            moved = np.array_equal(again.dates, by_symbol[again.symbol].dates)
            dropped.setdefault(src_of[again.symbol] if moved else dst, []).append(again.symbol)
            if moved:
                scanned_by[again.symbol] = dst
    for worker, symbols in dropped.items():
        _send(conns, procs, worker, ("forget", symbols))
    log.debug("feature build: %d symbol(s) moved between workers to even out the fill", len(moves))


def _fill(
    conns: list[Connection],
    procs: list[Any],
    n_features: int,
    total: int,
    scans: dict[str, Scanned],
    offsets: dict[str, int],
    scanned_by: dict[str, int],
    progress: Callable[[str], None] | None,
) -> tuple[np.ndarray, list[str]]:
    """Runs the fill phase; updates ``scans`` in place with each symbol's outcome.

    Each worker is handed its own symbols a few at a time (two chunks queued, so it never
    waits for this process). A worker that runs out steals undispatched symbols from the
    worker with the most left: it reads their inputs again, which costs a fraction of
    filling them, so a worker slowed by the host or a heavier share cannot hold the
    build up by more than a chunk.
    """
    messages: list[str] = []
    fd = _memfd() if total else None
    try:
        if fd is None:
            block = np.empty((n_features, total))
            for i in range(len(conns)):
                _send(conns, procs, i, ("block", n_features, None, offsets))
        else:
            nbytes = n_features * total * _FLOAT.itemsize
            os.ftruncate(fd, nbytes)
            # The array keeps the mapping alive after the fd is closed.
            block = np.frombuffer(mmap.mmap(fd, nbytes), dtype=_FLOAT).reshape(n_features, total)
            for i in range(len(conns)):
                _send(conns, procs, i, ("block", n_features, total, offsets), fd)
    finally:
        if fd is not None:
            os.close(fd)
    queues: list[list[str]] = [[] for _ in conns]
    for symbol in offsets:  # frame order
        queues[scanned_by[symbol]].append(symbol)
    size = _chunk_size(len(offsets), len(conns), largest=4)
    in_flight = [0] * len(conns)  # symbols sent to a worker and not yet filled
    stolen_from: dict[str, int] = {}

    def feed(i: int) -> None:
        while in_flight[i] < 2 * size:
            if queues[i]:
                chunk = queues[i][:size]
                del queues[i][:size]
                _send(conns, procs, i, ("fill", chunk))
            else:
                victim = max(range(len(conns)), key=lambda k: len(queues[k]))
                if not queues[victim]:
                    return
                chunk = queues[victim][-size:]
                del queues[victim][-size:]
                for symbol in chunk:
                    stolen_from[symbol] = victim
                _send(conns, procs, i, ("steal", [(symbol, scans[symbol].dates) for symbol in chunk]))
            in_flight[i] += len(chunk)

    finishing: set[int] = set()
    done: set[int] = set()

    def finish_idle() -> None:
        # Once nothing is left to hand out (and no steal can bounce back), an idle worker
        # writes its last segment while the others fill their last symbols.
        if any(queues) or stolen_from:
            return
        for k in range(len(conns)):
            if k not in finishing and not in_flight[k]:
                _send(conns, procs, k, ("finish",))
                finishing.add(k)

    for i in range(len(conns)):
        feed(i)
    finish_idle()
    while len(done) < len(conns):
        i, msg = _next_message(conns, procs, set(range(len(conns))) - done)
        if msg[0] == "done":
            messages.extend(msg[1])
            done.add(i)
            continue
        if msg[0] == "filled":  # (symbol, status, messages, values or None); the dates came with the scan
            scanned = scans[msg[1]]
            scanned.status, scanned.messages = msg[2], msg[3]
            if msg[4] is not None:  # values sent through the pipe
                at = offsets[scanned.symbol]
                block[:, at : at + scanned.rows] = msg[4]
            if scanned.symbol in stolen_from:  # the owner can drop what it loaded
                _send(conns, procs, stolen_from.pop(scanned.symbol), ("forget", [scanned.symbol]))
            if progress is not None:
                progress(scanned.symbol)
        elif msg[0] == "unstolen":  # its inputs changed since the scan: the owner fills it
            queues[stolen_from.pop(msg[1])].insert(0, msg[1])
        in_flight[i] -= 1
        for k in (i, *range(len(conns))):
            if k not in finishing:
                feed(k)
        finish_idle()
    return block, messages


def _memfd() -> int | None:
    """A new memfd, or None where there is none (macOS) or a sandbox forbids it (seccomp)."""
    if not hasattr(os, "memfd_create"):
        return None
    try:
        return os.memfd_create("signals-features", os.MFD_CLOEXEC)
    except OSError as exc:
        log.info("memfd_create unavailable (%s); feature values come back through pipes", exc)
        return None


def _next_message(conns: list[Connection], procs: list[Any], among: set[int]) -> tuple[int, tuple]:
    """The next message from one of the workers in ``among``; raises on failures and deaths."""
    while True:
        by_handle: dict[Any, int] = {}
        for i in among:
            by_handle[conns[i]] = i
            by_handle[procs[i].sentinel] = i
        for handle in wait(list(by_handle)):
            i = by_handle[handle]
            if not conns[i].poll():
                continue
            try:
                msg = conns[i].recv()
            except (EOFError, ConnectionResetError):  # its end of the pipe closed: the worker is gone
                raise _died(procs[i]) from None
            _raise_reported(msg, procs[i])
            return i, msg
        dead = [procs[i] for i in among if not procs[i].is_alive() and not conns[i].poll()]
        if dead:  # exited with nothing left to read
            raise _died(dead[0])


def _raise_reported(msg: tuple, proc: Any) -> None:
    """Raises what a worker reported as its last message (an error or a crash), if it did."""
    if msg[0] == "error":
        exc = msg[1].__new__(msg[1])
        exc.args = msg[2]
        exc.__dict__.update(msg[3])
        raise exc
    if msg[0] == "crash":
        raise WorkerFailure(f"feature worker {proc.pid} failed:\n{msg[1]}")


def _died(proc: Any) -> WorkerFailure:
    proc.join(timeout=5)
    return WorkerFailure(f"feature worker {proc.pid} died (exit code {proc.exitcode})")


def _send(conns: list[Connection], procs: list[Any], i: int, msg: tuple | memoryview, fd: int | None = None) -> None:
    """Sends worker ``i`` a message (bytes: already pickled) and, if given, a file descriptor.

    A worker stops after reporting an error, so a broken pipe usually means a report is
    waiting: that is raised, not the pipe error.
    """
    try:
        if isinstance(msg, (bytes, memoryview)):
            conns[i].send_bytes(msg)
        else:
            conns[i].send(msg)
        if fd is not None:
            send_handle(conns[i], fd, procs[i].pid)
    except (BrokenPipeError, ConnectionResetError):
        try:
            while conns[i].poll():
                _raise_reported(conns[i].recv(), procs[i])
        except (EOFError, OSError):
            pass
        raise _died(procs[i]) from None


# ----------------------------------------------------------------------------- worker side
class _Slots:
    """A worker's view of the final block: fills a symbol into its slot, or (no memfd)
    into a fresh array that is sent back with the reply."""

    def __init__(self, n_features: int, total: int | None, offsets: dict[str, int], fd: int | None) -> None:
        self.n_features, self.offsets = n_features, offsets
        self.mapping: mmap.mmap | None = None
        self.out: np.ndarray | None = None
        if total is not None and fd is not None:
            try:
                self.mapping = mmap.mmap(fd, n_features * total * _FLOAT.itemsize)
            finally:
                os.close(fd)
            self.out = np.frombuffer(self.mapping, dtype=_FLOAT).reshape(n_features, total)

    def fill(self, job: Job, symbol: str, rows: int) -> tuple:
        if self.out is None:
            values = np.empty((self.n_features, rows))
            done = job.fill(symbol, values)
            return ("filled", symbol, done.status, done.messages, values)
        at = self.offsets[symbol]
        done = job.fill(symbol, self.out[:, at : at + rows])
        return ("filled", symbol, done.status, done.messages, None)

    def close(self) -> None:
        self.out = None
        if self.mapping is not None:
            self.mapping.close()


def _read_messages(conn: Connection, inbox: "queue.SimpleQueue[tuple | None]") -> None:
    """The worker's reader thread: takes every message off the pipe as it arrives.

    The parent may send something large (the shared inputs) while this worker is sending
    a reply; if neither side read until its own send finished, both would wait forever.
    A "block" message is followed by its file descriptor, which is taken here too, and a
    "<kind>@fd" message (see :func:`_broadcast`) by a memfd holding its pickled payload.
    """
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "block":
                msg = (*msg, recv_handle(conn) if msg[2] is not None else None)
            elif msg[0].endswith("@fd"):
                fd = recv_handle(conn)
                try:
                    with mmap.mmap(fd, msg[1], prot=mmap.PROT_READ) as data:
                        msg = (msg[0][: -len("@fd")], pickle.loads(data))
                finally:
                    os.close(fd)
            inbox.put(msg)
            if msg[0] == "stop":
                return
    except (EOFError, OSError):  # the parent is gone
        inbox.put(None)
    except Exception:  # noqa: BLE001 - e.g. a payload that does not unpickle: the main loop reports it
        inbox.put(("unreadable", traceback.format_exc()))


def _worker_main(conn: Connection, job: Job, error_types: tuple[type[BaseException], ...]) -> None:
    mine: dict[str, int] = {}  # symbol -> rows, for the symbols this worker scanned
    slots: _Slots | None = None
    inbox: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
    threading.Thread(target=_read_messages, args=(conn, inbox), name="signals-inbox", daemon=True).start()
    try:
        while True:
            msg = inbox.get()
            if msg is None:
                return
            kind = msg[0]
            try:
                if kind == "scan":
                    chunk = [job.scan(symbol) for symbol in msg[1]]
                    for scanned in chunk:
                        mine[scanned.symbol] = scanned.rows
                    conn.send(("scanned", chunk))
                elif kind == "forget":
                    for symbol in msg[1]:
                        mine.pop(symbol, None)
                        job.forget(symbol)
                elif kind == "context":
                    job.receive(msg[1])
                elif kind == "block":
                    slots = _Slots(msg[1], msg[2], msg[3], msg[4])
                elif kind == "fill":
                    assert slots is not None, "block first"
                    for symbol in msg[1]:
                        conn.send(slots.fill(job, symbol, mine.pop(symbol)))
                elif kind == "steal":  # another worker's symbols: load them first
                    assert slots is not None, "block first"
                    for symbol, dates in msg[1]:
                        if np.array_equal(job.scan(symbol).dates, dates):
                            conn.send(slots.fill(job, symbol, len(dates)))
                        else:
                            job.forget(symbol)
                            conn.send(("unstolen", symbol))
                elif kind == "finish":
                    messages = job.finish()  # may still read the block
                    if slots is not None:
                        slots.close()
                        slots = None
                    conn.send(("done", messages))
                elif kind == "unreadable":
                    raise RuntimeError(f"could not read a message from the parent:\n{msg[1]}")
                elif kind == "stop":
                    return
            except error_types as exc:
                # Sent as parts: unpickling an exception re-runs its __init__, which fails
                # for exceptions with keyword-only arguments.
                conn.send(("error", type(exc), exc.args, dict(exc.__dict__)))
                return
    except (EOFError, KeyboardInterrupt):
        return
    except BaseException:  # noqa: BLE001 - a bug: report it with its traceback
        try:
            conn.send(("crash", traceback.format_exc()))
        except Exception:  # noqa: BLE001 - the parent is gone
            pass
