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
3. **fill**: each worker computes (or reads from the cache) its symbols straight into their
   rows of that block; the parent wraps the block as the frame's data without a copy.

Where ``memfd_create`` does not exist (macOS, Windows) the values travel through the pipe.

Start method: ``fork`` when the caller runs no other Python thread (the CLI, scripts,
the benchmark): workers start in milliseconds and inherit the shared inputs unpickled.
Otherwise ``forkserver`` (``spawn`` on Windows): a forked child would inherit the locks of
threads (MLflow's, say) that were mid-use.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing as mp
import os
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import recv_handle, send_handle
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

    @property
    def rows(self) -> int:
        return len(self.dates)


class Job(Protocol):
    """The per-symbol work, in the order the runners call it.

    ``scan(symbol)`` (worker) loads what the symbol needs and reports its rows;
    ``prepare()`` (parent, while the workers scan) builds what all symbols share;
    ``context_for(symbols)`` (parent) is the part of it one worker's symbols need and
    ``receive(context)`` (worker) takes it; ``fill(symbol, out)`` (worker) writes the
    symbol's values into its ``(features, rows)`` slot of the final block and returns the
    final :class:`Scanned` (with how the values were obtained); ``finish()`` (worker) runs
    after its last fill, while the block is still mapped, and returns messages to report.
    ``forget(symbol)`` (worker) drops what ``scan`` kept for a symbol that another worker
    will fill instead.
    """

    def scan(self, symbol: str) -> Scanned: ...

    def forget(self, symbol: str) -> None: ...

    def prepare(self) -> None: ...

    def context_for(self, symbols: list[str]) -> Any: ...

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
    job.receive(job.context_for([s.symbol for s in ordered]))
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
        # scheduling loop below only waits on pipes, so the two barely share the GIL).
        with ThreadPoolExecutor(1, thread_name_prefix="signals-prepare") as prep:
            prepared = prep.submit(job.prepare)
            scans, scanned_by = _scan(symbols, conns, procs)
            _rebalance(scans, scanned_by, conns, procs)
            prepared.result()
        ordered, offsets, total = frame_order(scans)
        for i, conn in enumerate(conns):
            conn.send(("context", job.context_for([s for s, w in scanned_by.items() if w == i and s in offsets])))
        filled = _fill(conns, procs, n_features, total, {s.symbol: s for s in ordered}, offsets, progress)
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


def _chunk_size(n_symbols: int, n_workers: int) -> int:
    # Up to 8 symbols per message: small enough to balance the load near the end, large
    # enough that the messages cost nothing next to the work.
    return max(1, min(8, n_symbols // (n_workers * 8) or 1))


def _scan(symbols: Sequence[str], conns: list[Connection], procs: list[Any]) -> tuple[list[Scanned], dict[str, int]]:
    """Scans every symbol; returns the scans and which worker scanned (and will fill) each.

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
            conns[i].send(("scan", todo[:size]))
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
        conns[dst].send(("scan", [symbol for symbol, _ in items]))
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
        conns[worker].send(("forget", symbols))
    log.debug("feature build: %d symbol(s) moved between workers to even out the fill", len(moves))


def _fill(
    conns: list[Connection],
    procs: list[Any],
    n_features: int,
    total: int,
    scans: dict[str, Scanned],
    offsets: dict[str, int],
    progress: Callable[[str], None] | None,
) -> tuple[np.ndarray, list[str]]:
    """Runs the fill phase; updates ``scans`` in place with each symbol's outcome."""
    messages: list[str] = []
    fd = _memfd() if total else None
    try:
        if fd is None:
            block = np.empty((n_features, total))
            for conn in conns:
                conn.send(("fill_and_send", n_features, offsets))
        else:
            nbytes = n_features * total * _FLOAT.itemsize
            os.ftruncate(fd, nbytes)
            # The array keeps the mapping alive after the fd is closed.
            block = np.frombuffer(mmap.mmap(fd, nbytes), dtype=_FLOAT).reshape(n_features, total)
            for conn, proc in zip(conns, procs):
                conn.send(("fill", n_features, total, offsets))
                send_handle(conn, fd, proc.pid)
    finally:
        if fd is not None:
            os.close(fd)
    waiting = set(range(len(conns)))
    while waiting:
        i, msg = _next_message(conns, procs, waiting)
        if msg[0] == "filled":  # (symbol, status, messages, values or None); the dates came with the scan
            scanned = scans[msg[1]]
            scanned.status, scanned.messages = msg[2], msg[3]
            if msg[4] is not None:  # values sent through the pipe
                at = offsets[scanned.symbol]
                block[:, at : at + scanned.rows] = msg[4]
            if progress is not None:
                progress(scanned.symbol)
        elif msg[0] == "done":
            messages.extend(msg[1])
            waiting.discard(i)
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
            except EOFError:  # its end of the pipe closed: the worker is gone
                procs[i].join(timeout=5)
                raise WorkerFailure(f"feature worker {procs[i].pid} died (exit code {procs[i].exitcode})") from None
            if msg[0] == "error":
                exc = msg[1].__new__(msg[1])
                exc.args = msg[2]
                exc.__dict__.update(msg[3])
                raise exc
            if msg[0] == "crash":
                raise WorkerFailure(f"feature worker {procs[i].pid} failed:\n{msg[1]}")
            return i, msg
        dead = [procs[i] for i in among if not procs[i].is_alive() and not conns[i].poll()]
        if dead:  # exited with nothing left to read
            raise WorkerFailure(f"feature worker {dead[0].pid} died (exit code {dead[0].exitcode})")


# ----------------------------------------------------------------------------- worker side
def _worker_main(conn: Connection, job: Job, error_types: tuple[type[BaseException], ...]) -> None:
    mine: dict[str, int] = {}  # symbol -> rows, for the symbols this worker scanned
    try:
        while True:
            msg = conn.recv()
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
                elif kind == "fill":
                    n_features, total, offsets = msg[1], msg[2], msg[3]
                    fd = recv_handle(conn)
                    try:
                        block = mmap.mmap(fd, n_features * total * _FLOAT.itemsize)
                    finally:
                        os.close(fd)
                    out = np.frombuffer(block, dtype=_FLOAT).reshape(n_features, total)
                    for symbol, rows in mine.items():
                        if rows:
                            at = offsets[symbol]
                            done = job.fill(symbol, out[:, at : at + rows])
                            conn.send(("filled", symbol, done.status, done.messages, None))
                    messages = job.finish()  # may still read the block
                    del out
                    block.close()
                    mine.clear()
                    conn.send(("done", messages))
                elif kind == "fill_and_send":
                    n_features = msg[1]
                    for symbol, rows in mine.items():
                        if rows:
                            values = np.empty((n_features, rows))
                            done = job.fill(symbol, values)
                            conn.send(("filled", symbol, done.status, done.messages, values))
                    mine.clear()
                    conn.send(("done", job.finish()))
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
