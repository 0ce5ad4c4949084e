"""``signals run``: the main job that ``make run`` starts."""

from __future__ import annotations

import click

from signals.cli.common import Context, pass_ctx, print_table


@click.command("run")
@pass_ctx
def run(ctx: Context) -> None:
    """Run the main job on the configured data (default: the shipped sample)."""
    from signals.data.checks import check_source

    settings = ctx.settings
    summary = check_source(settings, settings.data.symbols or None)
    click.echo(f"data source: {summary['source']['provider']}")
    print_table(summary["symbols"], ["symbol", "rows", "first", "last", "gaps", "adjusted_rows", "fixes"])
