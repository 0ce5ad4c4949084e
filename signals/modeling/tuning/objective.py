"""One window's Optuna study: the search space, the tuning config, and the objective.

* the window's (purged) training rows are split in time: the last ``validation_fraction`` of
  their dates is the validation slice, the rows before it whose label window reaches into it
  are purged, the rest is what each trial fits on. The test window is never seen by tuning;
* objective = validation log-loss (unweighted) of the booster at its early-stopped best
  iteration (``early_stopping_rounds`` on the same slice);
* TPE sampler with a fixed seed; a pruner (``asha`` by default: successive halving over
  boosting rounds; ``hyperband``, ``median``, or ``none``) fed by an XGBoost callback that reports the
  validation log-loss every ``report_every`` boosting rounds;
* cost controls (each switchable in ``tuning.*``, each measured by ``benchmarks/tuning_scale.py``):
  the window's matrices are built once and reused by every trial (``reuse_matrix``); a study
  starts from the previous window's best trials (``warm_start_trials``); a full search runs every
  ``full_every`` windows and a short warm-started one (``short_trials``) in between; a full search
  first ranks its trials on a symbol subsample (``fidelity_rows``) and re-runs only the
  ``promote_top`` best on every row (see :mod:`signals.modeling.tuning.parallel`);
* on an RDB storage, trials send heartbeats: a trial of a process that died is failed once its
  heartbeat is older than the grace period and is retried once with the same parameters;
* the study lives in its own Optuna storage under a name derived from the base study name, the
  window, and a digest of the window's data and the tuning config, with ``load_if_exists=True``:
  an interrupted run resumes and only runs the missing trials.

Running a window's study (alone, or with worker processes sharing it) is
:mod:`signals.modeling.tuning.parallel`; the walk-forward loop is
:mod:`signals.modeling.tuning.walk_forward`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from signals.core.errors import SignalsError
from signals.core.versions import stamp
from signals.modeling import model as _pipeline
from signals.modeling.calibration import METHODS
from signals.modeling.forward_calibration import CalibrationPolicy
from signals.modeling.model import MLPipeline
from signals.modeling.splits import Window

log = logging.getLogger(__name__)

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




#: name -> (kind, low, high, log). Shallow trees, large leaves (min_child_weight is a hessian sum:
#: ~0.4 per row at p = 1/3, so 300 is ~700 rows) and L1/L2 leaf penalties let a trial shrink
#: toward the class prior when the features carry little; ``n_estimators`` is a cap that early
#: stopping cuts.
SEARCH_SPACE: dict[str, tuple[str, float, float, bool]] = {
    "n_estimators": ("int", 100, 600, False),
    "max_depth": ("int", 2, 8, False),
    "learning_rate": ("float", 0.01, 0.2, True),
    "subsample": ("float", 0.5, 1.0, False),
    "colsample_bytree": ("float", 0.3, 1.0, False),
    "min_child_weight": ("float", 1.0, 300.0, True),
    "reg_lambda": ("float", 0.1, 100.0, True),
    "reg_alpha": ("float", 1e-3, 10.0, True),
}
PRUNERS = ("asha", "hyperband", "median", "none")
MIN_SUBSAMPLE_SYMBOLS = 10
#: the search space's version stamp (part of every study's name): changes with the space itself
SEARCH_SPACE_VERSION = stamp(2, json.dumps(SEARCH_SPACE, sort_keys=True))


def suggest_params(trial: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, lo, hi, log_scale) in SEARCH_SPACE.items():
        if kind == "int":
            out[name] = trial.suggest_int(name, int(lo), int(hi), log=log_scale)
        else:
            out[name] = trial.suggest_float(name, float(lo), float(hi), log=log_scale)
    return out


# ------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class TuneConfig:
    horizon: int = 5
    train_months: int = 24
    test_months: int = 6
    step_months: int = 3
    embargo_days: int = 0
    n_trials: int = 100
    n_jobs: int = 1
    validation_fraction: float = 0.2
    early_stopping_rounds: int = 30
    report_every: int = 10
    study_name: str = "signals-walk-forward"
    storage: str | None = None
    seed: int = 42
    calibration_method: str = "auto"  # auto | identity | temperature | sigmoid | isotonic
    calibration_min_z: float = 0.0
    calibration_margin: float = 0.0002
    class_weight: str = "none"
    final_params_windows: int = 4
    confidence_threshold: float = 0.55
    min_training_samples: int = 500
    xgb_threads: int | None = None  # XGBoost threads in total; None -> MLPipeline's default (2)
    workers: int = 1  # processes joining each window's study (needs a shared storage)
    pruner: str = "asha"  # asha (successive halving) | hyperband | median | none
    reuse_matrix: bool = True  # build each window's matrices once for all its trials
    warm_start_trials: int = 5  # previous window's best trials enqueued first (0: cold start)
    full_every: int = 4  # a full study every k-th window; short warm-started ones in between (1: always full)
    short_trials: int = 2  # trials of a short study
    fidelity_rows: float = 0.25  # share of symbols a full study's trials are first ranked on (1.0: off)
    promote_top: int = 3  # trials of the subsample ranking re-run on every row
    heartbeat_interval: int = 30  # seconds between a running trial's heartbeats (RDB storages)
    heartbeat_grace: int = 120  # a trial silent this long belongs to a dead process: failed, then retried

    def __post_init__(self) -> None:
        if int(self.workers) < 1:
            raise ValueError(f"tuning.workers must be >= 1, got {self.workers}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"tuning.pruner must be one of {PRUNERS}, got {self.pruner!r}")
        if not 0 < float(self.fidelity_rows) <= 1:
            raise ValueError(f"tuning.fidelity_rows must be in (0, 1], got {self.fidelity_rows}")
        for name in ("full_every", "short_trials", "promote_top", "heartbeat_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"tuning.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.warm_start_trials) < 0:
            raise ValueError(f"tuning.warm_start_trials must be >= 0, got {self.warm_start_trials}")
        if int(self.heartbeat_grace) <= int(self.heartbeat_interval):
            raise ValueError("tuning.heartbeat_grace must exceed the heartbeat interval")
        if self.calibration_method != "auto" and self.calibration_method not in METHODS:
            raise ValueError(f"calibration_method must be auto or one of {METHODS}, got {self.calibration_method!r}")
        problem = storage_problem(self.storage, int(self.workers))
        if problem:
            raise TuneWorkerError(problem)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "TuneConfig":
        ml, wf, tu = settings.ml, settings.walk_forward, settings.tuning
        kw: dict[str, Any] = dict(
            horizon=ml.prediction_horizon,
            train_months=wf.train_months,
            test_months=wf.test_months,
            step_months=wf.step_months,
            embargo_days=wf.embargo_days,
            n_trials=tu.n_trials,
            n_jobs=tu.n_jobs,
            workers=tu.workers,
            validation_fraction=tu.validation_fraction,
            early_stopping_rounds=tu.early_stopping_rounds,
            study_name=tu.study_name,
            storage=settings.optuna_storage(),
            seed=ml.seed,
            calibration_method=ml.calibration_method,
            calibration_min_z=ml.calibration_min_z,
            calibration_margin=ml.calibration_margin,
            class_weight=ml.class_weight,
            final_params_windows=tu.final_params_windows,
            pruner=tu.pruner,
            reuse_matrix=tu.reuse_matrix,
            warm_start_trials=tu.warm_start_trials,
            full_every=tu.full_every,
            short_trials=tu.short_trials,
            fidelity_rows=tu.fidelity_rows,
            promote_top=tu.promote_top,
            confidence_threshold=ml.confidence_threshold,
            min_training_samples=ml.min_training_samples,
        )
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    def threads(self) -> int:
        return int(self.xgb_threads or _pipeline.DEFAULT_N_JOBS)

    def threads_per_trial(self) -> int:
        """XGBoost threads of one trial: concurrent trials (n_jobs x workers) share the budget."""
        return max(1, self.threads() // (max(1, int(self.n_jobs)) * max(1, int(self.workers))))

    def trials_for(self, position: int) -> int:
        """Trial target of the ``position``-th tuned window (0-based): the full count every
        ``full_every`` windows (the first always), the short count in between."""
        if position % max(1, int(self.full_every)) == 0:
            return int(self.n_trials)
        return min(int(self.short_trials), int(self.n_trials))

    def two_fidelity(self, n_trials: int, n_symbols: int) -> bool:
        """Whether a study of ``n_trials`` over ``n_symbols`` first ranks its trials on a symbol
        subsample: only when it would hold at least ``MIN_SUBSAMPLE_SYMBOLS`` symbols (a ranking on
        one or two symbols is noise; a 4-symbol demo keeps one study per window)."""
        return (float(self.fidelity_rows) < 1.0 and n_trials > int(self.promote_top)
                and round(n_symbols * float(self.fidelity_rows)) >= MIN_SUBSAMPLE_SYMBOLS)

    def calibration_policy(self) -> CalibrationPolicy:
        methods = METHODS if self.calibration_method == "auto" else (self.calibration_method,)
        return CalibrationPolicy(methods=methods, min_z=float(self.calibration_min_z),
                                 min_improvement=float(self.calibration_margin), block=max(1, int(self.horizon)))

    def study_digest_payload(self) -> dict[str, Any]:
        """What changes the meaning of a trial (n_trials / n_jobs / workers / storage do not)."""
        return {
            "search_space": SEARCH_SPACE_VERSION,
            "class_weight": self.class_weight,
            "horizon": self.horizon,
            "embargo_days": self.embargo_days,
            "validation_fraction": self.validation_fraction,
            "early_stopping_rounds": self.early_stopping_rounds,
            "report_every": self.report_every,
            "seed": self.seed,
            "pruner": self.pruner,
        }


def study_name_for(base: str, window: Window, data_digest: str, config: TuneConfig) -> str:
    payload = json.dumps({"data": data_digest, "config": config.study_digest_payload(), "window": window.as_dict()},
                         sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return f"{base}-w{window.index:03d}-{window.test_start.date().isoformat()}-{digest}"


# ------------------------------------------------------------------------------- trial records
@dataclass
class TrialRecord:
    """What one finished trial reports (to the MLflow grandchild run)."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # COMPLETE | PRUNED
    intermediate: list[tuple[int, float]]
    n_rounds: int | None
    start_time: float
    end_time: float
    fidelity: float = 1.0  # share of the window's fit rows the trial trained on

    @property
    def pruned(self) -> bool:
        return self.state == "PRUNED"


TrialCallback = Callable[[TrialRecord], None]


def make_pruning_callback(trial: Any, report_every: int = 10, data_name: str = "validation", metric: str = "mlogloss"):
    """An XGBoost callback reporting the validation loss every ``report_every`` rounds to Optuna
    and raising ``optuna.TrialPruned`` when the pruner says so."""
    import optuna
    import xgboost as xgb

    class _PruningCallback(xgb.callback.TrainingCallback):
        def __init__(self) -> None:
            super().__init__()
            self.reported: list[tuple[int, float]] = []

        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            step = epoch + 1
            if step % report_every:
                return False
            value = float(evals_log[data_name][metric][-1])
            trial.report(value, step)
            self.reported.append((step, value))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at boosting round {step} (validation {metric} {value:.5f})")
            return False

    return _PruningCallback()


@dataclass
class WindowTuning:
    """One window's search. ``best_params`` carry the early-stopped rounds (what the window's
    refit uses); ``trial_params`` the trial as sampled (``n_estimators`` = its cap)."""

    study_name: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    n_rounds: int
    n_trials_total: int
    n_trials_run: int
    n_trials_resumed: int
    n_pruned: int
    fit_rows: int
    validation_rows: int
    validation_start: str
    seconds: float
    trial_params: dict[str, Any] = field(default_factory=dict)
    n_trials_target: int = 0
    n_warm_started: int = 0
    n_low_fidelity: int = 0
    cpu_seconds: float = 0.0
    #: the best full-fidelity trials (as sampled), best first: the next window's warm start
    top_trials: list[dict[str, Any]] = field(default_factory=list)
    #: params_key -> (validation log-loss, rounds) of every full-fidelity trial that completed
    full_values: dict[str, tuple[float, int]] = field(default_factory=dict)



def params_key(params: dict[str, Any]) -> str:
    """A trial's identity: its search-space values (as sampled, ``n_estimators`` = the cap)."""
    return json.dumps({k: params[k] for k in SEARCH_SPACE if k in params}, sort_keys=True)


def process_cpu_seconds() -> float:
    """CPU seconds of this process, all threads (XGBoost's included): the cost tuning is judged by."""
    return time.process_time()


def make_pruner(kind: str, report_every: int = 10):
    """``asha``: successive halving over boosting rounds (rungs at 3, 9, 27 ... reports; a trial
    goes on past a rung only if it is in the best third there); ``hyperband``: several
    successive-halving brackets, some never pruning (safer, costlier); ``median``: the median
    rule after 5 trials (the tuning before the cost controls); ``none``: never prune (early
    stopping still ends a trial).

    Measured on one 200-symbol window (81,600 fit rows, 40 trials ranked on a 25 % symbol
    subsample, best of the top 3 re-run on every row): asha 0.84 CPU s a trial, validation
    log-loss 1.04799; hyperband at 10 % rows 1.13 s, 1.04845; the cold full-row median study
    4.72 s, 1.04796.
    """
    import optuna

    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=3 * report_every, reduction_factor=3)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=3 * report_every,
                                              max_resource=int(SEARCH_SPACE["n_estimators"][2]), reduction_factor=3)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3 * report_every)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {kind!r} (one of {PRUNERS})")


def study_storage(storage: str | None, heartbeat_interval: int = 30, heartbeat_grace: int = 120) -> Any:
    """The Optuna storage of a URL: in memory for None; an RDB storage with heartbeats otherwise,
    so that a trial whose process was killed is failed and retried instead of RUNNING forever."""
    if not storage:
        return None
    import optuna

    storages = optuna.storages
    with warnings.catch_warnings():  # heartbeats and the retry callback are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9 names it so
            retry = {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
        else:
            retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=1)}
        return storages.RDBStorage(storage, heartbeat_interval=int(heartbeat_interval),
                                   grace_period=int(heartbeat_grace), **retry)


def create_study(storage: str | None, name: str, seed: int, report_every: int = 10, pruner: str = "median",
                 heartbeat: tuple[int, int] = (30, 120)):
    import optuna

    return optuna.create_study(
        study_name=name,
        storage=study_storage(storage, *heartbeat),
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=make_pruner(pruner, report_every),
        load_if_exists=True,
    )


def study_for(config: TuneConfig, name: str, seed: int | None = None):
    """The study ``name`` with the config's storage, pruner and heartbeats (one place for every process).

    The sampler's seed is ``seed`` (default ``config.seed``) plus an offset from the study name:
    with one seed for every window, each window's TPE would start from the same random points,
    and a warm-started study would re-run its predecessor's start-up trials.
    """
    base = config.seed if seed is None else seed
    offset = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 1_000_003
    return create_study(config.storage, name, base + offset, config.report_every, config.pruner,
                        (config.heartbeat_interval, config.heartbeat_grace))


def symbol_subsample(index: pd.Index, fraction: float, seed: int) -> np.ndarray:
    """Positions of the rows of a seeded ``fraction`` of the symbols (at least one symbol).

    Whole symbols, not random rows: a row subsample keeps every symbol's autocorrelated
    neighbours, so it looks like more data than it is; whole symbols keep the ranking honest.
    """
    symbols = np.asarray(index.get_level_values(0) if isinstance(index, pd.MultiIndex) else index).astype(str)
    names = np.unique(symbols)
    k = max(1, int(round(len(names) * float(fraction))))
    chosen = np.random.default_rng(seed).choice(names, size=min(k, len(names)), replace=False)
    return np.flatnonzero(np.isin(symbols, chosen))


def finished_trials(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


@dataclass(eq=False)
class TrialObjective:
    """The objective of one window's study: fit on the fit rows, early-stop and score on the
    validation slice. One module-level implementation for the coordinator and the worker processes
    (it pickles: data, config and thread count; the callback is attached per process)."""

    X_fit: pd.DataFrame
    y_fit: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    config: TuneConfig
    threads: int
    on_trial: TrialCallback | None = None
    fidelity: float = 1.0  # share of the window's fit rows in X_fit (reported with each trial)
    _matrices: Any = field(default=None, init=False, repr=False, compare=False)

    def with_callback(self, on_trial: TrialCallback | None) -> "TrialObjective":
        out = replace(self, on_trial=on_trial)
        out._matrices = self._matrices
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["on_trial"] = None  # a callback belongs to its process (MLflow clients, threads)
        state["_matrices"] = None  # XGBoost matrices are rebuilt where they are used
        return state

    def matrices(self, pipe: MLPipeline) -> tuple[Any, Any]:
        """The (fit, validation) matrices, built on first use and kept for every later trial."""
        if self._matrices is None:
            dfit = pipe.matrix(self.X_fit, self.y_fit, quantile=True)
            dval = pipe.matrix(self.X_val[list(self.X_fit.columns)], self.y_val, quantile=True, ref=dfit)
            self._matrices = (dfit, dval)
        return self._matrices

    def _fit(self, pipe: MLPipeline, pruning: Any) -> tuple[int, float]:
        config = self.config
        if config.reuse_matrix:
            dfit, dval = self.matrices(pipe)
            return pipe.fit_matrices(dfit, dval, self.y_val, early_stopping_rounds=config.early_stopping_rounds,
                                     callbacks=[pruning])
        m = pipe.train(self.X_fit, self.y_fit, eval_set=(self.X_val, self.y_val),
                       early_stopping_rounds=config.early_stopping_rounds, callbacks=[pruning])
        return int(m["n_rounds"]), float(m["val_log_loss"])

    def __call__(self, trial: Any) -> float:
        import optuna

        config, on_trial = self.config, self.on_trial
        start = time.time()
        params = suggest_params(trial)
        pipe = MLPipeline(params, horizon=config.horizon, min_training_samples=1, seed=config.seed, n_jobs=self.threads,
                          class_weight=config.class_weight)
        pruning = make_pruning_callback(trial, config.report_every)
        record = TrialRecord(trial.number, params, None, "PRUNED", pruning.reported, None, start, start,
                             fidelity=float(self.fidelity))
        try:
            n_rounds, value = self._fit(pipe, pruning)
        except optuna.TrialPruned:
            record.end_time = time.time()
            record.value = pruning.reported[-1][1] if pruning.reported else None
            if on_trial is not None:
                on_trial(record)
            raise
        trial.set_user_attr("n_rounds", int(n_rounds))
        record.value, record.state, record.n_rounds, record.end_time = (value, "COMPLETE", int(n_rounds), time.time())
        if on_trial is not None:
            on_trial(record)
        return value
