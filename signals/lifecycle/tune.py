"""``tune`` step: purged walk-forward with Optuna per window, logged as nested MLflow runs.

Run layout (experiment ``mlflow.experiment``)::

    tune (parent, tag signals.step=tune)          config, provenance, dataset, aggregate OOS
    |                                             metrics + baselines, final params,
    |                                             oos_predictions.parquet, plots
    +-- window-000 (child, signals.step=tune-window)   dates, best params, OOS metrics
    |   +-- trial-000 (grandchild, tune-trial)         params, validation log-loss, pruned
    |   +-- ...
    +-- window-001 ...

Window and trial runs are created with ``MlflowClient.create_run(tags={"mlflow.parentRunId":
...})``, never through MLflow's per-thread active-run stack, so parallel trials
(``tuning.n_jobs > 1``) stay nested correctly. With ``tuning.workers > 1`` (several processes on
each window's study, see :mod:`signals.modeling.tuning.parallel`) every worker process logs its own trials
the same way, through :class:`MlflowTrialSink`: its own client on the same tracking URI, the same
experiment, the window run as parent.

A tune run is tagged with its study (``signals.tune_study``: data digest, windows, storage and the
settings that change a trial) and its process (``signals.host``, ``signals.pid``, a heartbeat). A
rerun of the same study after a ``kill -9`` resumes the Optuna studies, and first marks the killed
run and every run still RUNNING under it FAILED, linking them both ways (``signals.resumed_from`` on
the new run, ``signals.superseded_by`` on the dead one); its windows and trials nest under itself.

The final params (read by ``signals train``) are chosen robustly over the last windows (see
:func:`signals.modeling.tuning.walk_forward.choose_final_params`); they are logged as ``final.*`` params and
``final_params.json`` (with the pooled validation table that chose them). Every window's
calibrator is forward-chained (:mod:`signals.modeling.forward_calibration`); the choices, and the
deployable calibrator with each candidate's forward-chained log-loss, are in ``calibration.json``.

``python -m entrypoints.tune --symbols AAPL,MSFT --trials 20``
``python -m entrypoints.tune --trials 100 --workers 4 --storage postgresql://postgres@127.0.0.1:5432/optuna``
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from signals.adapters import dask_compute
from signals.adapters import tracking as T
from signals.dataset import TrainingData, load_training_data
from signals.features.spec import synthetic_features
from signals.lifecycle.params import (
    check_date_order,
    common_parser,
    jsonable,
    opt_int,
    opt_str,
    prefer_passive_openmp,
    run_main,
)
from signals.lifecycle.wiring import feature_store
from signals.modeling import plots
from signals.modeling.tuning.dask_trials import dask_storage_problem
from signals.modeling.tuning.objective import TuneConfig, TuneWorkerError
from signals.modeling.tuning.walk_forward import OOS_COLUMNS, run_walk_forward, stitch_predictions
from signals.settings.model import load_settings
from signals.trading.backtest import SHARPE_DEFINITION, BacktestError, run_backtest, strategy_metrics

if TYPE_CHECKING:
    from signals.modeling.splits import Window
    from signals.modeling.tuning.objective import TrialCallback
    from signals.modeling.tuning.walk_forward import WalkForwardResult, WindowResult
    from signals.settings.model import Settings

log = logging.getLogger("signals.entrypoints.tune")

FINAL_PARAMS_FILE = "final_params.json"
CALIBRATION_FILE = "calibration.json"
TAG_TUNE_WORKER = "signals.tune_worker"  # on trial runs when tuning.workers > 1: 0 = coordinator, k = worker k
OOS_PREDICTIONS_FILE = "oos_predictions.parquet"


@dataclass
class TuneResult:
    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    final_params: dict[str, Any]
    final_params_window: int
    windows: list[dict[str, Any]]
    artifacts: dict[str, str]
    data_window: dict[str, Any]
    storage: str
    study_names: list[str] = field(default_factory=list)
    skipped_windows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    calibration: dict[str, Any] = field(default_factory=dict)

    def summary_rows(self) -> list[dict[str, Any]]:
        """OOS metric vs baseline on the same (stitched) test rows."""
        return oos_summary_rows(self.metrics)


def oos_summary_rows(m: dict[str, float], prefix: str = "oos_", baseline_prefix: str = "") -> list[dict[str, Any]]:
    """Model (calibrated), raw booster and baseline on the same rows, one row per metric."""
    def g(key: str) -> Any:
        return m.get(f"{prefix}{key}")

    def b(key: str) -> Any:
        return m.get(f"{baseline_prefix}{key}")

    return [
        {"metric": "log_loss", "model": g("log_loss"), "raw_model": g("log_loss_raw"),
         "baseline": b("baseline_prior_log_loss"), "baseline_kind": "class prior (training rows)"},
        {"metric": "skill_vs_prior", "model": g("skill_vs_prior"), "raw_model": None,
         "baseline": None, "baseline_kind": f"90% interval [{_fmt(g('skill_vs_prior_lo'))}, {_fmt(g('skill_vs_prior_hi'))}]"},
        {"metric": "ece", "model": g("ece"), "raw_model": g("ece_raw"), "baseline": b("baseline_prior_ece"),
         "baseline_kind": "class prior"},
        {"metric": "accuracy", "model": g("accuracy"), "raw_model": g("accuracy_raw"),
         "baseline": b("baseline_always_up_accuracy"), "baseline_kind": "always UP"},
        {"metric": "rank_ic", "model": g("rank_ic"), "raw_model": None, "baseline": None,
         "baseline_kind": f"IC {_fmt(g('ic'))}, ICIR {_fmt(g('icir'))}"},
        {"metric": "strategy_sharpe", "model": g("strategy_sharpe"), "raw_model": None,
         "baseline": b("baseline_buy_hold_sharpe"),
         "baseline_kind": "buy and hold (net of costs)" + (
             "; the strategy never took a position" if g("strategy_exposure") == 0 else "")},
    ]


#: the tuning cost controls, logged as ``tune.<name>`` params of the tune run (see TuneConfig)
COST_CONTROLS = ("pruner", "reuse_matrix", "warm_start_trials", "full_every", "short_trials", "fidelity_rows",
                 "promote_top")


def _fmt(x: Any) -> str:
    try:
        return f"{float(x):+.4f}"
    except (TypeError, ValueError):
        return "-"


@dataclass(frozen=True)
class MlflowTrialSink:
    """Picklable recipe for a worker process's trial logger: called in the worker, it returns a
    :class:`signals.adapters.tracking.TrialRunLogger` nesting that worker's trial runs under the window run."""

    tracking_uri: str
    experiment_id: str
    window_run_id: str
    window: int
    background: bool = True

    def __call__(self, worker: int) -> Any:
        import mlflow


        T.quiet_mlflow()
        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        return T.TrialRunLogger(client, self.experiment_id, self.window_run_id, window=self.window,
                                background=self.background, extra_tags={TAG_TUNE_WORKER: str(worker)})


class MlflowWalkForwardHooks:
    """Creates a child run per window and a grandchild run per trial (see module docstring)."""

    def __init__(self, client: Any, experiment_id: str, parent_run_id: str, *, background_trial_logging: bool = True,
                 tracking_uri: str | None = None, workers: int = 1, prices: pd.DataFrame | None = None,
                 strategy: dict[str, Any] | None = None):
        import mlflow

        self.prices = prices
        self.strategy = strategy or {}
        self.client = client
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.background = background_trial_logging
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.workers = workers
        self.window_runs: dict[int, str] = {}
        self.study_names: list[str] = []
        self._open: str | None = None
        self._open_window: int | None = None
        self._trial_logger: Any = None

    def window_started(self, window: "Window", n_train: int, n_test: int, study_name: str) -> "TrialCallback":

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"window-{window.index:03d}",
            tags={T.PARENT_TAG: self.parent_run_id, T.TAG_STEP: T.STEP_WINDOW, T.TAG_WINDOW: str(window.index),
                  "optuna.study_name": study_name},
        )
        rid = run.info.run_id
        self._open, self._open_window = rid, window.index
        self.window_runs[window.index] = rid
        self.study_names.append(study_name)
        T.log_params_batch(self.client, rid, {**window.as_dict(), "n_train_rows": n_train, "n_test_rows": n_test,
                                              "study_name": study_name})
        self._trial_logger = T.TrialRunLogger(self.client, self.experiment_id, rid, window=window.index,
                                              background=self.background,
                                              extra_tags={TAG_TUNE_WORKER: "0"} if self.workers > 1 else None)
        return self._trial_logger

    def worker_trial_sink(self) -> MlflowTrialSink:
        """Trial logging of worker processes for the window just started (``tuning.workers > 1``)."""
        if self._open is None:
            raise RuntimeError("worker_trial_sink() called with no window run open")
        return MlflowTrialSink(self.tracking_uri, str(self.experiment_id), self._open,
                               int(self._open_window), self.background)

    def _close_trials(self) -> None:
        if self._trial_logger is not None:
            logger, self._trial_logger = self._trial_logger, None
            logger.close()

    def window_finished(self, result: "WindowResult") -> None:

        self._close_trials()
        rid = self.window_runs[result.window.index]
        t = result.tuning
        T.log_params_batch(self.client, rid, {f"best.{k}": v for k, v in t.best_params.items()})
        T.log_params_batch(self.client, rid, {"validation_start": t.validation_start, "tune_fit_rows": t.fit_rows,
                                              "validation_rows": t.validation_rows})
        metrics = {**result.metrics, **window_strategy_metrics(result, self.prices, self.strategy)}
        metrics = {k if k.startswith("baseline") else f"oos_{k}": v for k, v in metrics.items()}
        cal = result.calibration
        metrics.update({"best_val_log_loss": t.best_value, "best_trial": t.best_trial, "n_trials": t.n_trials_total,
                        "n_trials_run": t.n_trials_run, "n_trials_resumed": t.n_trials_resumed,
                        "n_pruned": t.n_pruned, "tuning_seconds": t.seconds, "n_rounds": t.n_rounds,
                        "n_trials_target": t.n_trials_target, "n_warm_started": t.n_warm_started,
                        "n_subsample_trials": t.n_low_fidelity, "tuning_cpu_seconds": t.cpu_seconds,
                        "calibration_pool_rows": cal.pool_rows, "calibration_selection_rows": cal.selection_rows})
        metrics.update({f"calibration_fc_log_loss_{k}": v for k, v in cal.candidate_log_loss.items()})
        T.log_params_batch(self.client, rid, {"calibration.method": cal.method, "calibration.reason": cal.reason})
        T.log_metrics_batch(self.client, rid, metrics)
        self.client.set_terminated(rid, "FINISHED")
        self._open = None

    def window_skipped(self, window: "Window", reason: str) -> None:

        skip_tags = {"skipped": "true", "skip_reason": reason[:250]}
        if self._open is not None and self.window_runs.get(window.index) == self._open:
            # skipped after its run was opened (e.g. too few rows once the validation slice is cut)
            self._close_trials()
            rid, self._open = self._open, None
            T.set_tags_batch(self.client, rid, skip_tags)
            self.client.set_terminated(rid, "FINISHED")
            return
        run = self.client.create_run(
            self.experiment_id, run_name=f"window-{window.index:03d}-skipped",
            tags={T.PARENT_TAG: self.parent_run_id, T.TAG_STEP: T.STEP_WINDOW, T.TAG_WINDOW: str(window.index),
                  **skip_tags},
        )
        T.log_params_batch(self.client, run.info.run_id, window.as_dict())
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def fail_open(self) -> None:
        """Mark a window run left open by an exception as FAILED (trial runs already logged stay)."""
        try:
            self._close_trials()
        except Exception:  # noqa: BLE001 - already failing; keep the original error
            log.exception("trial logging failed while handling another error")
        if self._open is not None:
            self.client.set_terminated(self._open, "FAILED")
            self._open = None


def window_strategy_metrics(result: "WindowResult", prices: pd.DataFrame | None,
                            strategy: dict[str, Any]) -> dict[str, float]:
    """The strategy's Sharpe (one definition: :data:`signals.trading.backtest.SHARPE_DEFINITION`) on a window's test rows."""
    if prices is None or not strategy:
        return {}

    return strategy_metrics(result.predictions, prices, **strategy)


def strategy_figure(predictions: pd.DataFrame, prices: pd.DataFrame | None, strategy: dict[str, Any] | None,
                    title: str) -> Any:
    """Growth of 1 of the strategy vs buy-and-hold on these predictions (None when nothing can be priced)."""
    if prices is None or not strategy:
        return None

    try:
        return plots.cumulative_returns(run_backtest(predictions, prices, **strategy).daily, title)
    except BacktestError as exc:
        log.info("no cumulative-returns plot: %s", exc)
        return None


def strategy_settings(settings: "Settings") -> dict[str, Any]:
    return {"confidence_threshold": settings.ml.confidence_threshold,
            "min_hold_days": settings.strategy.min_hold_days, "cost_bps": settings.strategy.cost_bps}


def tune_config(settings: "Settings", *, n_trials: int | None = None, n_jobs: int | None = None,
                storage: str | None = None, workers: int | None = None):

    return TuneConfig.from_settings(settings, n_trials=n_trials, n_jobs=n_jobs, storage=storage, workers=workers)


def window_table(res: "WalkForwardResult", window_runs: dict[int, str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for w in res.windows:
        rows.append({
            **w.window.as_dict(),
            "run_id": (window_runs or {}).get(w.window.index),
            "study_name": w.tuning.study_name,
            "n_train": w.n_train,
            "n_test": w.n_test,
            "best_val_log_loss": w.tuning.best_value,
            "best_params": w.tuning.best_params,
            "n_rounds": w.tuning.n_rounds,
            "n_trials": w.tuning.n_trials_total,
            "n_trials_target": w.tuning.n_trials_target,
            "n_warm_started": w.tuning.n_warm_started,
            "n_subsample_trials": w.tuning.n_low_fidelity,
            "tuning_cpu_seconds": round(w.tuning.cpu_seconds, 2),
            "calibration": w.calibration.method,
            "calibration_pool_rows": w.calibration.pool_rows,
            **{k: w.metrics.get(k) for k in ("log_loss", "log_loss_raw", "accuracy", "brier", "ece", "ece_raw",
                                              "ic", "rank_ic", "skill_vs_prior", "baseline_prior_log_loss",
                                              "baseline_always_up_accuracy")},
        })
    return rows


def calibration_report(res: "WalkForwardResult") -> dict[str, Any]:
    """Per window: the forward-chained calibrator it used; plus the deployable one (all rows)."""
    deploy = res.deployable_calibration()
    return {
        "rule": ("window k is calibrated by a calibrator fitted on the raw out-of-sample predictions of windows "
                 "before k whose labels were known before k's test start; the method is chosen the same way "
                 "(forward-chained log-loss), identity unless a candidate wins clearly"),
        "deployable": deploy.as_dict(),
        "windows": {str(k): c.as_dict() for k, c in res.calibration.choices().items()} if res.calibration else {},
    }


def log_walk_forward_outputs(client: Any, run_id: str, res: "WalkForwardResult", horizon: int,
                             window_runs: dict[int, str] | None = None, prices: pd.DataFrame | None = None,
                             strategy: dict[str, Any] | None = None,
                             synthetic_features: Sequence[str] = ()) -> dict[str, str]:
    """Parent-run artifacts: OOS predictions, final params, calibration choices, per-window table, plots."""

    artifacts: dict[str, str] = {}
    oos = res.predictions[list(OOS_COLUMNS)].copy()
    artifacts["oos_predictions"] = T.log_parquet(client, run_id, oos, OOS_PREDICTIONS_FILE)
    final = {"params": res.final_params, "window": res.final_params_window, **res.final_params_report}
    T.log_json(client, run_id, final, FINAL_PARAMS_FILE)
    artifacts["final_params"] = T.artifact_uri(client, run_id, FINAL_PARAMS_FILE)
    if res.calibration is not None:
        T.log_json(client, run_id, calibration_report(res), CALIBRATION_FILE)
        artifacts["calibration"] = T.artifact_uri(client, run_id, CALIBRATION_FILE)
    rows = window_table(res, window_runs)
    T.log_json(client, run_id, rows, "windows.json")
    artifacts["windows"] = T.artifact_uri(client, run_id, "windows.json")

    frame = pd.DataFrame(rows)
    st = stitch_predictions(res.predictions)
    y = st["y"].to_numpy()
    proba = st[["p_down", "p_flat", "p_up"]].to_numpy()
    raw = st[["raw_down", "raw_flat", "raw_up"]].to_numpy()
    imp = _mean_gain_share([w.feature_importance for w in res.windows])
    figures = {
        "plots/window_metrics.png": plots.window_metrics(frame),
        "plots/confusion_matrix.png": plots.confusion_matrix(y, proba, "Out-of-sample confusion matrix (all windows)"),
        "plots/reliability.png": plots.reliability_diagram(y, {"raw": raw, "calibrated": proba},
                                                           title="Out-of-sample reliability (all windows)"),
        "plots/feature_importance.png": plots.feature_importance(imp, title="Mean gain share across windows",
                                                                 marked=synthetic_features),
    }
    fig = strategy_figure(st, prices, strategy, "Walk-forward out-of-sample: strategy (net of costs) vs buy-and-hold")
    if fig is not None:
        figures["plots/cumulative_returns.png"] = fig
    for path, fig in figures.items():
        artifacts[path.split("/")[-1].removesuffix(".png")] = T.log_figure(client, run_id, fig, path)
    return artifacts


def _mean_gain_share(importances: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for imp in importances:
        s = sum(imp.values()) or 1.0
        for k, v in imp.items():
            total[k] = total.get(k, 0.0) + v / s / len(importances)
    return total


def tune_study_key(config: TuneConfig, data_digest: str, max_windows: int | None = None) -> str:
    """Names one walk-forward study: the same data, windows, storage and trial-changing settings.

    A tune run with the same key resumes the same Optuna studies, so it takes over any run of
    that key whose process died (see :func:`signals.adapters.tracking.supersede_dead_runs`).
    """
    payload = {
        "study": config.study_name, "data": data_digest, "trial": config.study_digest_payload(),
        "windows": [config.train_months, config.test_months, config.step_months, max_windows],
        "storage": T.redact("storage", config.storage or "in-memory"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tune_with_tracking(
    settings: "Settings",
    data: TrainingData,
    *,
    n_trials: int | None = None,
    n_jobs: int | None = None,
    storage: str | None = None,
    max_windows: int | None = None,
    background_trial_logging: bool = True,
    workers: int | None = None,
) -> TuneResult:
    """The tune step on already loaded data (the benchmark calls this directly)."""
    import mlflow
    import optuna


    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    experiment_id = T.configure_mlflow(settings)
    config = tune_config(settings, n_trials=n_trials, n_jobs=n_jobs, storage=storage, workers=workers)
    dask_client = None
    if not dask_compute.is_local(settings.compute):  # trials run as tasks on the Dask cluster
        problem = dask_storage_problem(config.storage)
        if problem:
            raise TuneWorkerError(problem)
        dask_client = dask_compute.client_for(settings.compute.address, settings.compute.connect_timeout_s)
    client = mlflow.MlflowClient()
    window = data.window()
    study = tune_study_key(config, data.digest, max_windows)
    tags = {
        T.TAG_STEP: T.STEP_TUNE,
        **T.provenance_tags(data.feature_version),
        T.TAG_DATA_DIGEST: data.digest,
        T.TAG_DATA_PROVIDER: str(data.source.get("provider", "unknown")),
        T.TAG_DATA_SYNTHETIC: str(data.source.get("synthetic", "none")),
        T.TAG_TUNE_STUDY: study,
        **T.process_tags(),
    }
    with T.start_step_run(run_name=f"tune-{window['start']}-{window['end']}", tags=tags) as run, \
            T.RunHeartbeat(mlflow.get_tracking_uri(), run.info.run_id):
        rid = run.info.run_id
        # a killed earlier tune of this study (which this one resumes) must not stay RUNNING forever
        T.supersede_dead_runs(client, run.info.experiment_id, rid, {T.TAG_STEP: T.STEP_TUNE, T.TAG_TUNE_STUDY: study})
        T.log_resolved_config(client, rid, settings)
        T.log_params_batch(client, rid, {
            "data.symbols_used": ",".join(data.symbols), "data.first_date": window["start"],
            "data.last_date": window["end"], "data.n_rows": window["n_rows"],
            "tune.n_trials": config.n_trials, "tune.n_jobs": config.n_jobs, "tune.workers": config.workers,
            "tune.storage": T.redact("storage", config.storage or "in-memory"),
            "tune.sharpe_definition": SHARPE_DEFINITION, "tune.class_weight": config.class_weight,
            "tune.calibration_method": config.calibration_method,
            "tune.max_windows": max_windows if max_windows is not None else "all",
            "tune.compute": settings.compute.address,
            "tune.dask_workers": dask_compute.worker_count(dask_client) if dask_client is not None else 0,
            **{f"tune.{k}": getattr(config, k) for k in COST_CONTROLS},
        })
        T.log_training_dataset(data.frame(), name=f"signals-panel-{data.feature_version}", source=data.source,
                               digest=data.digest)
        T.log_data_warnings(client, rid, data.data_warnings)
        prices = data.prices()
        strategy = strategy_settings(settings)
        hooks = MlflowWalkForwardHooks(client, experiment_id, rid, background_trial_logging=background_trial_logging,
                                       tracking_uri=mlflow.get_tracking_uri(), workers=config.workers,
                                       prices=prices, strategy=strategy)
        try:
            res = run_walk_forward(data.features, data.y, data.forward_return, config=config, hooks=hooks,
                                   max_windows=max_windows, dask_client=dask_client)
        except BaseException:
            hooks.fail_open()
            raise
        metrics = dict(res.metrics)
        if prices is not None:

            sm = strategy_metrics(stitch_predictions(res.predictions), prices, **strategy)
            metrics.update({k if k.startswith("baseline") else f"oos_{k}": v for k, v in sm.items()})
        deploy = res.deployable_calibration()
        metrics.update({"calibration_pool_rows": deploy.pool_rows, "calibration_selection_rows": deploy.selection_rows,
                        **{f"calibration_fc_log_loss_{k}": v for k, v in deploy.candidate_log_loss.items()}})
        res.metrics = metrics
        T.log_params_batch(client, rid, {f"final.{k}": v for k, v in res.final_params.items()})
        T.log_params_batch(client, rid, {"final_params_window": res.final_params_window,
                                         "tune.final_params_rule": res.final_params_report.get("rule", ""),
                                         "tune.final_params_refits": res.final_params_report.get("n_fits", 0),
                                         "tune.final_params_reused": res.final_params_report.get("n_reused", 0),
                                         "calibration.method": deploy.method, "calibration.reason": deploy.reason})
        T.log_metrics_batch(client, rid, metrics)
        artifacts = log_walk_forward_outputs(client, rid, res, config.horizon, hooks.window_runs, prices, strategy,
                                             synthetic_features=synthetic_features(data.source.get("synthetic_tables") or ()))
        seconds = time.perf_counter() - t0
        cpu = sum(w.tuning.cpu_seconds for w in res.windows) + float(res.final_params_report.get("cpu_seconds", 0.0))
        T.log_metrics_batch(client, rid, {"tune_seconds": seconds, "tuning_cpu_seconds": cpu})
    return TuneResult(
        run_id=rid,
        experiment_id=experiment_id,
        metrics=res.metrics,
        final_params=res.final_params,
        final_params_window=res.final_params_window,
        windows=window_table(res, hooks.window_runs),
        artifacts=artifacts,
        data_window=window,
        storage=config.storage or "in-memory",
        study_names=hooks.study_names,
        skipped_windows=[{**w.as_dict(), "reason": r} for w, r in res.skipped],
        seconds=seconds,
        calibration={k: v for k, v in deploy.as_dict().items() if k != "calibrator"},
    )


def run_tune(
    settings: "Settings",
    *,
    symbols: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    n_trials: int | None = None,
    n_jobs: int | None = None,
    storage: str | None = None,
    workers: int | None = None,
) -> TuneResult:
    """Load the labelled panel and run the tracked walk-forward tuning (see module docstring).

    ``workers`` (default ``tuning.workers``): processes joining each window's Optuna study; more
    than one needs a shared ``storage`` (PostgreSQL intended)."""
    tune_config(settings, n_trials=n_trials, n_jobs=n_jobs, storage=storage, workers=workers)  # fail before loading
    data = load_training_data(settings, symbols, start, end, store=feature_store(settings))
    return tune_with_tracking(settings, data, n_trials=n_trials, n_jobs=n_jobs, storage=storage, workers=workers)


def main(argv: list[str] | None = None) -> None:

    prefer_passive_openmp()

    parser = common_parser("python -m entrypoints.tune", "Walk-forward Optuna tuning logged to MLflow.")
    parser.add_argument("--trials", "--n-trials", dest="n_trials", type=opt_int("trials"), default=None,
                        help="Optuna trials per window (default tuning.n_trials)")
    parser.add_argument("--jobs", "--n-jobs", dest="n_jobs", type=opt_int("jobs"), default=None,
                        help="parallel trials (default tuning.n_jobs)")
    parser.add_argument("--workers", type=opt_int("workers"), default=None,
                        help="processes joining each window's study (default tuning.workers; >1 needs a shared "
                             "--storage, PostgreSQL intended)")
    parser.add_argument("--storage", type=opt_str, default=None, help="Optuna storage URL (default: beside MLflow)")
    args = parser.parse_args(argv)
    check_date_order(parser, args.start, args.end)

    def body() -> int:

        settings = load_settings(args.config)
        res = run_tune(settings, symbols=args.symbols, start=args.start, end=args.end, n_trials=args.n_trials,
                       n_jobs=args.n_jobs, storage=args.storage, workers=args.workers)
        out = {k: getattr(res, k) for k in ("run_id", "metrics", "final_params", "data_window", "artifacts")}
        print(json.dumps(jsonable(out), indent=2, default=str))
        return 0

    run_main(body)
