"""Optuna tuning per walk-forward window, and the walk-forward loop itself.

Per window (:func:`tune_window`):

* the window's (purged) training rows are split in time: the last ``validation_fraction`` of
  their dates is the validation slice, the rows before it whose label window reaches into it
  are purged, the rest is what each trial fits on. The test window is never seen by tuning;
* objective = validation log-loss (unweighted) of the booster at its early-stopped best
  iteration (``early_stopping_rounds`` on the same slice);
* TPE sampler with a fixed seed, ``MedianPruner`` fed by an XGBoost callback that reports the
  validation log-loss every ``report_every`` boosting rounds;
* the study lives in its own Optuna storage under a name derived from the base study name, the
  window, and a digest of the window's data and the tuning config, with
  ``load_if_exists=True``: an interrupted run resumes and only runs the missing trials;
* with ``workers > 1`` the missing trials are split into fixed quotas over the coordinator and
  ``workers - 1`` spawned processes sharing the study's storage (see :mod:`signals.ml.tune_workers`).

The walk-forward loop (:func:`run_walk_forward`) then refits the best params of each window on
the whole (purged) training window with the rounds early stopping kept, predicts the test window
raw, and calibrates those predictions forward-chained: with a calibrator fitted only on earlier
windows' out-of-sample predictions (:mod:`signals.ml.forward_calibration`). It reports through
:class:`WalkForwardHooks` (the MLflow side lives in ``entrypoints``).

Final params (:func:`choose_final_params`): not the single best trial of the last window (on
noisy data that is the trial that fitted one validation slice's noise best) but, among the best
trials of the last ``final_params_windows`` windows, the one with the lowest validation log-loss
pooled over all of those windows' validation slices. ``n_estimators`` stays the trial's cap: the
final fit sets its rounds by early stopping on its own last slice (:func:`signals.ml.train.fit_booster`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from signals.digest import frame_digest
from signals.ml import metrics as M
from signals.ml import pipeline as _pipeline
from signals.ml.calibration import METHODS
from signals.ml.forward_calibration import CalibrationChoice, CalibrationPolicy, ForwardChainedCalibration
from signals.ml.pipeline import InsufficientDataError, MLPipeline, xgb_params_from
from signals.ml.splits import (
    Window,
    WalkForwardValidator,
    frame_holdout_split,
    label_end_dates,
    row_dates,
    row_symbols,
)
from signals.ml.train import predictions_frame

if TYPE_CHECKING:
    from signals.ml.tune_workers import TrialSinkFactory, TuneWorkerPool

log = logging.getLogger(__name__)

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
SEARCH_SPACE_VERSION = "2"


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

    def __post_init__(self) -> None:
        from signals.ml.tune_workers import TuneWorkerError, storage_problem

        if int(self.workers) < 1:
            raise ValueError(f"tuning.workers must be >= 1, got {self.workers}")
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


def create_study(storage: str | None, name: str, seed: int, report_every: int = 10):
    import optuna

    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3 * report_every),
        load_if_exists=True,
    )


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

    def with_callback(self, on_trial: TrialCallback | None) -> "TrialObjective":
        return replace(self, on_trial=on_trial)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["on_trial"] = None  # a callback belongs to its process (MLflow clients, threads)
        return state

    def __call__(self, trial: Any) -> float:
        import optuna

        config, on_trial = self.config, self.on_trial
        start = time.time()
        params = suggest_params(trial)
        pipe = MLPipeline(params, horizon=config.horizon, min_training_samples=1, seed=config.seed, n_jobs=self.threads,
                          class_weight=config.class_weight)
        pruning = make_pruning_callback(trial, config.report_every)
        record = TrialRecord(trial.number, params, None, "PRUNED", pruning.reported, None, start, start)
        try:
            m = pipe.train(self.X_fit, self.y_fit, eval_set=(self.X_val, self.y_val),
                           early_stopping_rounds=config.early_stopping_rounds, callbacks=[pruning])
        except optuna.TrialPruned:
            record.end_time = time.time()
            record.value = pruning.reported[-1][1] if pruning.reported else None
            if on_trial is not None:
                on_trial(record)
            raise
        trial.set_user_attr("n_rounds", int(m["n_rounds"]))
        record.value, record.state, record.n_rounds, record.end_time = (
            float(m["val_log_loss"]), "COMPLETE", int(m["n_rounds"]), time.time())
        if on_trial is not None:
            on_trial(record)
        return float(m["val_log_loss"])


def tune_window(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    config: TuneConfig,
    study_name: str,
    n_trials: int | None = None,
    on_trial: TrialCallback | None = None,
    worker_sink: "TrialSinkFactory | None" = None,
    pool: "TuneWorkerPool | None" = None,
) -> WindowTuning:
    """Run (or resume) the window's study up to ``n_trials`` finished trials; return its best.

    With ``config.workers > 1`` the missing trials are split over this process and
    ``workers - 1`` worker processes (``pool``, or a pool opened for this call); ``worker_sink``
    builds each worker's trial callback (required when ``on_trial`` is given, so that no trial
    goes unreported). See :mod:`signals.ml.tune_workers`.
    """
    from optuna.trial import TrialState

    t0 = time.perf_counter()
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
    n_jobs = max(1, int(config.n_jobs))
    objective = TrialObjective(X.iloc[fit_idx], y[fit_idx], X.iloc[val_idx], y[val_idx], config,
                               config.threads_per_trial(), on_trial)

    study = create_study(config.storage, study_name, config.seed, config.report_every)
    target = int(n_trials if n_trials is not None else config.n_trials)
    resumed = len(finished_trials(study))
    remaining = max(0, target - resumed)
    if remaining and config.workers > 1:
        _optimize_with_workers(study, objective, remaining, config, study_name, worker_sink, pool)
    elif remaining:
        study.optimize(objective, n_trials=remaining, n_jobs=n_jobs, gc_after_trial=False, show_progress_bar=False)
    done = finished_trials(study)
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    if not complete:
        raise InsufficientDataError(f"study {study_name}: no trial completed (all {len(done)} pruned or failed)")
    best = study.best_trial
    n_rounds = int(best.user_attrs.get("n_rounds", best.params["n_estimators"]))
    best_params = {k: best.params[k] for k in SEARCH_SPACE}
    best_params["n_estimators"] = n_rounds
    return WindowTuning(
        study_name=study_name,
        best_params=best_params,
        best_value=float(best.value),
        best_trial=int(best.number),
        n_rounds=n_rounds,
        n_trials_total=len(done),
        n_trials_run=len(done) - resumed,
        n_trials_resumed=resumed,
        n_pruned=sum(1 for t in done if t.state == TrialState.PRUNED),
        fit_rows=len(fit_idx),
        validation_rows=len(val_idx),
        validation_start=val_start.date().isoformat(),
        seconds=time.perf_counter() - t0,
        trial_params={k: best.params[k] for k in SEARCH_SPACE},
    )


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
                           study_name: str, worker_sink: "TrialSinkFactory | None",
                           pool: "TuneWorkerPool | None") -> None:
    """Run ``remaining`` trials as fixed quotas: quota 0 here, the others in worker processes."""
    from signals.ml.tune_workers import TuneWorkerPool, WorkerTask, split_quotas

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


# ------------------------------------------------------------------------------- walk-forward
@dataclass
class WindowResult:
    window: Window
    tuning: WindowTuning
    metrics: dict[str, float]
    n_train: int
    n_test: int
    calibration: CalibrationChoice
    predictions: pd.DataFrame
    feature_importance: dict[str, float] = field(default_factory=dict)
    train_index: np.ndarray | None = field(default=None, repr=False)


@dataclass
class WalkForwardResult:
    windows: list[WindowResult]
    skipped: list[tuple[Window, str]]
    predictions: pd.DataFrame
    metrics: dict[str, float]
    final_params: dict[str, Any]
    final_params_window: int
    calibration: ForwardChainedCalibration | None = None
    final_params_report: dict[str, Any] = field(default_factory=dict)

    def deployable_calibration(self) -> CalibrationChoice:
        """The calibrator for a model trained on all of this data (every OOS row in its pool)."""
        if self.calibration is None:
            raise ValueError("this walk-forward result carries no calibration history")
        return self.calibration.choose(None)


class WalkForwardHooks:
    """Observer of the walk-forward loop; the default does nothing (tracking off)."""

    def window_started(self, window: Window, n_train: int, n_test: int, study_name: str) -> TrialCallback | None:
        return None

    def window_finished(self, result: WindowResult) -> None:
        return None

    def window_skipped(self, window: Window, reason: str) -> None:
        return None

    def worker_trial_sink(self) -> "TrialSinkFactory | None":
        """For ``workers > 1``: a picklable factory, called in each worker process with the worker's
        index, building that process's trial callback for the window just started (None: trials are
        not reported)."""
        return None


PROBA_COLUMNS = ("p_down", "p_flat", "p_up")
RAW_COLUMNS = ("raw_down", "raw_flat", "raw_up")
PRIOR_COLUMNS = ("prior_down", "prior_flat", "prior_up")
#: what the tune run logs as oos_predictions.parquet: enough to re-derive every calibrator
#: (raw probabilities, when each label became known, each window's test start) and every metric
OOS_COLUMNS = ("symbol", "date", "window", "test_start", "label_end", "y", *PROBA_COLUMNS, *RAW_COLUMNS,
               *PRIOR_COLUMNS, "forward_return")


def stitch_predictions(pred: pd.DataFrame) -> pd.DataFrame:
    """One row per (symbol, date): where test windows overlap, keep the latest window's prediction
    (its model was trained on the most recent data). Sorted by date, symbol."""
    if pred.empty:
        return pred.copy()
    out = pred.sort_values(["window"], kind="stable").drop_duplicates(["symbol", "date"], keep="last")
    return out.sort_values(["date", "symbol"]).reset_index(drop=True)


def aggregate_metrics(pred: pd.DataFrame, config: TuneConfig, per_window: list[dict[str, float]]) -> dict[str, float]:
    """Pooled OOS metrics on the stitched predictions (calibrated, raw, and the baselines on the
    same rows, with a bootstrap interval on the skill over the prior), prefixed ``oos_``
    (baselines keep their ``baseline_`` names), and the mean of the per-window metrics."""
    st = stitch_predictions(pred)
    out = M.evaluation_metrics(
        st["y"].to_numpy(), st[list(PROBA_COLUMNS)].to_numpy(),
        raw=st[list(RAW_COLUMNS)].to_numpy() if set(RAW_COLUMNS) <= set(st.columns) else None,
        prior=st[list(PRIOR_COLUMNS)].to_numpy(), dates=st["date"].to_numpy(),
        forward_returns=st["forward_return"].to_numpy(), confidence_threshold=config.confidence_threshold,
        interval=True, block=max(1, config.horizon), seed=config.seed,
    )
    agg = {k if k.startswith("baseline") else f"oos_{k}": v for k, v in out.items()}
    agg["oos_log_loss_skill_vs_prior"] = agg["oos_skill_vs_prior"]  # the name earlier runs used
    if per_window:
        for key in ("log_loss", "log_loss_raw", "accuracy", "brier", "ece", "ic", "rank_ic"):
            vals = [w[key] for w in per_window if key in w and np.isfinite(w[key])]
            if vals:
                agg[f"mean_window_{key}"] = float(np.mean(vals))
        ics = [w["ic"] for w in per_window if np.isfinite(w.get("ic", np.nan))]
        if len(ics) > 1 and np.std(ics, ddof=1) > 0:
            agg["window_icir"] = float(np.mean(ics) / np.std(ics, ddof=1))
        agg["n_windows"] = float(len(per_window))
        agg["windows_calibrated_worse"] = float(sum(1 for w in per_window
                                                    if w.get("log_loss", 0) > w.get("log_loss_raw", np.inf) + 1e-12))
    return agg


def run_walk_forward(
    features: pd.DataFrame,
    y: pd.Series,
    forward_return: pd.Series,
    *,
    config: TuneConfig,
    hooks: WalkForwardHooks | None = None,
    max_windows: int | None = None,
    fixed_params: dict[str, Any] | None = None,
) -> WalkForwardResult:
    """Tune (or, with ``fixed_params``, just fit), predict and forward-chain-calibrate every window.

    ``features``/``y``/``forward_return`` hold only labelled rows, aligned, indexed by
    (symbol, date). ``max_windows`` keeps only the most recent windows (benchmarks, demos).
    """
    hooks = hooks or WalkForwardHooks()
    y_arr = np.asarray(y, dtype=np.int64)
    fwd = np.asarray(forward_return, dtype=np.float64)
    validator = WalkForwardValidator(
        config.train_months, config.test_months, config.step_months,
        horizon=config.horizon, embargo_days=config.embargo_days,
    )
    splits = list(validator.split_windows(features))
    if max_windows is not None:
        splits = splits[-max_windows:]
    if not splits:
        raise InsufficientDataError(
            f"no walk-forward window fits the data ({config.train_months} train + {config.test_months} test months)"
        )
    dates = row_dates(features)
    label_end = label_end_dates(dates, row_symbols(features, len(dates)), config.horizon + config.embargo_days)
    calibration = ForwardChainedCalibration(config.calibration_policy())
    with _worker_pool(config) as pool:
        results, skipped = _walk_windows(features, y_arr, fwd, label_end, splits, config, hooks, pool, calibration,
                                         fixed_params)
    if not results:
        raise InsufficientDataError(
            "every walk-forward window was skipped: " + "; ".join(f"window {w.index}: {r}" for w, r in skipped)
        )
    predictions = pd.concat([r.predictions for r in results], ignore_index=True)
    metrics = aggregate_metrics(predictions, config, [r.metrics for r in results])
    if fixed_params is not None:
        final, report = xgb_params_from(fixed_params), {"rule": "fixed params (no search)"}
    else:
        final, report = choose_final_params(results, features, y_arr, config)
    return WalkForwardResult(
        windows=results,
        skipped=skipped,
        predictions=predictions,
        metrics=metrics,
        final_params=final,
        final_params_window=int(report.get("window", results[-1].window.index)),
        calibration=calibration,
        final_params_report=report,
    )


def choose_final_params(results: list[WindowResult], features: pd.DataFrame, y: np.ndarray,
                        config: TuneConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployable params: among the best trials of the last ``final_params_windows`` windows,
    the one with the lowest validation log-loss pooled over those windows' validation slices.

    Each candidate is refitted (early-stopped, as in its trial) on every recent window's fit rows
    and scored on that window's validation slice; the pooled score weights windows by rows. A
    trial that merely fitted its own slice's noise does not carry over to its neighbours'.
    Returns (params with ``n_estimators`` = the trial's cap, a report for the tune run).
    """
    recent = [r for r in results if r.train_index is not None][-max(1, int(config.final_params_windows)):]
    candidates: list[tuple[int, dict[str, Any]]] = []
    for r in recent:
        params = dict(r.tuning.trial_params or r.tuning.best_params)
        if all(params != c for _, c in candidates):
            candidates.append((r.window.index, params))
    if len(recent) < 2 or len(candidates) < 2:
        last = results[-1]
        return (dict(last.tuning.trial_params or last.tuning.best_params),
                {"rule": "best trial of the most recent window (one candidate)", "window": last.window.index})
    scores = {i: [0.0, 0] for i in range(len(candidates))}
    table: list[dict[str, Any]] = []
    for r in recent:
        X_tr, y_tr = features.iloc[r.train_index], y[r.train_index]
        fit_idx, val_idx, _ = frame_holdout_split(X_tr, fraction=config.validation_fraction, horizon=config.horizon,
                                                  embargo_days=config.embargo_days)
        for i, (src, params) in enumerate(candidates):
            pipe = MLPipeline(params, horizon=config.horizon, min_training_samples=1, seed=config.seed,
                              n_jobs=config.threads(), class_weight=config.class_weight)
            m = pipe.train(X_tr.iloc[fit_idx], y_tr[fit_idx], eval_set=(X_tr.iloc[val_idx], y_tr[val_idx]),
                           early_stopping_rounds=config.early_stopping_rounds)
            scores[i][0] += float(m["val_log_loss"]) * len(val_idx)
            scores[i][1] += len(val_idx)
            table.append({"candidate_window": src, "scored_on_window": r.window.index,
                          "val_log_loss": float(m["val_log_loss"]), "n_rounds": int(m["n_rounds"]),
                          "rows": int(len(val_idx))})
    pooled = {i: tot / max(n, 1) for i, (tot, n) in scores.items()}
    best = min(pooled, key=lambda i: (pooled[i], -candidates[i][0]))
    src, params = candidates[best]
    report = {
        "rule": (f"best pooled validation log-loss over the last {len(recent)} windows among their best trials "
                 "(n_estimators = the trial's cap; the final fit early-stops)"),
        "window": src,
        "pooled_val_log_loss": {str(candidates[i][0]): v for i, v in pooled.items()},
        "table": table,
    }
    return dict(params), report


def _worker_pool(config: TuneConfig):
    """The worker processes of the whole walk-forward (``workers > 1``); else a null context."""
    import contextlib

    if config.workers <= 1:
        return contextlib.nullcontext(None)
    from signals.ml.tune_workers import TuneWorkerPool

    return TuneWorkerPool(config.workers - 1, config.storage)


def _walk_windows(features: pd.DataFrame, y_arr: np.ndarray, fwd: np.ndarray, label_end: np.ndarray, splits: list,
                  config: TuneConfig, hooks: WalkForwardHooks, pool: "TuneWorkerPool | None",
                  calibration: ForwardChainedCalibration, fixed_params: dict[str, Any] | None,
                  ) -> tuple[list[WindowResult], list[tuple[Window, str]]]:
    results: list[WindowResult] = []
    skipped: list[tuple[Window, str]] = []
    for window, tr, te in splits:
        X_tr, y_tr, X_te, y_te = features.iloc[tr], y_arr[tr], features.iloc[te], y_arr[te]
        if len(tr) < config.min_training_samples:
            reason = f"{len(tr)} training rows < ml.min_training_samples={config.min_training_samples}"
            log.warning("window %d skipped: %s", window.index, reason)
            skipped.append((window, reason))
            hooks.window_skipped(window, reason)
            continue
        if fixed_params is None:
            name = study_name_for(config.study_name, window, frame_digest(X_tr, pd.Series(y_tr, index=X_tr.index)),
                                  config)
        else:
            name = ""
        on_trial = hooks.window_started(window, len(tr), len(te), name)
        try:
            if fixed_params is not None:
                tuning = fixed_window(X_tr, y_tr, fixed_params, config=config)
            else:
                sink_of = getattr(hooks, "worker_trial_sink", None)
                sink = sink_of() if config.workers > 1 and on_trial is not None and sink_of is not None else None
                tuning = tune_window(X_tr, y_tr, config=config, study_name=name, on_trial=on_trial,
                                     worker_sink=sink, pool=pool)
        except InsufficientDataError as exc:
            log.warning("window %d skipped: %s", window.index, exc)
            skipped.append((window, str(exc)))
            hooks.window_skipped(window, str(exc))
            continue
        # the window's model: best params, early-stopped rounds, every (purged) training row
        booster = MLPipeline(tuning.best_params, horizon=config.horizon, min_training_samples=1, seed=config.seed,
                             n_jobs=config.threads(), class_weight=config.class_weight)
        booster.train(X_tr, y_tr)
        raw = booster.predict(X_te)
        pred = predictions_frame(X_te.index, y_te, raw, forward_return=fwd[te], window=window.index)
        pred["test_start"] = pd.Timestamp(window.test_start)
        pred["label_end"] = label_end[te]
        pred[list(RAW_COLUMNS)] = raw
        proba, choice = calibration.add_window(window.index, window.test_start, pred)
        pred[list(PROBA_COLUMNS)] = proba
        prior = np.tile(np.asarray(M.class_distribution(y_tr)), (len(pred), 1))
        pred[list(PRIOR_COLUMNS)] = prior
        metrics = M.evaluation_metrics(y_te, proba, raw=raw, prior=prior, dates=row_dates(X_te),
                                       forward_returns=fwd[te], confidence_threshold=config.confidence_threshold)
        result = WindowResult(
            window=window, tuning=tuning, metrics=metrics, n_train=len(tr), n_test=len(te), calibration=choice,
            predictions=pred[list(OOS_COLUMNS)], feature_importance=booster.feature_importance("gain"),
            train_index=np.asarray(tr),
        )
        results.append(result)
        hooks.window_finished(result)
    return results, skipped
