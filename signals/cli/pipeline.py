"""``signals run``: the whole lifecycle (what ``make run`` and ``mlflow run . -e main`` do)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from signals.cli.common import Context, pass_ctx, print_table

if TYPE_CHECKING:
    from entrypoints.main import PipelineResult
    from signals.config import Settings


def _fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def print_summary(res: "PipelineResult", settings: "Settings") -> None:
    """The short report a newcomer reads at the end of ``make run``."""
    d = res.data
    click.echo("")
    click.echo("=" * 78)
    click.echo(
        f"signals pipeline finished in {res.seconds:.0f}s  (MLflow run {res.run_id[:8]}, "
        f"{sum(s.reused for s in res.steps)} step(s) reused)"
    )
    click.echo(
        f"data: {d['provider']} - {', '.join(d['symbols'][:8])}{' ...' if len(d['symbols']) > 8 else ''}, "
        f"{d['first']} .. {d['last']}, {d['rows']} rows x {d['n_features']} features"
    )
    if d["synthetic_tables"]:
        click.echo(f"      synthetic inputs: {', '.join(d['synthetic_tables'])} (no offline public source)")
    click.echo("")
    tm = res.tune_metrics
    click.echo(f"walk-forward out-of-sample ({res.step('tune').summary.get('windows', '?')} windows, purged):")
    print_table(
        [
            {"metric": "log-loss", "model": tm.get("oos_log_loss"), "baseline": tm.get("baseline_prior_log_loss"),
             "baseline is": "class prior"},
            {"metric": "accuracy", "model": tm.get("oos_accuracy"), "baseline": tm.get("baseline_always_up_accuracy"),
             "baseline is": "always UP"},
            {"metric": "Sharpe", "model": tm.get("oos_sharpe"), "baseline": tm.get("baseline_buy_hold_sharpe"),
             "baseline is": "buy and hold"},
        ],
        ["metric", "model", "baseline", "baseline is"],
    )
    hm = res.train_metrics
    click.echo("")
    click.echo(
        f"hold-out ({settings.walk_forward.test_months} months, evaluation fit): log-loss {_fmt(hm.get('holdout_log_loss'))} "
        f"(prior {_fmt(hm.get('holdout_baseline_prior_log_loss'))}), accuracy {_fmt(hm.get('holdout_accuracy'))}, "
        f"ECE {_fmt(hm.get('holdout_ece_raw'))} -> {_fmt(hm.get('holdout_ece'))} after calibration"
    )
    click.echo(f"promotion gate: {res.promote.get('decision')} - {res.promote.get('message')}")
    click.echo(f"champion: {settings.mlflow.model_name} version {res.champion}")
    click.echo(f"monitor: {res.monitor.get('headline', '')}")
    click.echo("")
    sigs = res.signals
    if sigs:
        click.echo(f"signals ({len(sigs)}):")
        print_table(
            [
                {"symbol": s.symbol, "date": str(getattr(s.timestamp, "date", lambda: s.timestamp)()),
                 "direction": getattr(s.direction, "value", str(s.direction)), "confidence": float(s.strength)}
                for s in sigs
            ],
            ["symbol", "date", "direction", "confidence"],
        )
    else:
        click.echo(
            f"signals: none today (no calibrated confidence above {settings.ml.confidence_threshold})"
        )
    click.echo("")
    from signals.redaction import redact_url

    uri = redact_url(settings.mlflow.tracking_uri)
    click.echo("where to look:")
    click.echo(f"  mlflow ui --backend-store-uri {uri}     (or: make ui) -> http://127.0.0.1:5000")
    click.echo(f"  signals registry list   |   signals generate   |   signals serve   |   signals monitor")
    click.echo("=" * 78)


@click.command("run")
@click.option("--symbols", "-s", multiple=True, help="Symbols (default: data.symbols, else the whole universe).")
@click.option("--start", default=None, help="First date (ISO).")
@click.option("--end", default=None, help="Last date (ISO).")
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=None, help="Optuna trials per window (default: tuning.n_trials).")
@click.option("--jobs", "n_jobs", type=click.IntRange(min=1), default=None, help="Parallel trials (default: tuning.n_jobs).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Tuning processes per study (default: tuning.workers; needs a shared --storage).")
@click.option("--replay-days", type=click.IntRange(min=0), default=0, help="Also predict the last N days (predictions log).")
@click.option("--no-reuse", is_flag=True, help="Re-run every step even when a finished identical one exists.")
@pass_ctx
def run(ctx: Context, symbols: tuple[str, ...], start: str | None, end: str | None, n_trials: int | None,
        n_jobs: int | None, workers: int | None, replay_days: int, no_reuse: bool) -> None:
    """Run the whole lifecycle: features, tune, train, register, gated promote, monitor, generate."""
    from entrypoints import prefer_passive_openmp

    prefer_passive_openmp()
    from entrypoints.main import run_pipeline

    settings = ctx.settings
    res = run_pipeline(
        settings, symbols=[s.upper() for v in symbols for s in v.split(",") if s] or None, start=start, end=end,
        n_trials=n_trials, n_jobs=n_jobs, workers=workers, reuse=not no_reuse, replay_days=replay_days,
        progress=lambda msg: click.echo(f"-> {msg}", err=True),
    )
    print_summary(res, settings)
