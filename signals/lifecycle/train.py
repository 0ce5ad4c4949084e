"""``train`` step: honest hold-out evaluation, then the deployable calibrated model.

One MLflow run (tag ``signals.step=train``):

1. **Params**: explicit ``params`` > ``tune_run_id`` > the latest finished ``tune`` parent run in
   the experiment > ``ml.xgb_params`` from the config (the source is logged as
   ``params_source``).
2. **Calibration evidence**: the walk-forward out-of-sample predictions of that tune run
   (``oos_predictions.parquet``: raw probabilities of models that never saw those rows). Without a
   tune run (params from the config or explicit), the same walk-forward is run here with the fixed
   params and its predictions are logged as ``calibration_oos_predictions.parquet``. Calibrators
   are chosen and fitted forward-chained (:mod:`signals.modeling.forward_calibration`).
3. **Evaluation model** (for the promotion gate): the hold-out is the last
   ``walk_forward.test_months`` calendar months of the labelled data. A booster is fitted on the
   rows before it (purged: labels must end before the hold-out starts, plus
   ``walk_forward.embargo_days``; rounds by early stopping on its own last slice, then refitted on
   all of them), calibrated with the calibrator of OOS rows labelled before the hold-out; it
   predicts the hold-out -> ``holdout_predictions.parquet`` and ``holdout_*`` metrics (raw,
   calibrated and the class prior on the same rows).
4. **Deployable model**: the same booster recipe on *all* labelled rows, calibrated on every OOS
   row, logged with :func:`signals.serving.pyfunc.log_signal_model`. It is not registered here.

``python -m entrypoints.train --symbols AAPL,MSFT --tune-run-id <id>``
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from signals.adapters import tracking as T
from signals.adapters.dask_compute import client_for
from signals.core.errors import SignalsError
from signals.dataset import TrainingData, load_training_data
from signals.lifecycle.params import (
    check_date_order,
    common_parser,
    jsonable,
    opt_str,
    prefer_passive_openmp,
    run_main,
)
from signals.lifecycle.tune import (
    FINAL_PARAMS_FILE,
    OOS_PREDICTIONS_FILE,
    oos_summary_rows,
    strategy_figure,
    strategy_settings,
    tune_config,
)
from signals.lifecycle.wiring import feature_store
from signals.modeling.dask_fit import fit_booster_on_dask
from signals.modeling import metrics as M
from signals.modeling import plots
from signals.modeling.final_fit import (
    CalibratedModel,
    date_range_of,
    fit_booster,
    holdout_start,
    predictions_frame,
)
from signals.modeling.forward_calibration import ForwardChainedCalibration
from signals.modeling.model import InsufficientDataError, xgb_params_from
from signals.modeling.splits import frame_holdout_split
from signals.modeling.tuning.walk_forward import OOS_COLUMNS, run_walk_forward
from signals.serving.guard import FeatureCoverage
from signals.serving.predictor import SignalPredictor
from signals.settings.model import load_settings
from signals.trading.backtest import strategy_metrics

if TYPE_CHECKING:
    from signals.settings.model import Settings

log = logging.getLogger("signals.entrypoints.train")

HOLDOUT_PREDICTIONS_FILE = "holdout_predictions.parquet"
CALIBRATION_OOS_FILE = "calibration_oos_predictions.parquet"
HOLDOUT_COLUMNS = ("symbol", "date", "y", "p_down", "p_flat", "p_up", "raw_down", "raw_flat", "raw_up",
                   "prior_down", "prior_flat", "prior_up")


class TuneRunError(SignalsError, ValueError):
    """The requested tune run is missing, unfinished, or has no final params."""


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    model_uri: str
    metrics: dict[str, float]
    params: dict[str, Any]
    params_source: str
    tune_run_id: str | None
    artifacts: dict[str, str]
    data_window: dict[str, Any]
    model_info: Any = field(default=None, repr=False)
    seconds: float = 0.0
    calibration: dict[str, Any] = field(default_factory=dict)

    def summary_rows(self) -> list[dict[str, Any]]:

        return oos_summary_rows(self.metrics, prefix="holdout_", baseline_prefix="holdout_")


def params_from_tune_run(client: Any, run_id: str, settings: "Settings") -> dict[str, Any]:
    """The final params a tune run logged (``final_params.json``); checks it is a finished tune run."""
    import mlflow
    from mlflow.exceptions import MlflowException


    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise TuneRunError(f"tune run {run_id!r} not found in {settings.mlflow.tracking_uri}") from exc
    if run.data.tags.get(T.TAG_STEP) != T.STEP_TUNE:
        raise TuneRunError(f"run {run_id} is not a tune run (tag {T.TAG_STEP}={run.data.tags.get(T.TAG_STEP)!r})")
    if run.info.status != "FINISHED":
        raise TuneRunError(f"tune run {run_id} did not finish (status {run.info.status})")
    try:
        final = mlflow.artifacts.load_dict(f"{run.info.artifact_uri.rstrip('/')}/{FINAL_PARAMS_FILE}")
    except Exception as exc:  # noqa: BLE001 - any failure: the artifact is unusable
        raise TuneRunError(f"tune run {run_id} has no readable {FINAL_PARAMS_FILE}: {exc}") from exc
    for key in ("ml.prediction_horizon", "ml.up_threshold", "ml.down_threshold"):
        tuned = run.data.params.get(f"cfg.{key}")
        now = settings.flat().get(key)
        if tuned is not None and str(tuned) != str(now):
            log.warning("tune run %s used %s=%s but the current config has %s", run_id, key, tuned, now)
    return dict(final["params"])


def resolve_params(
    settings: "Settings", client: Any, experiment_id: str, *, params: dict[str, Any] | None = None,
    tune_run_id: str | None = None,
) -> tuple[dict[str, Any], str, str | None]:
    """(params, source, tune_run_id) by precedence explicit > tune run > latest tune run > config."""

    if params:
        return xgb_params_from({**xgb_params_from(settings.ml.xgb_params), **params}), "explicit", None
    if tune_run_id:
        return xgb_params_from(params_from_tune_run(client, tune_run_id, settings)), "tune_run", tune_run_id
    latest = T.latest_run(client, experiment_id, T.STEP_TUNE)
    if latest is not None:
        rid = latest.info.run_id
        return xgb_params_from(params_from_tune_run(client, rid, settings)), "latest_tune_run", rid
    return xgb_params_from(settings.ml.xgb_params), "config", None


def oos_calibration_source(settings: "Settings", client: Any, data: TrainingData, tune_run_id: str | None,
                           params: dict[str, Any]) -> tuple[Any, str, Any]:
    """(ForwardChainedCalibration, source description, predictions to log or None).

    The tune run's logged out-of-sample predictions when there is one (and it logged raw
    probabilities); otherwise a walk-forward with ``params`` fixed, run here."""
    import mlflow


    config = tune_config(settings)
    if tune_run_id:
        run = client.get_run(tune_run_id)
        try:
            local = mlflow.artifacts.download_artifacts(run_id=tune_run_id, artifact_path=OOS_PREDICTIONS_FILE)
            oos = pd.read_parquet(local)
            fcc = ForwardChainedCalibration.from_predictions(oos, config.calibration_policy())
        except Exception as exc:  # noqa: BLE001 - a missing or older-format artifact: refit below
            log.warning("tune run %s: its out-of-sample predictions cannot calibrate (%s); running the walk-forward "
                        "with fixed params instead", tune_run_id, exc)
        else:
            digest = run.data.tags.get("signals.data_digest")
            if digest and digest != data.digest:
                log.warning("tune run %s was run on other data (digest %s, now %s): its out-of-sample predictions "
                            "still calibrate, but re-run `signals tune` for this data", tune_run_id, digest[:12],
                            data.digest[:12])
            return fcc, f"tune run {tune_run_id} ({len(oos)} out-of-sample rows)", None
    res = run_walk_forward(data.features, data.y, data.forward_return, config=config, fixed_params=params)

    return res.calibration, f"walk-forward with fixed params ({len(res.predictions)} out-of-sample rows)", \
        res.predictions[list(OOS_COLUMNS)]


def train_with_tracking(
    settings: "Settings", data: TrainingData, *, tune_run_id: str | None = None, params: dict[str, Any] | None = None
) -> TrainResult:
    import mlflow

    from signals.serving.pyfunc import log_signal_model, reference_sample

    t0 = time.perf_counter()
    experiment_id = T.configure_mlflow(settings)
    client = mlflow.MlflowClient()
    chosen, source, tune_id = resolve_params(settings, client, experiment_id, params=params, tune_run_id=tune_run_id)
    ml, wf, tu = settings.ml, settings.walk_forward, settings.tuning
    h = ml.prediction_horizon
    X, y, fwd = data.features, data.y, data.forward_return
    common = dict(horizon=h, validation_fraction=tu.validation_fraction, early_stopping_rounds=tu.early_stopping_rounds,
                  embargo_days=wf.embargo_days, seed=ml.seed, class_weight=ml.class_weight,
                  min_training_samples=ml.min_training_samples)

    # ---- hold-out split (last test_months months), purged by horizon + embargo
    hs = holdout_start(data.last_date, wf.test_months)
    fit_idx, hold_idx, hs = frame_holdout_split(X, start=hs, horizon=h, embargo_days=wf.embargo_days)
    if len(hold_idx) == 0 or len(fit_idx) == 0:
        raise InsufficientDataError(f"cannot carve a {wf.test_months}-month hold-out out of {data.window()}")
    train_start, train_end = date_range_of(X)
    ho_start, ho_end = date_range_of(X.iloc[hold_idx])
    window = {**data.window(), "train_start": train_start, "train_end": train_end,
              "holdout_start": ho_start, "holdout_end": ho_end, "n_train_rows": int(len(X))}

    tags = {
        T.TAG_STEP: T.STEP_TRAIN,
        **T.provenance_tags(data.feature_version),
        T.TAG_DATA_DIGEST: data.digest,
        T.TAG_DATA_PROVIDER: str(data.source.get("provider", "unknown")),
        T.TAG_DATA_SYNTHETIC: str(data.source.get("synthetic", "none")),
        "params_source": source,
        **({T.TAG_TUNE_RUN: tune_id} if tune_id else {}),
        # requested symbols without a labelled row (the reasons are in dropped_symbols.json)
        **({"data.dropped_symbols": ",".join(data.dropped)} if data.dropped else {}),
        **{k: str(v) for k, v in window.items() if k in ("train_start", "train_end", "holdout_start", "holdout_end",
                                                          "n_train_rows")},
    }
    with T.start_step_run(run_name=f"train-{train_start}-{train_end}", tags=tags) as run:
        rid = run.info.run_id
        T.log_resolved_config(client, rid, settings)
        T.log_params_batch(client, rid, {f"xgb.{k}": v for k, v in chosen.items()})
        T.log_params_batch(client, rid, {
            "params_source": source, "tune_run_id": tune_id or "", "data.symbols_used": ",".join(s for s in data.symbols if s not in data.dropped),
            **{k: window[k] for k in ("train_start", "train_end", "holdout_start", "holdout_end", "n_train_rows")},
        })
        T.log_training_dataset(data.frame(), name=f"signals-panel-{data.feature_version}", source=data.source,
                               digest=data.digest)
        T.log_data_warnings(client, rid, data.data_warnings)
        artifacts: dict[str, str] = {}
        if data.dropped:
            T.log_json(client, rid, data.dropped, "dropped_symbols.json")

        # ---- 1. calibration evidence: out-of-sample predictions of the walk-forward
        fcc, cal_source, own_oos = oos_calibration_source(settings, client, data, tune_id, chosen)
        if own_oos is not None:
            artifacts["calibration_oos_predictions"] = T.log_parquet(client, rid, own_oos, CALIBRATION_OOS_FILE)

        # ---- 2. evaluation model: before the hold-out only
        y_arr = y.to_numpy()
        eval_booster = fit_booster(X.iloc[fit_idx], y_arr[fit_idx], chosen, **common)
        eval_cal = fcc.choose(hs)
        X_ho, y_ho = X.iloc[hold_idx], y_arr[hold_idx]
        raw_ho = eval_booster.pipeline.predict(X_ho)
        p_ho = eval_cal.calibrator.transform(raw_ho)
        prior_ho = M.class_prior_proba(y_arr[fit_idx], len(y_ho))
        ho_dates = X_ho.index.get_level_values("date").to_numpy()
        hm = M.evaluation_metrics(y_ho, p_ho, raw=raw_ho, prior=prior_ho, dates=ho_dates,
                                  forward_returns=fwd.to_numpy()[hold_idx], confidence_threshold=ml.confidence_threshold,
                                  interval=True, block=h, seed=ml.seed)
        ho_frame = predictions_frame(X_ho.index, y_ho, p_ho, forward_return=fwd.to_numpy()[hold_idx])
        ho_frame[["raw_down", "raw_flat", "raw_up"]] = raw_ho
        ho_frame[["prior_down", "prior_flat", "prior_up"]] = prior_ho
        prices = data.prices()
        strategy = strategy_settings(settings)
        if prices is not None:
            hm.update(strategy_metrics(ho_frame, prices, **strategy))
        metrics: dict[str, float] = {f"holdout_{k}": v for k, v in hm.items()}
        metrics.update({"eval_fit_rows": float(eval_booster.rows), "eval_n_rounds": float(eval_booster.n_rounds),
                        "eval_calibration_pool_rows": float(eval_cal.pool_rows)})
        T.log_params_batch(client, rid, {
            "eval_fit_start": eval_booster.fit_range[0], "eval_fit_end": eval_booster.fit_range[1],
            "eval_stopping_start": eval_booster.stopping_range[0], "eval_calibration.method": eval_cal.method,
        })
        artifacts["holdout_predictions"] = T.log_parquet(client, rid, ho_frame[list(HOLDOUT_COLUMNS)],
                                                         HOLDOUT_PREDICTIONS_FILE)

        # ---- 3. deployable model: all labelled rows; calibrator from every out-of-sample row
        if settings.compute.distributed_final_fit:  # xgboost.dask on the cluster: its result depends on the worker count
            final_booster, workers = fit_booster_on_dask(client_for(settings.compute.address), X, y_arr, chosen, **common)
            T.log_params_batch(client, rid, {"final_fit.dask_workers": workers})
        else:
            final_booster = fit_booster(X, y_arr, chosen, **common)
        final_cal = fcc.choose(None)
        final = CalibratedModel(final_booster.pipeline, final_cal.calibrator, final_booster.params,
                                calibration=final_cal.as_dict())
        in_sample = final.pipeline.train_metrics_
        metrics.update({"train_log_loss": in_sample["log_loss"], "train_accuracy": in_sample["accuracy"],
                        "fit_rows": float(final_booster.rows), "n_rounds": float(final_booster.n_rounds),
                        "stopping_log_loss": final_booster.stopping_log_loss,
                        "calibration_pool_rows": float(final_cal.pool_rows),
                        "calibration_selection_rows": float(final_cal.selection_rows),
                        **{f"calibration_fc_log_loss_{k}": v for k, v in final_cal.candidate_log_loss.items()}})
        T.log_params_batch(client, rid, {
            "fit_start": final_booster.fit_range[0], "fit_end": final_booster.fit_range[1],
            "stopping_start": final_booster.stopping_range[0], "calibration.method": final_cal.method,
            "calibration.source": cal_source, "calibration.reason": final_cal.reason,
            "class_weight": ml.class_weight,
        })
        T.log_metrics_batch(client, rid, metrics)
        T.log_json(client, rid, {"evaluation_model": eval_cal.as_dict(), "deployable_model": final_cal.as_dict(),
                                 "source": cal_source}, "calibration.json")

        metadata = {
            "feature_version": data.feature_version,
            "xgb_params": final_booster.params,
            "params_source": source,
            "tune_run_id": tune_id,
            "train_run_id": rid,
            "prediction_horizon": h,
            "up_threshold": ml.up_threshold,
            "down_threshold": ml.down_threshold,
            "class_weight": ml.class_weight,
            "calibration_method": final_cal.method,
            "calibration_pool_rows": final_cal.pool_rows,
            "data_digest": data.digest,
            **{k: window[k] for k in ("train_start", "train_end", "holdout_start", "holdout_end", "n_train_rows")},
            "holdout_log_loss": metrics["holdout_log_loss"],
            "holdout_prior_log_loss": metrics.get("holdout_baseline_prior_log_loss"),
        }
        coverage = FeatureCoverage.from_training(X, ml.min_feature_coverage)  # what the guard compares rows with
        predictor = SignalPredictor.from_model(final, ml.confidence_threshold, metadata, coverage=coverage)
        reference = reference_sample(X, settings.monitoring.reference_rows, seed=ml.seed)
        info = log_signal_model(predictor, reference=reference, input_example=X.head(5), metadata_extra=metadata)
        client.set_tag(rid, "signals.model_uri", info.model_uri)

        # ---- plots
        imp = final.pipeline.feature_importance("gain")
        figures = {
            "plots/feature_importance.png": plots.feature_importance(imp),
            "plots/confusion_matrix.png": plots.confusion_matrix(y_ho, p_ho, "Hold-out confusion matrix"),
            "plots/reliability.png": plots.reliability_diagram(
                y_ho, {"raw": raw_ho, "calibrated": p_ho}, title="Hold-out reliability (evaluation model)"),
        }
        fig = strategy_figure(ho_frame, prices, strategy, "Hold-out: strategy (net of costs) vs buy-and-hold")
        if fig is not None:
            figures["plots/cumulative_returns.png"] = fig
        for path, fig in figures.items():
            artifacts[path.split("/")[-1].removesuffix(".png")] = T.log_figure(client, rid, fig, path)
        T.log_json(client, rid, {"params": final_booster.params, "source": source, "tune_run_id": tune_id},
                   "params.json")
        seconds = time.perf_counter() - t0
        T.log_metrics_batch(client, rid, {"train_seconds": seconds})

    return TrainResult(
        run_id=rid, experiment_id=experiment_id, model_uri=info.model_uri, metrics=metrics, params=final_booster.params,
        params_source=source, tune_run_id=tune_id, artifacts=artifacts, data_window=window, model_info=info,
        seconds=seconds, calibration=final_cal.as_dict(),
    )


def run_train(
    settings: "Settings",
    *,
    symbols: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    tune_run_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> TrainResult:
    """Load the labelled panel, evaluate on the hold-out, fit and log the deployable model."""
    data = load_training_data(settings, symbols, start, end, store=feature_store(settings))
    return train_with_tracking(settings, data, tune_run_id=tune_run_id, params=params)


def main(argv: list[str] | None = None) -> None:

    prefer_passive_openmp()

    parser = common_parser("python -m entrypoints.train", "Fit, evaluate and log the calibrated signal model.")
    parser.add_argument("--tune-run-id", dest="tune_run_id", type=opt_str, default=None,
                        help="take the final params of this tune run (default: the latest finished one)")
    parser.add_argument("--params", type=opt_str, default=None,
                        help='explicit XGBoost params as JSON, e.g. \'{"max_depth": 4}\' (overrides tune runs)')
    args = parser.parse_args(argv)
    check_date_order(parser, args.start, args.end)
    explicit = None
    if args.params:
        try:
            explicit = json.loads(args.params)
        except json.JSONDecodeError as exc:
            parser.error(f"--params must be a JSON object: {exc}")
        if not isinstance(explicit, dict):
            parser.error("--params must be a JSON object")
        try:

            xgb_params_from(explicit)
        except ValueError as exc:
            parser.error(f"--params: {exc}")

    def body() -> int:

        settings = load_settings(args.config)
        res = run_train(settings, symbols=args.symbols, start=args.start, end=args.end,
                        tune_run_id=args.tune_run_id, params=explicit)
        out = {k: getattr(res, k) for k in ("run_id", "model_uri", "metrics", "params", "params_source",
                                            "tune_run_id", "data_window")}
        print(json.dumps(jsonable(out), indent=2, default=str))
        return 0

    run_main(body)
