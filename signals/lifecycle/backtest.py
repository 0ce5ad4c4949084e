"""``signals backtest``: price a tune run's out-of-sample predictions with the strategy and log the
result as its own MLflow run (the engine, pure, is :mod:`signals.trading.backtest`)."""

from __future__ import annotations

import tempfile
from typing import Any

import pandas as pd

from signals.adapters.tracking import (
    STEP_TUNE,
    TAG_STEP,
    configure_mlflow,
    log_metrics_batch,
    run_identity_tags,
    set_tags_batch,
    unique_run_name,
)
from signals.data import get_provider
from signals.trading.backtest import SHARPE_DEFINITION, BacktestError, BacktestResult, plot_equity, run_backtest

OOS_FILE = "oos_predictions.parquet"


def find_tune_run(client: Any, experiment_id: str, tune_run_id: str | None = None) -> Any:
    """The given run, or the latest finished tune run that logged OOS predictions.

    A tune run is found whether it stands alone (``signals tune``, ``mlflow run -e tune``) or is a
    child of a ``main`` pipeline run (``signals run``, ``mlflow run -e main``): the ``signals.step``
    tag alone marks a tune step's own run (its window and trial runs carry other step tags).
    """
    from mlflow.exceptions import MlflowException

    if tune_run_id:
        try:
            run = client.get_run(tune_run_id)
        except MlflowException as exc:
            raise BacktestError(f"no MLflow run {tune_run_id!r}: {exc.message}") from None
        if OOS_FILE not in {a.path for a in client.list_artifacts(run.info.run_id)}:
            raise BacktestError(f"run {tune_run_id} has no {OOS_FILE} (is it a tune run?)")
        return run
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_STEP}` = '{STEP_TUNE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for run in runs:
        if OOS_FILE in {a.path for a in client.list_artifacts(run.info.run_id)}:
            return run
    exp = client.get_experiment(experiment_id)
    raise BacktestError(
        f"no finished tune run with out-of-sample predictions in experiment {exp.name!r}: run the pipeline "
        "(`signals run`) or a short tune (`signals tune --trials 5`) first, or pass --tune-run-id "
        "(a tune made by `mlflow run` lives in the experiment named by --experiment-name)"
    )


def backtest_tune_run(settings: Any, *, tune_run_id: str | None = None, log_to_mlflow: bool = True) -> tuple[BacktestResult, str, str | None]:
    """Backtest a tune run's OOS predictions; returns (result, tune_run_id, backtest_run_id)."""

    import mlflow


    exp_id = configure_mlflow(settings)
    client = mlflow.MlflowClient()
    run = find_tune_run(client, exp_id, tune_run_id)
    rid = run.info.run_id
    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path=OOS_FILE)
    preds = pd.read_parquet(local)
    provider = get_provider(settings)
    symbols = sorted(preds["symbol"].astype(str).unique())
    provider.resolve_symbols(symbols)  # unknown symbol -> clear error
    start = pd.Timestamp(preds["date"].min())
    prices = pd.DataFrame({s: provider.bars(s, start=start)["close"] for s in symbols})
    s = settings.strategy
    result = run_backtest(
        preds, prices, confidence_threshold=settings.ml.confidence_threshold,
        min_hold_days=s.min_hold_days, cost_bps=s.cost_bps,
    )
    if not log_to_mlflow:
        return result, rid, None
    from mlflow.entities import Param


    bt = client.create_run(
        exp_id, run_name=unique_run_name(f"backtest-{rid[:8]}"),
        tags={**run_identity_tags(), "signals.step": "backtest", "signals.tune_run_id": rid},
    )
    bid = bt.info.run_id
    try:
        client.log_batch(bid, params=[Param(k, str(v)) for k, v in result.params.items()])
        log_metrics_batch(client, bid, result.flat_metrics())
        set_tags_batch(client, bid, {"signals.backtest_definitions": (
            f"{SHARPE_DEFINITION}; turnover: mean daily sum |w_t - w_(t-1)|; hit rate: share of held symbol-days "
            "with sign(position) == sign(next-day return); max drawdown: positive fraction from the running peak"
        )})
        with tempfile.TemporaryDirectory(prefix="signals-backtest-") as tmp:
            plot_equity(result, f"{tmp}/equity_curve.png", title=f"OOS walk-forward backtest (tune run {rid[:8]})")
            result.daily.reset_index().to_parquet(f"{tmp}/daily_returns.parquet", index=False)
            result.positions.reset_index().to_parquet(f"{tmp}/positions.parquet", index=False)
            client.log_artifacts(bid, tmp)
        client.set_terminated(bid, "FINISHED")
    except BaseException:
        client.set_terminated(bid, "FAILED")
        raise
    return result, rid, bid
