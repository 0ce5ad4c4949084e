"""Register a training run's model as a new registry version (the ``challenger``).

Training logs the model but does not register it; this step does, so a failed or abandoned
training run never reaches the registry. ``python -m entrypoints.register --run-id RUN`` or
``signals register RUN``; ``register_training_run(settings, train_result)`` is the hook the
train step calls. Registering the same run twice returns the existing version (idempotent, so
a retried pipeline does not create duplicates).

The version is tagged with the run's headline hold-out metrics next to their baselines
(``metric.*``, rounded; every metric stays on the training run at full precision) and its data
window (``train_start``, ``train_end``, ``holdout_start``, ``holdout_end``, from the run's params/tags).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from signals.core.errors import SignalsError
from signals.core.redaction import install_log_redaction, redact_text
from signals.lifecycle.params import ParameterError
from signals.lifecycle.wiring import open_registry
from signals.settings.model import load_settings

if TYPE_CHECKING:
    from signals.registry.types import ModelVersion
    from signals.settings.model import Settings

log = logging.getLogger("signals.register")

# What a person compares on the version page: each model figure next to its naive baseline.
HEADLINE_METRICS = (
    "holdout_log_loss", "holdout_baseline_prior_log_loss", "holdout_skill_vs_prior",
    "holdout_accuracy", "holdout_baseline_always_up_accuracy",
    "holdout_strategy_sharpe", "holdout_baseline_buy_hold_sharpe", "holdout_ece",
)


def _run_model_uri(client: Any, run: Any) -> str:
    """The one model logged by ``run`` (``models:/m-...``)."""
    outputs = getattr(run, "outputs", None)
    ids = [o.model_id for o in (outputs.model_outputs if outputs else [])]
    if not ids:
        found = client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        ids = [m.model_id for m in found]
    if not ids:
        raise SignalsError(f"run {run.info.run_id} logged no model; nothing to register")
    if len(set(ids)) > 1:
        raise SignalsError(
            f"run {run.info.run_id} logged {len(set(ids))} models; pass the one to register (models:/m-...)"
        )
    return f"models:/{ids[0]}"


def run_register(
    settings: "Settings",
    run_id: str,
    *,
    model_uri: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> "ModelVersion":
    """Register the model of training run ``run_id``; returns the (new or existing) version."""
    from mlflow.exceptions import MlflowException

    run_id = (run_id or "").strip()
    if not run_id:
        raise ParameterError("a training run id is required")
    registry = open_registry(settings)
    client = registry.client
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise SignalsError(f"no MLflow run {run_id!r} in {settings.mlflow.tracking_uri}") from None
    existing = registry.find_by_run(run_id)
    if existing is not None:
        log.info("run %s is already registered as version %s", run_id, existing.version_id)
        return existing
    uri = model_uri or _run_model_uri(client, run)
    if metrics is None:
        metrics = run.data.metrics
    metrics = {k: v for k, v in metrics.items() if k in HEADLINE_METRICS}
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
    window = {}
    for key in ("train_start", "train_end", "holdout_start", "holdout_end"):
        value = run.data.params.get(key) or run.data.tags.get(key)
        if value:
            window[key] = value
    return registry.register(
        None,
        uri,
        metrics,
        run_id=run_id,
        tags={**window, "source_run_id": run_id},
        description=f"Registered from training run {run_id}",
    )


def register_training_run(settings: "Settings", train_result: Any) -> "ModelVersion":
    """Register what ``signals.lifecycle.train.run_train`` produced (``.run_id``, ``.model_uri``, ``.metrics``)."""
    return run_register(
        settings,
        train_result.run_id,
        model_uri=getattr(train_result, "model_uri", None),
        metrics=getattr(train_result, "metrics", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoints.register", description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True, help="the training run whose model to register")
    parser.add_argument("--config", default=None, help="settings file (default config/settings.yaml)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_log_redaction()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:

        version = run_register(load_settings(args.config), args.run_id)
    except SignalsError as exc:
        print(f"Error: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    print(f"registered run {args.run_id} as version {version.version_id} (aliases: {', '.join(version.aliases) or '-'})")
    return 0
