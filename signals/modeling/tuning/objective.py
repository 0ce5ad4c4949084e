"""One window's Optuna study: the search space, the tuning config, and the objective.

* the window's (purged) training rows are split in time: the last ``validation_fraction`` of
  their dates is the validation slice, the rows before it whose label window reaches into it
  are purged, the rest is what each trial fits on. The test window is never seen by tuning;
* objective = validation log-loss (unweighted) of the booster at its early-stopped best
  iteration (``early_stopping_rounds`` on the same slice);
* TPE sampler with a fixed seed, ``MedianPruner`` fed by an XGBoost callback that reports the
  validation log-loss every ``report_every`` boosting rounds;
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

    def __post_init__(self) -> None:
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
