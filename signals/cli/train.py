"""``signals tune`` and ``signals train``: thin wrappers over ``signals.lifecycle.tune`` / ``signals.lifecycle.train``."""

from __future__ import annotations

import click

from signals.cli.common import (
    Context,
    check_date_order,
    end_option,
    pass_ctx,
    print_table,
    start_option,
    symbols_option,
)
from signals.lifecycle.params import prefer_passive_openmp
from signals.lifecycle.register import register_training_run
from signals.lifecycle.train import run_train
from signals.lifecycle.tune import run_tune

_symbols_opt, _start_opt, _end_opt = symbols_option, start_option, end_option


@click.command("tune")
@_symbols_opt
@_start_opt
@_end_opt
@click.option("--trials", type=click.IntRange(min=1), default=None, help="Optuna trials per window (tuning.n_trials).")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Parallel trials (tuning.n_jobs).")
@click.option("--storage", default=None, help="Optuna storage URL (default: optuna.db beside the MLflow store).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes joining each window's study (tuning.workers); >1 needs a shared --storage, "
                   "e.g. postgresql://user@host:5432/optuna.")
@pass_ctx
def tune(ctx: Context, symbols: list[str] | None, start: str | None, end: str | None, trials: int | None,
         jobs: int | None, storage: str | None, workers: int | None) -> None:
    """Purged walk-forward tuning with Optuna; every window and trial is a nested MLflow run."""

    prefer_passive_openmp()

    check_date_order(start, end)
    res = run_tune(ctx.settings, symbols=symbols, start=start, end=end, n_trials=trials, n_jobs=jobs,
                   storage=storage, workers=workers)
    w = res.data_window
    click.echo(f"tune run {res.run_id}: {len(res.windows)} windows, {w['n_rows']} rows "
               f"({w['start']} .. {w['end']}), {res.seconds:.1f}s")
    print_table(res.summary_rows(), ["metric", "model", "raw_model", "baseline", "baseline_kind"])
    cal = res.calibration
    if cal:
        click.echo(f"calibration for a model trained on all of it: {cal.get('method')} on {cal.get('pool_rows')} "
                   f"out-of-sample rows - {cal.get('reason')}")
    click.echo(f"final params (window {res.final_params_window}): "
               + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in res.final_params.items()))


@click.command("train")
@_symbols_opt
@_start_opt
@_end_opt
@click.option("--tune-run-id", default=None, help="Take the final params of this tune run (default: the latest one).")
@pass_ctx
def train(ctx: Context, symbols: list[str] | None, start: str | None, end: str | None, tune_run_id: str | None) -> None:
    """Evaluate on the hold-out, fit the calibrated model on all data, log it; print its model URI."""

    prefer_passive_openmp()

    check_date_order(start, end)
    res = run_train(ctx.settings, symbols=symbols, start=start, end=end, tune_run_id=tune_run_id)
    w = res.data_window
    src = res.params_source + (f" {res.tune_run_id}" if res.tune_run_id else "")
    click.echo(f"train run {res.run_id}: {w['n_train_rows']} rows ({w['train_start']} .. {w['train_end']}), "
               f"hold-out {w['holdout_start']} .. {w['holdout_end']}, params from {src}")
    click.echo(f"hold-out, evaluation model ({int(res.metrics.get('holdout_n_rows', 0))} rows; raw_model = "
               "the booster before calibration):")
    print_table(res.summary_rows(), ["metric", "model", "raw_model", "baseline", "baseline_kind"])
    cal = res.calibration
    if cal:
        click.echo(f"calibration: {cal.get('method')} on {cal.get('pool_rows')} out-of-sample rows - {cal.get('reason')}")
    click.echo(f"model URI: {res.model_uri}")

    version = register_training_run(ctx.settings, res)
    click.echo(f"registered as {ctx.settings.mlflow.model_name} version {version.version_id} (challenger)")
