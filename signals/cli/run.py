"""``signals run``: the whole lifecycle (what ``make run`` and ``mlflow run . -e main`` do)."""

from __future__ import annotations

import click

from signals.cli.common import Context, pass_ctx


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
    from signals.lifecycle.params import prefer_passive_openmp

    prefer_passive_openmp()
    from signals.lifecycle.run import run_pipeline

    settings = ctx.settings
    res = run_pipeline(
        settings, symbols=[s.upper() for v in symbols for s in v.split(",") if s] or None, start=start, end=end,
        n_trials=n_trials, n_jobs=n_jobs, workers=workers, reuse=not no_reuse, replay_days=replay_days,
        progress=lambda msg: click.echo(f"-> {msg}", err=True),
    )
    from signals.lifecycle.report import summary_lines

    for line in summary_lines(res, settings):
        click.echo(line)
