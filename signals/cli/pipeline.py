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


def _metric_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows for the table: numbers rounded the way a reader compares them."""
    def num(v: Any) -> Any:
        if v is None:
            return ""
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        return "n/a" if f != f else f"{f:.4f}"

    return [{"metric": r["metric"].replace("_", " "), "model": num(r["model"]), "raw booster": num(r.get("raw_model")),
             "baseline": num(r.get("baseline")), "baseline is": r.get("baseline_kind", "")} for r in rows]


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
    from entrypoints.tune import oos_summary_rows

    tm = res.tune_metrics
    click.echo(f"walk-forward out-of-sample ({res.step('tune').summary.get('windows', '?')} windows, purged; "
               "calibrators forward-chained):")
    print_table(_metric_rows(oos_summary_rows(tm)), ["metric", "model", "raw booster", "baseline", "baseline is"])
    cal = res.step("train").summary.get("calibration") or res.step("tune").summary.get("calibration")
    if cal:
        click.echo(f"calibration: {cal}")
    hm = res.train_metrics
    click.echo("")
    click.echo(f"hold-out ({settings.walk_forward.test_months} months, evaluation fit, "
               f"{_fmt(hm.get('holdout_n_rows'), 0)} rows):")
    print_table(_metric_rows(oos_summary_rows(hm, prefix="holdout_", baseline_prefix="holdout_")),
                ["metric", "model", "raw booster", "baseline", "baseline is"])
    click.echo("")
    click.echo(f"promotion gate: {res.promote.get('decision')} - {res.promote.get('message')}")
    if res.champion:
        click.echo(f"champion: {settings.mlflow.model_name} version {res.champion}")
    else:
        click.echo(f"champion: none - no version of {settings.mlflow.model_name} has beaten its class prior yet")
    click.echo(f"monitor: {res.monitor.get('headline', '')}")
    click.echo("")
    sigs = res.signals
    if not res.champion:
        click.echo("signals: none (no champion to generate them)")
    elif sigs:
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
