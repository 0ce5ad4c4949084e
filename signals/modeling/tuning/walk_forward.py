"""The walk-forward loop: tune (or fit) every window, predict its test rows, calibrate them
forward-chained, and choose the deployable params.

The loop (:func:`run_walk_forward`) refits the best params of each window on the whole (purged)
training window with the rounds early stopping kept, predicts the test window raw, and calibrates
those predictions with a calibrator fitted only on earlier windows' out-of-sample predictions
(:mod:`signals.modeling.forward_calibration`). It reports through :class:`WalkForwardHooks` (the
MLflow side lives in :mod:`signals.lifecycle.tune`).

Retune policy: the ``k``-th tuned window (0-based) runs ``config.trials_for(k)`` trials, a full
study every ``full_every`` windows and a short one in between, and every study starts from the
previous tuned window's best trials (``warm_start_trials``): neighbouring windows share most of
their training rows, so last quarter's winners are the natural first guesses.

Final params (:func:`choose_final_params`): not the single best trial of the last window (on
noisy data that is the trial that fitted one validation slice's noise best) but, among the best
trials of the last ``final_params_windows`` windows, the one with the lowest validation log-loss
pooled over all of those windows' validation slices (a candidate a window's study already ran
on every fit row is not refitted: its score is the trial's). ``n_estimators`` stays the trial's cap: the
final fit sets its rounds by early stopping on its own last slice
(:func:`signals.modeling.final_fit.fit_booster`).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from signals.core.digest import frame_digest
from signals.modeling import metrics as M
from signals.modeling.final_fit import predictions_frame
from signals.modeling.forward_calibration import CalibrationChoice, ForwardChainedCalibration
from signals.modeling.model import InsufficientDataError, MLPipeline, xgb_params_from
from signals.modeling.splits import (
    WalkForwardValidator,
    Window,
    frame_holdout_split,
    label_end_dates,
    row_dates,
    row_symbols,
)
from signals.modeling.tuning.objective import (
    TrialCallback,
    TuneConfig,
    WindowTuning,
    params_key,
    process_cpu_seconds,
    study_name_for,
)
from signals.modeling.tuning.parallel import TrialSinkFactory, TuneWorkerPool, fixed_window, tune_window

log = logging.getLogger(__name__)


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

    def worker_trial_sink(self) -> TrialSinkFactory | None:
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
    dask_client: Any = None,
) -> WalkForwardResult:
    """Tune (or, with ``fixed_params``, just fit), predict and forward-chain-calibrate every window.

    ``features``/``y``/``forward_return`` hold only labelled rows, aligned, indexed by
    (symbol, date). ``max_windows`` keeps only the most recent windows (benchmarks, demos).
    ``dask_client`` runs every window's trials on that Dask cluster (``compute.address``).
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
                                         fixed_params, dask_client)
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
    cpu0 = process_cpu_seconds()
    recent = [r for r in results if r.train_index is not None][-max(1, int(config.final_params_windows)):]
    candidates: list[tuple[int, dict[str, Any]]] = []
    for r in recent:
        params = dict(r.tuning.trial_params or r.tuning.best_params)
        if all(params != c for _, c in candidates):
            candidates.append((r.window.index, params))
    if len(recent) < 2 or len(candidates) < 2:
        last = results[-1]
        return (dict(last.tuning.trial_params or last.tuning.best_params),
                {"rule": "best trial of the most recent window (one candidate)", "window": last.window.index,
                 "cpu_seconds": 0.0, "n_fits": 0, "n_reused": 0})
    scores = {i: [0.0, 0] for i in range(len(candidates))}
    table: list[dict[str, Any]] = []
    n_fits = n_reused = 0
    for r in recent:
        X_tr, y_tr = features.iloc[r.train_index], y[r.train_index]
        fit_idx, val_idx, _ = frame_holdout_split(X_tr, fraction=config.validation_fraction, horizon=config.horizon,
                                                  embargo_days=config.embargo_days)
        for i, (src, params) in enumerate(candidates):
            known = r.tuning.full_values.get(params_key(params))
            if known is not None:  # this window's study ran the same trial on every fit row: same fit, same score
                value, n_rounds = known
                n_reused += 1
            else:
                pipe = MLPipeline(params, horizon=config.horizon, min_training_samples=1, seed=config.seed,
                                  n_jobs=config.threads(), class_weight=config.class_weight)
                m = pipe.train(X_tr.iloc[fit_idx], y_tr[fit_idx], eval_set=(X_tr.iloc[val_idx], y_tr[val_idx]),
                               early_stopping_rounds=config.early_stopping_rounds)
                value, n_rounds = float(m["val_log_loss"]), int(m["n_rounds"])
                n_fits += 1
            scores[i][0] += value * len(val_idx)
            scores[i][1] += len(val_idx)
            table.append({"candidate_window": src, "scored_on_window": r.window.index, "val_log_loss": value,
                          "n_rounds": n_rounds, "rows": int(len(val_idx)), "reused": known is not None})
    pooled = {i: tot / max(n, 1) for i, (tot, n) in scores.items()}
    best = min(pooled, key=lambda i: (pooled[i], -candidates[i][0]))
    src, params = candidates[best]
    report = {
        "rule": (f"best pooled validation log-loss over the last {len(recent)} windows among their best trials "
                 "(n_estimators = the trial's cap; the final fit early-stops)"),
        "window": src,
        "pooled_val_log_loss": {str(candidates[i][0]): v for i, v in pooled.items()},
        "table": table,
        "cpu_seconds": process_cpu_seconds() - cpu0,
        "n_fits": n_fits,
        "n_reused": n_reused,
    }
    return dict(params), report


def _worker_pool(config: TuneConfig):
    """The worker processes of the whole walk-forward (``workers > 1``); else a null context."""

    if config.workers <= 1:
        return contextlib.nullcontext(None)
    return TuneWorkerPool(config.workers - 1, config.storage)


def _walk_windows(features: pd.DataFrame, y_arr: np.ndarray, fwd: np.ndarray, label_end: np.ndarray, splits: list,
                  config: TuneConfig, hooks: WalkForwardHooks, pool: TuneWorkerPool | None,
                  calibration: ForwardChainedCalibration, fixed_params: dict[str, Any] | None,
                  dask_client: Any = None) -> tuple[list[WindowResult], list[tuple[Window, str]]]:
    results: list[WindowResult] = []
    skipped: list[tuple[Window, str]] = []
    warm: list[dict[str, Any]] = []  # the previous tuned window's best trials
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
                remote = config.workers > 1 or dask_client is not None
                sink = sink_of() if remote and on_trial is not None and sink_of is not None else None
                tuning = tune_window(X_tr, y_tr, config=config, study_name=name, on_trial=on_trial,
                                     worker_sink=sink, pool=pool, n_trials=config.trials_for(len(results)),
                                     warm_start=warm, dask_client=dask_client)
                warm = tuning.top_trials
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
