"""Several processes on one Optuna study per walk-forward window (``tuning.workers``).

The coordinator (the process running :func:`signals.ml.tuning.run_walk_forward`) does everything
it does with one worker; inside :func:`signals.ml.tuning.tune_window`, when ``workers > 1``:

* the trials still missing from the window's study (target - finished) are split into
  ``workers`` fixed quotas (:func:`split_quotas`), so the total is exact: no trial lost, none
  run beyond the target. Optuna's ``MaxTrialsCallback`` would overshoot (every process checks
  the count before its next trial), a fixed quota cannot;
* the coordinator runs quota 0 itself and hands the others to a pool of ``workers - 1``
  processes started with the ``spawn`` method (never ``fork``: the coordinator holds MLflow,
  pyarrow and OpenMP threads whose locks a forked child would inherit mid-use). The pool lives for
  the whole walk-forward, so the ~2-3 s interpreter start is paid once per run, not per window;
* every process loads the same study by name from the shared storage (trial numbers are
  allocated by the storage under a row lock on the study, so they are unique) and runs the one
  module-level objective, :class:`signals.ml.tuning.TrialObjective`, on the window's pickled
  fit/validation arrays;
* worker ``k`` samples with ``seed + k`` (the coordinator with ``seed``): the same seed in every
  process would make their TPE start-up trials identical parameter sets;
* trial reporting: a worker cannot use the coordinator's callback (an MLflow client with a
  background thread), so the caller passes a picklable *sink factory* that the
  worker calls (with its index) to build its own callback (for MLflow: a trial-run logger nested under the window
  run, see ``entrypoints.tune.MlflowTrialSink``); its ``close()`` is called when the quota is done;
* failures are loud: a worker that raises, or a worker process that dies, stops the coordinator
  after its current trial and raises :class:`TuneWorkerError` naming the worker and the study; an
  error in the coordinator tells the workers to stop after their current trial and waits for them.

With workers, the result of a window is no longer reproducible run to run (which process gets
which trial depends on timing); with ``workers=1`` nothing changes.

This module holds no MLflow code; it is importable in a fresh interpreter (the spawned workers
import it to unpickle their tasks).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from signals.errors import SignalsError

if TYPE_CHECKING:
    from signals.ml.tuning import TrialCallback, TrialObjective

log = logging.getLogger(__name__)

START_METHOD = "spawn"

#: a picklable callable, run in the worker with its index (1..workers-1), returning its trial callback
TrialSinkFactory = Callable[[int], "TrialCallback | None"]


class TuneWorkerError(SignalsError, RuntimeError):
    """A tuning worker process failed (raised an error or died); the tune run fails with it."""


def storage_problem(storage: str | None, workers: int) -> str | None:
    """Why ``storage`` cannot be shared by ``workers`` processes (None when it can)."""
    if workers <= 1:
        return None
    if not storage:
        return (f"tuning.workers={workers} needs a shared Optuna storage, but none is configured (in-memory "
                "storage lives in one process): set tuning.storage / --storage, e.g. "
                "postgresql://user@host:5432/optuna")
    if storage.startswith("sqlite") and (":memory:" in storage or storage.rstrip("/") in ("sqlite:", "sqlite://")):
        return (f"tuning.workers={workers} needs a shared Optuna storage, but {storage!r} is an in-memory SQLite "
                "database (one per process): use a file or, better, postgresql://user@host:5432/optuna")
    return None


def split_quotas(remaining: int, workers: int) -> list[int]:
    """``remaining`` trials over ``workers`` processes: sizes differ by at most one, sum exact,
    largest first (quota 0 is the coordinator's)."""
    if remaining < 0 or workers < 1:
        raise ValueError(f"split_quotas({remaining}, {workers})")
    base, extra = divmod(remaining, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


@dataclass(frozen=True)
class WorkerTask:
    """One worker's share of one window's study (pickled to the worker)."""

    worker: int  # 1..workers-1; 0 is the coordinator
    study_name: str
    storage: str
    sampler_seed: int
    quota: int
    objective: "TrialObjective"  # data + config, without a callback
    sink: TrialSinkFactory | None = None


# ------------------------------------------------------------------------------- worker side
_STOP: Any = None  # the pool's multiprocessing Event, set by the coordinator to stop early


def _init_worker(stop: Any) -> None:
    import optuna

    global _STOP
    _STOP = stop
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_quota(task: WorkerTask) -> list[int]:
    """Worker body: run ``task.quota`` trials of the study; return their trial numbers."""
    from signals.ml.tuning import create_study

    study = create_study(task.storage, task.study_name, task.sampler_seed, task.objective.config.report_every)
    on_trial = task.sink(task.worker) if task.sink is not None else None
    objective = task.objective.with_callback(on_trial)
    numbers: list[int] = []

    def after_trial(study: Any, trial: Any) -> None:
        numbers.append(int(trial.number))
        if _STOP is not None and _STOP.is_set():
            study.stop()

    try:
        study.optimize(objective, n_trials=task.quota, n_jobs=max(1, int(task.objective.config.n_jobs)),
                       callbacks=[after_trial], gc_after_trial=False, show_progress_bar=False)
    except BaseException:
        _close_quietly(on_trial)
        raise
    close = getattr(on_trial, "close", None)
    if close is not None:
        close()  # waits for the trial runs; re-raises a logging error
    return numbers


def _close_quietly(on_trial: Any) -> None:
    close = getattr(on_trial, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # noqa: BLE001 - already failing; keep the original error
        log.exception("closing the trial sink failed while handling another error")


# ------------------------------------------------------------------------------- coordinator side
def _failed(fut: Future) -> bool:
    return fut.done() and (fut.cancelled() or fut.exception() is not None)


class TuneWorkerPool:
    """``processes`` spawned worker processes shared by every window of a walk-forward run.

    Processes start on the first task (a fully resumed run never starts one). Use as a context
    manager: leaving it on an error tells running workers to stop after their current trial and
    waits for them, so nothing keeps logging into a window run that is being closed.
    """

    def __init__(self, processes: int, storage: str | None = None) -> None:
        if processes < 1:
            raise ValueError("a worker pool needs at least one process")
        self.processes = processes
        ctx = mp.get_context(START_METHOD)
        self._stop = ctx.Event()
        self._executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=processes, mp_context=ctx, initializer=_init_worker, initargs=(self._stop,)
        )
        if storage and storage.startswith("sqlite"):
            log.warning(
                "tuning with %d processes on a SQLite Optuna storage (%s): it works, but every write locks the "
                "whole file and busy processes may hit 'database is locked'; PostgreSQL is the intended storage "
                "for tuning.workers > 1 (e.g. --storage postgresql://user@host:5432/optuna)",
                processes + 1, storage,
            )

    def submit(self, task: WorkerTask) -> Future:
        if self._executor is None:
            raise RuntimeError("worker pool is closed")
        return self._executor.submit(run_quota, task)

    def stop(self) -> None:
        """Ask running workers to stop after their current trial."""
        self._stop.set()

    def close(self, *, failed: bool = False) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        if failed:
            self.stop()
        executor.shutdown(wait=True, cancel_futures=failed)

    def __enter__(self) -> "TuneWorkerPool":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(failed=exc_type is not None)

    # ------------------------------------------------------------------ one window
    def watcher(self, futures: list[Future]) -> Callable[[Any, Any], None]:
        """An Optuna callback for the coordinator's own optimize: stop once a worker failed."""

        def watch(study: Any, trial: Any) -> None:
            if any(_failed(f) for f in futures):
                study.stop()

        return watch

    def collect(self, futures: dict[Future, WorkerTask]) -> list[int]:
        """Wait for the window's workers; trial numbers they ran, or :class:`TuneWorkerError`."""
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if _failed(f)]
        if failed:
            self.stop()  # the others stop after their current trial
            wait(futures)
            fut = failed[0]
            task = futures[fut]
            exc = RuntimeError("its task was cancelled") if fut.cancelled() else fut.exception()
            raise TuneWorkerError(
                f"tuning worker {task.worker} (of {self.processes + 1} processes) failed on study "
                f"{task.study_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        numbers: list[int] = []
        for fut in futures:
            numbers.extend(fut.result())
        return numbers
