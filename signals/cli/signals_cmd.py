"""``signals generate`` and ``signals backtest``: the champion's signals, and the OOS backtest."""

from __future__ import annotations

import click

from signals.cli.common import Context, echo_json, pass_ctx, print_table
from signals.lifecycle.backtest import backtest_tune_run
from signals.lifecycle.generate import run_generate
from signals.trading.strategy import signals_table


@click.command("generate")
@click.option("--as-of", "as_of", default=None, help="Generate as of this date (ISO; default: the last date in the data).")
@click.option("--symbols", "-s", multiple=True, help="Symbols (repeatable; default: the configured universe).")
@click.option(
    "--replay-days",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also replay the N trading days before the as-of date, each using only data up to its own date.",
)
@click.option("--no-publish", is_flag=True, help="Do not mirror the signals to Redis.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def generate(ctx: Context, as_of: str | None, symbols: tuple[str, ...], replay_days: int, no_publish: bool, as_json: bool) -> None:
    """Today's LONG/SHORT signals from the champion; logged to the predictions log and mirrored to Redis."""

    sink: list = []
    signals = run_generate(
        ctx.settings, as_of=as_of, symbols=list(symbols) or None, replay_days=replay_days,
        publish=not no_publish, outcome=sink,
    )
    out = sink[0]
    if as_json:
        echo_json(
            {
                "as_of": out.as_of.date().isoformat(),
                "model_version": out.model_version,
                "predictions_logged": int(len(out.predictions)),
                "replayed_dates": max(len(out.dates) - 1, 0),
                "in_sample_predictions": out.n_in_sample,
                "published": out.published,
                "signals": out.records,  # every symbol, NONE included (see README "Signal schema")
            }
        )
        return

    click.echo(f"as of {out.as_of.date()}  model v{out.model_version}  threshold {ctx.settings.ml.confidence_threshold}")
    rows = [
        {
            "symbol": r["symbol"],
            "signal": r["signal"],
            "class": r["predicted_class"],
            "confidence": r["confidence"],
            "p_down": r["p_down"],
            "p_flat": r["p_flat"],
            "p_up": r["p_up"],
            "reason": r["reason"] or "",
        }
        for r in out.records
    ]
    print_table(rows, ["symbol", "signal", "class", "confidence", "p_down", "p_flat", "p_up", "reason"])
    click.echo("")
    click.echo(f"{len(signals)} signal(s): " + (", ".join(f"{r['symbol']} {r['signal']}" for r in signals_table(signals)) or "none"))
    extra = f" over {len(out.dates)} dates" if len(out.dates) > 1 else ""
    click.echo(f"{len(out.predictions)} prediction(s){extra} appended to the predictions log")
    if out.n_in_sample:
        click.echo(f"warning: {out.n_in_sample} prediction(s) fall inside the champion's training window (in-sample)")
    if out.published is None and not no_publish:
        click.echo("Redis mirror: not written (off or unreachable)")


@click.command("backtest")
@click.option("--tune-run-id", default=None, help="Tune run whose OOS predictions to replay (default: the latest).")
@click.option("--no-log", is_flag=True, help="Do not log the backtest to MLflow.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def backtest(ctx: Context, tune_run_id: str | None, no_log: bool, as_json: bool) -> None:
    """Out-of-sample backtest of the signal strategy over the walk-forward test windows."""

    result, tune_id, run_id = backtest_tune_run(ctx.settings, tune_run_id=tune_run_id, log_to_mlflow=not no_log)
    if as_json:
        echo_json({"tune_run_id": tune_id, "backtest_run_id": run_id, "params": result.params, "metrics": result.metrics})
        return
    p = result.params
    click.echo(
        f"tune run {tune_id}: {p['start']} .. {p['end']}, {p['n_symbols']} symbols, threshold "
        f"{p['confidence_threshold']}, min hold {p['min_hold_days']} days, cost {p['cost_bps']} bps"
    )
    keys = ["total_return", "annual_return", "sharpe", "max_drawdown", "hit_rate", "turnover", "annual_turnover", "exposure", "n_trades", "n_days"]
    rows = [{"metric": k, "strategy": result.metrics["strategy"][k], "buy_and_hold": result.metrics["benchmark"][k]} for k in keys]
    print_table(rows, ["metric", "strategy", "buy_and_hold"])
    if run_id:
        click.echo(f"\nlogged to MLflow run {run_id} (equity_curve.png, daily_returns.parquet)")
