"""Promote a model version to champion: explicitly, or through the promotion gate (``--auto``).

``python -m entrypoints.promote --auto true`` (what the MLproject entry point runs) or
``python -m entrypoints.promote --version 7``. MLflow passes every parameter as a string, so
they are validated here. The decision is recorded as a small MLflow run in the experiment
(``signals.step=promote``; inside ``mlflow run`` it goes into that run) with the versions and
the gate's p-value, so the MLflow UI shows why the champion is what it is.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from signals.adapters.tracking import get_or_create_experiment, open_client_run
from signals.core.errors import SignalsError
from signals.core.redaction import install_log_redaction, redact_text
from signals.lifecycle.params import ParameterError, parse_bool, parse_version
from signals.lifecycle.wiring import open_registry
from signals.settings.model import load_settings

if TYPE_CHECKING:
    from signals.registry.gate import GateResult
    from signals.settings.model import Settings

log = logging.getLogger("signals.promote")

TAG_STEP = "signals.step"


@dataclass
class PromoteResult:
    """What ``run_promote`` decided: ``decision`` is promoted | kept | insufficient_data | no_challenger."""

    decision: str
    message: str
    champion_before: str | None
    champion_after: str | None
    challenger: str | None = None
    gate: "GateResult | None" = None
    mirror_ok: bool | None = None
    mlflow_run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "promoted": self.promoted,
            "message": self.message,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "challenger": self.challenger,
            "gate": self.gate.as_dict() if self.gate else None,
            "mirror_ok": self.mirror_ok,
            "mlflow_run_id": self.mlflow_run_id,
        }


# ------------------------------------------------------------------ MLflow record of the decision
def record_decision(
    settings: "Settings",
    step: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | None],
) -> str | None:
    """Log a decision run (or into the ``mlflow run`` run); never fails the registry change."""
    try:

        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param, RunTag


        client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri)
        exp_id = get_or_create_experiment(client, settings, settings.mlflow.experiment)
        # nested under the pipeline run when one is active; the `mlflow run` run when started by it
        run_id, own_run = open_client_run(client, exp_id, step, {TAG_STEP: step})
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            params=[Param(f"{step}.{k}", "" if v is None else str(v)[:6000]) for k, v in params.items()],
            metrics=[Metric(f"{step}.{k}", float(v), now, 0) for k, v in metrics.items() if v is not None],
            tags=[RunTag("mlflow.note.content", str(params.get("message", ""))[:5000])] if own_run else [],
        )
        if own_run:
            client.set_terminated(run_id)
        return run_id
    except Exception as exc:  # noqa: BLE001 - the registry is already changed; the record is a courtesy
        log.warning("could not record the %s decision as an MLflow run: %s", step, exc)
        return None


# ------------------------------------------------------------------ the step
def run_promote(
    settings: "Settings",
    version: str | int | None = None,
    auto: bool | str = False,
    reason: str | None = None,
    force: bool | str = False,
) -> PromoteResult:
    """Promote ``version``, or with ``auto`` let the gate decide about the challenger (``force``:
    promote it whatever the gate says, recording the verdict and the override).

    Raises :class:`SignalsError` subclasses for user errors (nothing changed then).
    """
    version = parse_version(version)
    auto = parse_bool(auto, "auto")
    force = parse_bool(force, "force")
    if auto and version is not None:
        raise ParameterError("give either a VERSION or --auto, not both")
    if force and not auto:
        raise ParameterError("--force only applies to --auto (an explicit `signals promote VERSION` needs no gate)")
    if not auto and version is None:
        raise ParameterError("say which version to promote (`signals promote VERSION`) or use --auto for the gate")
    registry = open_registry(settings)
    r = settings.registry
    if version is not None:
        new = registry.promote(version, reason=reason or "manual promotion")
        before = new.tags.get("previous_champion") or None
        result = PromoteResult(
            "promoted",
            f"version {new.version_id} is now the champion of {registry.name!r} (was {before or 'none'})",
            champion_before=before,
            champion_after=new.version_id,
            mirror_ok=registry.last_mirror_ok,
        )
    else:
        outcome = registry.promote_if_better(
            alpha=r.gate_alpha,
            min_rows=r.gate_min_rows,
            n_resamples=r.gate_resamples,
            block_days=r.gate_block_days,
            seed=settings.ml.seed,
            force=force,
            reason=reason,
        )
        before = outcome.champion_before.version_id if outcome.champion_before else None
        chall = outcome.challenger.version_id if outcome.challenger else None
        gate = outcome.gate
        if outcome.promoted is not None:
            decision = "promoted"
            forced = " FORCED over the gate's verdict" if not gate.promote else ""
            message = f"version {chall} promoted to champion{forced} (was {before or 'none'}): {gate.reason}"
            after = outcome.promoted.version_id
        else:
            decision = "no_challenger" if chall is None or chall == before else gate.decision
            decision = "kept" if decision == "keep" else decision
            message = (
                f"champion {before or 'none'} unchanged; challenger {chall}: {gate.reason}"
                if chall
                else f"champion {before or 'none'} unchanged: {gate.reason}"
            )
            after = before
        result = PromoteResult(
            decision,
            message,
            champion_before=before,
            champion_after=after,
            challenger=chall,
            gate=gate,
            mirror_ok=registry.last_mirror_ok if outcome.promoted is not None else None,
        )
    gate = result.gate
    result.mlflow_run_id = record_decision(
        settings,
        "promote",
        {
            "mode": ("auto+force" if force else "auto") if auto else "explicit",
            "requested_version": version,
            "decision": result.decision,
            "champion_before": result.champion_before,
            "champion_after": result.champion_after,
            "challenger": result.challenger,
            "model_name": registry.name,
            "alpha": gate.alpha if gate else None,
            "message": result.message,
        },
        {
            "promoted": 1.0 if result.promoted else 0.0,
            "p_value": gate.p_value if gate else None,
            "improvement": gate.improvement if gate else None,
            "champion_log_loss": gate.champion_log_loss if gate else None,
            "challenger_log_loss": gate.challenger_log_loss if gate else None,
            "n_rows": float(gate.n_rows) if gate else None,
        },
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoints.promote", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=None, help="registry version number to promote")
    parser.add_argument("--auto", default="false", help="true: let the promotion gate decide about the challenger")
    parser.add_argument("--force", default="false", help="true (with --auto): promote even if the gate says keep")
    parser.add_argument("--reason", default=None, help="free text recorded on the version")
    parser.add_argument("--config", default=None, help="settings file (default config/settings.yaml)")
    args = parser.parse_args(argv)
    return run_registry_step(
        lambda settings: run_promote(settings, version=args.version, auto=args.auto, reason=args.reason,
                                     force=args.force), args.config
    )


def run_registry_step(step: Any, config: str | None) -> int:
    """Shared ``main()`` tail of promote/rollback: load settings, run, print, warn about a stale mirror.

    Returns the exit code: 1 (with ``Error: ...``) for a user error, else 0.
    """

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_log_redaction()
    try:

        result = step(load_settings(config))
    except SignalsError as exc:
        print(f"Error: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    print(result.message)
    if result.mirror_ok is False:
        print("Warning: the Redis mirror was not updated and is marked stale; run `signals registry sync`.", file=sys.stderr)
    return 0
