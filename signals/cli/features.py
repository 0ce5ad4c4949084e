"""``signals features ...``: build the feature cache and show the feature spec."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from signals.cli.common import Context, echo_json, end_option, pass_ctx, print_table, start_option, symbols_option
from signals.data import get_provider
from signals.features import FEATURE_VERSION
from signals.features.availability import absent_field_summary
from signals.features.spec import FEATURES, category_summary, registry_markdown
from signals.lifecycle.wiring import feature_store


@click.group()
def features() -> None:
    """Build and inspect point-in-time features."""


@features.command("build")
@symbols_option
@start_option
@end_option
@click.option("--n-jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: features.n_jobs).")
@click.option("--no-cache", is_flag=True, help="Recompute everything and do not write the cache.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@pass_ctx
def build(
    ctx: Context, symbols: list[str] | None, start: str | None, end: str | None, n_jobs: int | None, no_cache: bool, as_json: bool
) -> None:
    """Compute features for the symbols, cache them, and print counts and NaN shares per category."""


    settings = ctx.settings
    provider = get_provider(settings)
    requested = provider.resolve_symbols(symbols or settings.data.symbols or None)
    overrides: dict[str, object] = {"use_cache": not no_cache}
    if n_jobs is not None:
        overrides["n_jobs"] = n_jobs
    store = feature_store(settings, **overrides)
    with tqdm(total=len(requested), desc="features", unit="symbol", file=sys.stderr, disable=None) as bar:
        frame = store.get_features(
            requested, start or settings.data.start, end or settings.data.end, provider, progress=lambda _: bar.update(1)
        )
    stats = store.last_stats
    dates = frame.index.get_level_values("date")
    summary = {
        "feature_version": FEATURE_VERSION,
        "cache_dir": str(store.cache_dir),
        "symbols": stats.symbols,
        "rows": stats.rows,
        "first": dates.min().date().isoformat(),
        "last": dates.max().date().isoformat(),
        "from_cache": stats.cache_hits,
        "built": stats.built,
        "seconds": round(stats.seconds, 3),
        "categories": category_summary(frame),
        "synthetic_tables": provider.describe().get("synthetic_tables", []),
        "unavailable": absent_field_summary(stats.absent_fields),
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"{stats.symbols} symbol(s), {stats.rows} rows ({summary['first']} to {summary['last']}), "
        f"{stats.cache_hits} from cache, {stats.built} built in {stats.seconds:.2f}s"
    )
    click.echo(f"cache: {store.cache_dir}  feature version: {FEATURE_VERSION}")
    if summary["synthetic_tables"]:
        click.echo(f"synthetic inputs: {', '.join(summary['synthetic_tables'])}")
    for item in summary["unavailable"]:
        click.echo(
            f"{len(item['symbols'])} symbol(s) with {item['why']} ({', '.join(item['symbols'])}): "
            f"{item['n_features']} feature(s) NaN for them: {', '.join(item['features'])}"
        )
    click.echo("")
    print_table(summary["categories"] + [{"category": "total", "features": frame.shape[1], "nan_share": float(frame.isna().to_numpy().mean())}],
                ["category", "features", "nan_share"])


@features.command("list")
@click.option("--category", type=click.Choice(["technical", "fundamental", "cross_asset", "alternative", "temporal"]), default=None,
              help="Only this category.")
@click.option("--markdown", is_flag=True, help="Print the feature spec as Markdown (the content of docs/features.md).")
def list_features(category: str | None, markdown: bool) -> None:
    """Print the feature spec: name, category, description."""

    if markdown:
        click.echo(registry_markdown(), nl=False)
        return
    rows = [{"name": f.name, "category": f.category, "description": f.description} for f in FEATURES if category in (None, f.category)]
    print_table(rows, ["name", "category", "description"])
