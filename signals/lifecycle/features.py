"""``features`` step: build (or load from cache) the point-in-time feature matrix and log it.

The run records the resolved configuration (``cfg.*`` params and ``config/resolved_settings.yaml``,
credentials masked), what was built (symbols, date range, rows, per-category feature counts and NaN
shares, cache hits), the feature spec, a full-data digest of the matrix, and the matrix itself
as ``features/features.parquet`` so later steps and notebooks can read exactly these features.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signals.adapters import tracking as T
from signals.data import get_provider
from signals.data.base import data_source_description
from signals.data.suspicious import logged_data_warnings
from signals.features import FEATURE_VERSION, FEATURES
from signals.features.availability import absent_field_summary
from signals.features.spec import category_summary
from signals.lifecycle.params import check_date_order, common_parser, jsonable, run_main
from signals.lifecycle.wiring import feature_store
from signals.settings.model import load_settings

if TYPE_CHECKING:
    from signals.settings.model import Settings

STEP_FEATURES = "features"


@dataclass
class FeaturesResult:
    run_id: str
    digest: str
    rows: int
    n_features: int
    symbols: list[str]
    first: str
    last: str
    features_uri: str
    categories: list[dict[str, Any]] = field(default_factory=list)
    unavailable: list[dict[str, Any]] = field(default_factory=list)  # close-only symbols and the features they lose
    cache_hits: int = 0
    built: int = 0
    seconds: float = 0.0
    data_warnings: list[dict[str, Any]] = field(default_factory=list)  # suspicious data (signals.data.suspicious)


def run_features(
    settings: "Settings",
    *,
    symbols: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> FeaturesResult:
    import mlflow


    t0 = time.perf_counter()
    T.configure_mlflow(settings)
    provider = get_provider(settings)
    syms = provider.resolve_symbols(symbols or settings.data.symbols or None)
    start = start if start is not None else settings.data.start
    end = end if end is not None else settings.data.end
    store = feature_store(settings)
    frame = store.get_features(syms, start, end, provider)
    stats = store.last_stats
    warnings = [w.as_dict() for w in logged_data_warnings(provider, syms)]
    digest = T.frame_digest(frame)
    dates = frame.index.get_level_values("date")
    source = data_source_description(provider, syms, start, end)
    client = mlflow.MlflowClient()
    tags = {
        T.TAG_STEP: STEP_FEATURES,
        **T.provenance_tags(FEATURE_VERSION),
        T.TAG_DATA_DIGEST: digest,
        T.TAG_DATA_PROVIDER: str(source.get("provider", "unknown")),
        T.TAG_DATA_SYNTHETIC: str(source.get("synthetic", "none")),
    }
    categories = category_summary(frame)
    unavailable = absent_field_summary(stats.absent_fields)
    with T.start_step_run(run_name=f"features-{dates.min().date()}-{dates.max().date()}", tags=tags) as run:
        rid = run.info.run_id
        T.log_resolved_config(client, rid, settings)  # what the cache was built with, credentials masked
        T.log_data_warnings(client, rid, warnings)
        T.log_params_batch(client, rid, {
            "symbols": ",".join(syms), "start": start or "", "end": end or "",
            "feature_version": FEATURE_VERSION, "cache_dir": str(store.cache_dir),
        })
        T.log_metrics_batch(client, rid, {
            "rows": len(frame), "n_features": frame.shape[1], "n_symbols": len(syms),
            "cache_hits": stats.cache_hits, "built": stats.built, "build_seconds": stats.seconds,
            "nan_share": float(frame.isna().to_numpy().mean()),
            **{f"features_{c['category']}": c["features"] for c in categories},
            **{f"nan_share_{c['category']}": c["nan_share"] for c in categories},
            "n_symbols_missing_bar_fields": len(stats.absent_fields),
        })
        T.log_json(client, rid, [
            {"name": f.name, "category": f.category, "description": f.description, "needs": list(f.needs)}
            for f in FEATURES
        ], "features/registry.json")
        T.log_json(client, rid, categories, "features/summary.json")
        if unavailable:
            T.log_json(client, rid, unavailable, "features/unavailable.json")
        features_uri = T.log_parquet(client, rid, frame.reset_index(), "features/features.parquet")
        T.log_training_dataset(frame.reset_index(), name=f"signals-features-{FEATURE_VERSION}", source=source,
                               context="features", targets=None, digest=digest)
    return FeaturesResult(
        run_id=rid, digest=digest, rows=len(frame), n_features=frame.shape[1], symbols=syms,
        first=dates.min().date().isoformat(), last=dates.max().date().isoformat(), features_uri=features_uri,
        categories=categories, unavailable=unavailable, cache_hits=stats.cache_hits, built=stats.built, seconds=time.perf_counter() - t0,
        data_warnings=warnings,
    )


def main(argv: list[str] | None = None) -> None:

    parser = common_parser("python -m entrypoints.features", "Build, cache and log the point-in-time features.")
    args = parser.parse_args(argv)
    check_date_order(parser, args.start, args.end)

    def body() -> int:

        res = run_features(load_settings(args.config), symbols=args.symbols, start=args.start, end=args.end)
        out = {k: getattr(res, k) for k in ("run_id", "digest", "rows", "n_features", "symbols", "first", "last",
                                            "features_uri", "cache_hits", "built")}
        print(json.dumps(jsonable(out), indent=2, default=str))
        return 0

    run_main(body)
