"""``signals run``: the whole lifecycle (what ``make run`` and ``mlflow run . -e main`` do)."""

from __future__ import annotations

import click

from signals.cli.common import Context, check_date_order, end_option, pass_ctx, start_option, symbols_option
from signals.lifecycle.params import prefer_passive_openmp
from signals.lifecycle.report import summary_lines
from signals.lifecycle.run import run_pipeline


@click.command("run")
@symbols_option
@start_option
@end_option
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=None, help="Optuna trials per window (default: tuning.n_trials).")
@click.option("--jobs", "n_jobs", type=click.IntRange(min=1), default=None, help="Parallel trials (default: tuning.n_jobs).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Tuning processes per study (default: tuning.workers; needs a shared --storage).")
@click.option("--replay-days", type=click.IntRange(min=0), default=0, help="Also predict the last N days (predictions log).")
@click.option("--no-reuse", is_flag=True, help="Re-run every step even when a finished identical one exists.")
@pass_ctx
def run(ctx: Context, symbols: list[str] | None, start: str | None, end: str | None, n_trials: int | None,
        n_jobs: int | None, workers: int | None, replay_days: int, no_reuse: bool) -> None:
    """Run the whole lifecycle: features, tune, train, register, gated promote, monitor, generate."""

    prefer_passive_openmp()

    check_date_order(start, end)
    settings = ctx.settings
    res = run_pipeline(
        settings, symbols=symbols, start=start, end=end,
        n_trials=n_trials, n_jobs=n_jobs, workers=workers, reuse=not no_reuse, replay_days=replay_days,
        progress=lambda msg: click.echo(f"-> {msg}", err=True),
    )

    for line in summary_lines(res, settings):
        click.echo(line)
