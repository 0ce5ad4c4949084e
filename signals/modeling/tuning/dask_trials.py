"""A window's Optuna trials on the workers of a Dask cluster (``compute.address``).

The local engine (:mod:`signals.modeling.tuning.parallel`) can only start processes on the
coordinator's machine. Here the coordinator keeps doing what it does (it creates the window's
study, owns the window's MLflow run) and hands the trials to the cluster:

* the window's :class:`~signals.modeling.tuning.objective.TrialObjective` (its fit/validation
  arrays and config; it pickles without its callback) is scattered once; the workers fetch it
  from each other, not once per task from the coordinator;
* ``n_trials`` become tasks of ``trials_per_task`` trials (default one). Each task loads the
  study by name from the shared storage (trial numbers are allocated there under a row lock, so
  they are unique across hosts) and runs ``optimize(objective, n_trials=q)``. One trial per
  task because Dask balances tasks, not trials: a slow host takes fewer, and a worker that dies
  mid-trial is rescheduled by the scheduler (``distributed.scheduler.allowed-failures``) at the
  cost of that one trial, whose Optuna record stays RUNNING and is never counted as finished;
* a task raising is not retried (a rerun could overshoot the quota); the first failure cancels
  the tasks not yet started and raises :class:`TuneWorkerError` naming the study;
* each task reports its trials through the caller's picklable *sink factory* (for MLflow:
  ``signals.lifecycle.tune.MlflowTrialSink``), called in the task with the task's index, so
  every trial is exactly one run nested under the window run, logged from the worker's host
  (which must reach the tracking server); the sink is closed before the task returns, so a
  logging failure fails the task.

The storage must be one every host reaches and that takes concurrent writers: PostgreSQL.
Each task's sampler is seeded ``seed + index``: the same seed everywhere would make the TPE
start-up trials identical parameter sets. As with local workers, which host runs which trial
depends on timing, so a window's result is not reproducible run to run.

No MLflow here; ``distributed`` and ``optuna`` are imported lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from signals.modeling.tuning.objective import TrialCallback, TrialObjective, TuneWorkerError, study_for

log = logging.getLogger(__name__)

#: a picklable callable, run in the task with its index, returning that task's trial callback
TrialSinkFactory = Callable[[int], "TrialCallback | None"]

#: Optuna storages every Dask worker can share
DASK_STORAGE_SCHEMES = ("postgresql", "postgres")


def dask_storage_problem(storage: str | None) -> str | None:
    """Why ``storage`` cannot hold a study whose trials run on a Dask cluster (None when it can)."""
    scheme = (storage or "").split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in DASK_STORAGE_SCHEMES:
        return None
    shown = "in-memory storage" if not storage else f"{scheme or storage}:// storage"
    return (f"tuning trials on a Dask cluster (compute.address) need an Optuna storage on PostgreSQL that every "
            f"worker host reaches; {shown} is not shared across hosts: set tuning.storage / --storage, e.g. "
            "postgresql://user@db-host:5432/optuna")


@dataclass(frozen=True)
class TrialTask:
    """One task's share of a window's study (pickled to a Dask worker; the objective travels apart)."""

    index: int  # 1.. ; 0 is the coordinator's own share, if it runs one
    study_name: str
    storage: str
    sampler_seed: int
    quota: int
    sink: TrialSinkFactory | None = None


def run_trial_task(task: TrialTask, objective: TrialObjective) -> list[int]:
    """Worker body: run ``task.quota`` trials of the study; return the numbers of those that finished."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # load_if_exists: the coordinator created the study; this loads it with the one sampler,
    # pruner and heartbeat definition (none of them is stored with a study)
    study = study_for(objective.config, task.study_name, task.sampler_seed)
    on_trial = task.sink(task.index) if task.sink is not None else None
    numbers: list[int] = []
    try:
        study.optimize(objective.with_callback(on_trial), n_trials=task.quota, n_jobs=1,
                       callbacks=[lambda s, t: numbers.append(int(t.number))], gc_after_trial=False,
                       show_progress_bar=False)
    except BaseException:
        _close(on_trial, quietly=True)
        raise
    _close(on_trial)  # waits for the trial runs; re-raises a logging error
    return numbers


def _close(on_trial: Any, quietly: bool = False) -> None:
    close = getattr(on_trial, "close", None)
    if close is None:
        return
    if not quietly:
        close()
        return
    try:
        close()
    except Exception:  # noqa: BLE001 - already failing; keep the original error
        log.exception("closing the trial sink failed while handling another error")


def split_tasks(n_trials: int, trials_per_task: int) -> list[int]:
    """``n_trials`` as task quotas of at most ``trials_per_task`` (sum exact)."""
    if n_trials < 0 or trials_per_task < 1:
        raise ValueError(f"split_tasks({n_trials}, {trials_per_task})")
    full, rest = divmod(n_trials, trials_per_task)
    return [trials_per_task] * full + ([rest] if rest else [])


def run_trials_on_dask(
    client: Any,
    study_name: str,
    storage: str,
    objective: TrialObjective,
    n_trials: int,
    *,
    sink: TrialSinkFactory | None = None,
    seed: int = 42,
    trials_per_task: int = 1,
    first_index: int = 1,
) -> list[int]:
    """Run ``n_trials`` trials of the existing study ``study_name`` on the cluster of ``client``
    (a ``distributed.Client``); return the finished trials' numbers (exactly ``n_trials``, distinct).

    ``sink`` builds each task's trial reporter (required when ``objective`` reports trials, so none
    goes unreported); task ``k`` samples with ``seed + k``, ``k`` from ``first_index``.
    Raises :class:`TuneWorkerError` for a storage the workers cannot share or a failed task.
    """
    from distributed import as_completed

    problem = dask_storage_problem(storage)
    if problem:
        raise TuneWorkerError(problem)
    if objective.on_trial is not None and sink is None:
        raise ValueError("run_trials_on_dask: trials are reported (on_trial) but no sink was given, so the trials "
                         "run on the cluster would go unreported")
    quotas = split_tasks(int(n_trials), int(trials_per_task))
    if not quotas:
        return []
    shipped = client.scatter(objective.with_callback(None), hash=False)
    tasks = [TrialTask(first_index + i, study_name, storage, seed + first_index + i, q, sink) for i, q in enumerate(quotas)]
    futures = {client.submit(run_trial_task, t, shipped, key=f"trials-{study_name}-{t.index}", pure=False, retries=0): t
               for t in tasks}
    numbers: list[int] = []
    try:
        for future in as_completed(list(futures), loop=client.loop):
            if future.status == "error":
                task, exc = futures[future], future.exception()
                raise TuneWorkerError(
                    f"tuning task {task.index} of {len(tasks)} on the Dask cluster failed on study {study_name!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            numbers.extend(future.result())
    finally:  # a failure stops the tasks not yet started (running trials finish on their own)
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        client.cancel([shipped])
    if len(numbers) != len(set(numbers)):
        raise TuneWorkerError(f"study {study_name}: trial numbers ran twice on the cluster: {sorted(numbers)}")
    if len(numbers) != n_trials:
        raise TuneWorkerError(f"study {study_name}: {len(numbers)} of {n_trials} trials finished on the cluster")
    return numbers


__all__ = ["DASK_STORAGE_SCHEMES", "TrialSinkFactory", "TrialTask", "dask_storage_problem", "run_trial_task",
           "run_trials_on_dask", "split_tasks"]
