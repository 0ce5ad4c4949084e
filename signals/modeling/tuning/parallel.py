"""Running one window's study: in this process, or with several processes on it (``tuning.workers``).

:func:`tune_window` runs (or resumes) a window's study up to its trial count; :func:`fixed_window`
skips the search (fixed params, rounds by early stopping). With ``workers > 1``:

The coordinator (the process running :func:`signals.modeling.tuning.walk_forward.run_walk_forward`) does everything
it does with one worker; inside :func:`signals.modeling.tuning.walk_forward.tune_window`, when ``workers > 1``:

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
  module-level objective, :class:`signals.modeling.tuning.walk_forward.TrialObjective`, on the window's pickled
  fit/validation arrays;
* worker ``k`` samples with ``seed + k`` (the coordinator with ``seed``): the same seed in every
  process would make their TPE start-up trials identical parameter sets;
* trial reporting: a worker cannot use the coordinator's callback (an MLflow client with a
  background thread), so the caller passes a picklable *sink factory* that the
  worker calls (with its index) to build its own callback (for MLflow: a trial-run logger nested under the window
  run, see ``signals.lifecycle.tune.MlflowTrialSink``); its ``close()`` is called when the quota is done;
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
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from signals.modeling.model import InsufficientDataError, MLPipeline, xgb_params_from
from signals.modeling.splits import frame_holdout_split
from signals.modeling.tuning.dask_trials import run_trials_on_dask
from signals.modeling.tuning.objective import (
    SEARCH_SPACE,
    TrialCallback,
    TrialObjective,
    TuneConfig,
    TuneWorkerError,
    WindowTuning,
    finished_trials,
    params_key,
    process_cpu_seconds,
    study_for,
    symbol_subsample,
)

log = logging.getLogger(__name__)

START_METHOD = "spawn"

#: a picklable callable, run in the worker with its index (1..workers-1), returning its trial callback
TrialSinkFactory = Callable[[int], "TrialCallback | None"]


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

    study = study_for(task.objective.config, task.study_name, task.sampler_seed)
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


def tune_window(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    config: TuneConfig,
    study_name: str,
    n_trials: int | None = None,
    on_trial: TrialCallback | None = None,
    worker_sink: TrialSinkFactory | None = None,
    pool: TuneWorkerPool | None = None,
    warm_start: Sequence[dict[str, Any]] = (),
    dask_client: Any = None,
) -> WindowTuning:
    """Run (or resume) the window's study up to ``n_trials`` finished trials; return its best.

    ``warm_start``: trial params (as sampled) enqueued before TPE samples anything, at most
    ``config.warm_start_trials`` of them (the previous window's best). When
    ``config.two_fidelity(n_trials)``, the trials first run in a companion study
    (``<study_name>-lo<pct>``) on a symbol subsample of the fit rows; its ``promote_top`` best
    are then re-run on every fit row in the window's own study, whose best is the result.

    With ``config.workers > 1`` the missing trials of each study are split over this process and
    ``workers - 1`` worker processes (``pool``, or a pool opened for this call); ``worker_sink``
    builds each worker's trial callback (required when ``on_trial`` is given, so that no trial
    goes unreported). With ``dask_client`` (a ``distributed.Client``: ``compute.address``) the
    trials run as tasks on the cluster instead (:mod:`signals.modeling.tuning.dask_trials`); the
    CPU seconds reported are then the coordinator's only.
    """
    from optuna.trial import TrialState

    t0, cpu0 = time.perf_counter(), process_cpu_seconds()
    y = np.asarray(y, dtype=np.int64)
    fit_idx, val_idx, val_start = frame_holdout_split(
        X, fraction=config.validation_fraction, horizon=config.horizon, embargo_days=config.embargo_days
    )
    if len(fit_idx) < config.min_training_samples:
        raise InsufficientDataError(
            f"window has {len(fit_idx)} rows to fit on after the validation slice "
            f"(need ml.min_training_samples={config.min_training_samples})"
        )
    if len(val_idx) < 10:
        raise InsufficientDataError(f"validation slice has {len(val_idx)} rows; need at least 10")
    X_fit, y_fit, X_val, y_val = X.iloc[fit_idx], y[fit_idx], X.iloc[val_idx], y[val_idx]
    objective = TrialObjective(X_fit, y_fit, X_val, y_val, config, config.threads_per_trial(), on_trial)
    target = int(n_trials if n_trials is not None else config.n_trials)
    warm = [dict(p) for p in warm_start][: int(config.warm_start_trials)]

    study = study_for(config, study_name)
    low_done: list[Any] = []
    low_ranked: list[Any] = []
    if config.two_fidelity(target, _n_symbols(X_fit.index)):
        sub = symbol_subsample(X_fit.index, config.fidelity_rows, config.seed)
        low_objective = TrialObjective(X_fit.iloc[sub], y_fit[sub], X_val, y_val, config, config.threads_per_trial(),
                                       on_trial, fidelity=len(sub) / max(1, len(fit_idx)))
        low = study_for(config, f"{study_name}-lo{round(100 * config.fidelity_rows):02d}")
        _enqueue(low, warm)
        _run_study(low, low_objective, target, config, worker_sink, pool, dask_client)
        low_done = finished_trials(low)
        low_ranked = _ranked(low_done)
        promoted = _distinct(low_ranked)[: int(config.promote_top)]
        _enqueue(study, promoted)
        resumed = _run_study(study, objective, len(promoted), config, worker_sink, pool, dask_client)
    else:
        _enqueue(study, warm)
        resumed = _run_study(study, objective, target, config, worker_sink, pool, dask_client)
    done = finished_trials(study)
    complete = _ranked(done)
    if not complete:
        raise InsufficientDataError(f"study {study_name}: no trial completed (all {len(done)} pruned or failed)")
    best = complete[0]
    n_rounds = int(best.user_attrs.get("n_rounds", best.params["n_estimators"]))
    best_params = {k: best.params[k] for k in SEARCH_SPACE}
    best_params["n_estimators"] = n_rounds
    top = _distinct([*complete, *low_ranked])
    return WindowTuning(
        study_name=study_name,
        best_params=best_params,
        best_value=float(best.value),
        best_trial=int(best.number),
        n_rounds=n_rounds,
        n_trials_total=len(done) + len(low_done),
        n_trials_run=len(done) - resumed,
        n_trials_resumed=resumed,
        n_pruned=sum(1 for t in [*done, *low_done] if t.state == TrialState.PRUNED),
        fit_rows=len(fit_idx),
        validation_rows=len(val_idx),
        validation_start=val_start.date().isoformat(),
        seconds=time.perf_counter() - t0,
        trial_params={k: best.params[k] for k in SEARCH_SPACE},
        n_trials_target=target,
        n_warm_started=len(warm),
        n_low_fidelity=len(low_done),
        cpu_seconds=process_cpu_seconds() - cpu0,
        top_trials=top[: max(5, int(config.warm_start_trials))],
        full_values={params_key(t.params): (float(t.value), int(t.user_attrs.get("n_rounds", 0))) for t in complete},
    )


def _n_symbols(index: pd.Index) -> int:
    return int((index.get_level_values(0) if isinstance(index, pd.MultiIndex) else index).nunique())


def _ranked(trials: list[Any]) -> list[Any]:
    """The completed trials, best (lowest validation log-loss) first."""
    from optuna.trial import TrialState

    return sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)


def _distinct(trials: list[Any]) -> list[dict[str, Any]]:
    """The trials' search-space params in order, each parameter set once."""
    seen: set[str] = set()
    out = []
    for t in trials:
        p = {k: t.params[k] for k in SEARCH_SPACE}
        key = params_key(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _enqueue(study: Any, params: Sequence[dict[str, Any]]) -> None:
    """Queue trials with fixed params ahead of the sampler (skipped if the study already has them:
    a resumed window does not run them twice)."""
    for p in params:
        study.enqueue_trial({k: p[k] for k in SEARCH_SPACE if k in p}, skip_if_exists=True)


def _run_study(study: Any, objective: TrialObjective, target: int, config: TuneConfig,
               worker_sink: TrialSinkFactory | None, pool: TuneWorkerPool | None, dask_client: Any = None) -> int:
    """Run ``study`` up to ``target`` finished trials; return how many it had already (resumed)."""
    from optuna.trial import TrialState

    resumed = len(finished_trials(study))
    remaining = max(0, target - resumed)
    # enqueued (warm-start, promoted) trials first, one at a time, when several runners share a
    # SQLite storage: taking a waiting trial is not atomic there (SQLite ignores FOR UPDATE), and
    # two runners could run, and tell, the same one. PostgreSQL locks the row.
    concurrent = int(config.n_jobs) > 1 or config.workers > 1
    sqlite = str(config.storage or "").startswith("sqlite")
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) if concurrent and sqlite else 0
    if remaining and waiting:
        first = min(waiting, remaining)
        study.optimize(objective, n_trials=first, n_jobs=1, gc_after_trial=False, show_progress_bar=False)
        remaining -= first
    if remaining and dask_client is not None:
        run_trials_on_dask(dask_client, study.study_name, str(config.storage), objective, remaining,
                           sink=worker_sink, seed=config.seed)
    elif remaining and config.workers > 1:
        _optimize_with_workers(study, objective, remaining, config, study.study_name, worker_sink, pool)
    elif remaining:
        study.optimize(objective, n_trials=remaining, n_jobs=max(1, int(config.n_jobs)), gc_after_trial=False,
                       show_progress_bar=False)
    return resumed


def fixed_window(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], *, config: TuneConfig) -> WindowTuning:
    """No search: ``params`` as given, rounds by early stopping on the same validation slice
    tuning would use (the train step's walk-forward when no tune run exists)."""
    t0 = time.perf_counter()
    y = np.asarray(y, dtype=np.int64)
    fit_idx, val_idx, val_start = frame_holdout_split(
        X, fraction=config.validation_fraction, horizon=config.horizon, embargo_days=config.embargo_days)
    if len(fit_idx) < config.min_training_samples:
        raise InsufficientDataError(
            f"window has {len(fit_idx)} rows to fit on after the validation slice "
            f"(need ml.min_training_samples={config.min_training_samples})")
    if len(val_idx) < 10:
        raise InsufficientDataError(f"validation slice has {len(val_idx)} rows; need at least 10")
    pipe = MLPipeline(params, horizon=config.horizon, min_training_samples=1, seed=config.seed,
                      n_jobs=config.threads(), class_weight=config.class_weight)
    m = pipe.train(X.iloc[fit_idx], y[fit_idx], eval_set=(X.iloc[val_idx], y[val_idx]),
                   early_stopping_rounds=config.early_stopping_rounds)
    given = xgb_params_from(params)
    return WindowTuning(
        study_name="", best_params={**given, "n_estimators": int(m["n_rounds"])}, best_value=float(m["val_log_loss"]),
        best_trial=-1, n_rounds=int(m["n_rounds"]), n_trials_total=0, n_trials_run=0, n_trials_resumed=0,
        n_pruned=0, fit_rows=len(fit_idx), validation_rows=len(val_idx),
        validation_start=val_start.date().isoformat(), seconds=time.perf_counter() - t0, trial_params=given,
    )


def _optimize_with_workers(study: Any, objective: TrialObjective, remaining: int, config: TuneConfig,
                           study_name: str, worker_sink: TrialSinkFactory | None,
                           pool: TuneWorkerPool | None) -> None:
    """Run ``remaining`` trials as fixed quotas: quota 0 here, the others in worker processes."""
    if objective.on_trial is not None and worker_sink is None:
        raise ValueError("tune_window: trials are reported (on_trial) but no worker_sink was given, so the "
                         "worker processes' trials would go unreported")
    if pool is None:
        with TuneWorkerPool(config.workers - 1, config.storage) as own:
            return _optimize_with_workers(study, objective, remaining, config, study_name, worker_sink, own)
    quotas = split_quotas(remaining, config.workers)
    shipped = objective.with_callback(None)
    tasks = [WorkerTask(worker=k, study_name=study_name, storage=str(config.storage), sampler_seed=config.seed + k,
                        quota=q, objective=shipped, sink=worker_sink)
             for k, q in enumerate(quotas) if k and q]
    futures = {pool.submit(t): t for t in tasks}
    mine: list[int] = []
    try:
        if quotas[0]:
            study.optimize(objective, n_trials=quotas[0], n_jobs=max(1, int(config.n_jobs)),
                           callbacks=[lambda s, t: mine.append(int(t.number)), pool.watcher(list(futures))],
                           gc_after_trial=False, show_progress_bar=False)
    except BaseException:
        pool.stop()  # the workers stop after their current trial; the pool's exit waits for them
        raise
    theirs = pool.collect(futures)
    numbers = mine + theirs
    if len(numbers) != len(set(numbers)):
        raise RuntimeError(f"study {study_name}: trial numbers ran twice across processes: {sorted(numbers)}")
    if len(numbers) < remaining:
        raise RuntimeError(f"study {study_name}: {len(numbers)} of {remaining} trials ran (a process stopped early)")
