"""Dask as the compute engine when ``compute.address`` names a scheduler (``local``: not used).

One client per scheduler address and process, opened on first use and kept: the feature build,
the tuning trials (:mod:`signals.modeling.tuning.dask_trials`) and the distributed final fit
(:mod:`signals.modeling.dask_fit`) all run on the same cluster through it.

:class:`DaskExecutor` is the feature build's executor protocol (``map(fn, tasks)``, results in
task order; see :mod:`signals.features.build`) on a client: ``client.map`` with ``retries``,
then each future's result in order. A task that raises is rerun up to ``retries`` times (a
flaky shared volume); a task whose worker *died* is rescheduled by the scheduler on another
worker anyway (``distributed.scheduler.allowed-failures``, default 3 deaths, then
``KilledWorker``). Both are safe for a chunk task: it publishes its cache segment by rename
or not at all, and a superseded segment is collected after the build.

What every worker needs: the same ``signals`` version (a chunk task refuses other feature
code), the data (a provider they can reach: ``sql``, or ``parquet`` on a shared path) and the
feature cache directory mounted at the same absolute path as on the coordinator.
``distributed`` is imported lazily: it is an optional dependency (``pip install 'signals[dask]'``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from signals.core.errors import SignalsError

if TYPE_CHECKING:
    from signals.settings.model import ComputeSettings

log = logging.getLogger("signals.compute")

T = TypeVar("T")
R = TypeVar("R")

LOCAL = "local"

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class ComputeError(SignalsError, RuntimeError):
    """The configured compute engine cannot be used (not installed, scheduler unreachable)."""


def is_local(compute: "ComputeSettings") -> bool:
    return compute.address == LOCAL


def client_for(address: str, timeout: float = 30.0) -> Any:
    """The process's ``distributed.Client`` for ``address`` (opened once, then reused)."""
    try:
        import distributed
    except ImportError:
        raise ComputeError(
            f"compute.address={address} needs dask.distributed, which is not installed: "
            "pip install 'signals[dask]' (or set compute.address: local)"
        ) from None
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status not in ("closed", "closing"):
            return client
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ComputeError(
                f"cannot reach the Dask scheduler at {address} within {timeout:.0f}s ({type(exc).__name__}: {exc}); "
                "start one (`dask scheduler`, then `dask worker <address>` on each host) or set compute.address: local"
            ) from None
        _clients[address] = client
        log.info("compute: connected to the Dask scheduler at %s (%d workers)", address, worker_count(client))
        return client


def close_clients() -> None:
    """Close every client this process opened (the cluster itself keeps running)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def worker_count(client: Any) -> int:
    """Workers the scheduler knows now (results of ``xgboost.dask`` depend on it: record it)."""
    return len(client.scheduler_info(n_workers=-1)["workers"])


def thread_count(client: Any) -> int:
    """Task slots of the cluster: the threads of all its workers."""
    return sum(int(w.get("nthreads", 1)) for w in client.scheduler_info(n_workers=-1)["workers"].values())


@dataclass
class DaskExecutor:
    """The feature build's executor on a Dask client: results in task order, failed tasks retried."""

    client: Any
    retries: int = 2

    def map(self, fn: Callable[[T], R], tasks: Iterable[T], /) -> Iterator[R]:
        futures = self.client.map(fn, list(tasks), retries=self.retries, pure=False)
        return self._in_order(futures)

    def _in_order(self, futures: list[Any]) -> Iterator[R]:
        """Each result fetched as soon as it is done (a result left on a worker is lost, and its
        task rerun, if that worker dies), handed out in task order."""
        from distributed import as_completed

        position = {f.key: i for i, f in enumerate(futures)}
        done: dict[int, Any] = {}
        next_out = 0
        try:
            for future in as_completed(futures, loop=self.client.loop):
                done[position[future.key]] = future.result()
                future.release()
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
        finally:  # a failure (or a caller that stops reading) cancels what has not run
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)

    @property
    def parallelism(self) -> int:
        """Task slots the chunks are cut for (at least 1)."""
        return max(1, thread_count(self.client))


def executor_for(compute: "ComputeSettings") -> DaskExecutor | None:
    """The Dask executor for ``compute`` settings; None when the work stays local."""
    if is_local(compute):
        return None
    return DaskExecutor(client_for(compute.address, compute.connect_timeout_s), retries=compute.retries)


__all__ = ["ComputeError", "DaskExecutor", "LOCAL", "client_for", "close_clients", "executor_for", "is_local",
           "thread_count", "worker_count"]
