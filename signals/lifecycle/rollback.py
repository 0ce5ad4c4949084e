"""Roll the champion back: to a named version, or (bare) to the previous champion.

``python -m entrypoints.rollback`` or ``python -m entrypoints.rollback --version 3``; the
decision is recorded as an MLflow run (``signals.step=rollback``) like a promotion.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from signals.lifecycle.params import parse_version
from signals.lifecycle.promote import record_decision, run_registry_step
from signals.lifecycle.wiring import open_registry

if TYPE_CHECKING:
    from signals.settings.model import Settings


@dataclass
class RollbackResult:
    champion_before: str | None
    champion_after: str
    message: str
    mirror_ok: bool | None = None
    mlflow_run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_rollback(settings: "Settings", version: str | int | None = None, reason: str | None = None) -> RollbackResult:
    """Move ``champion`` back; raises a :class:`SignalsError` subclass (nothing changed) when it cannot."""
    version = parse_version(version)
    registry = open_registry(settings)
    before = registry.get_active()
    new = registry.rollback(version, reason=reason)
    was = before.version_id if before else None
    result = RollbackResult(
        champion_before=was,
        champion_after=new.version_id,
        message=f"rolled back {registry.name!r}: champion is now version {new.version_id} (was {was or 'none'})",
        mirror_ok=registry.last_mirror_ok,
    )
    result.mlflow_run_id = record_decision(
        settings,
        "rollback",
        {
            "requested_version": version,
            "champion_before": was,
            "champion_after": new.version_id,
            "model_name": registry.name,
            "message": result.message,
        },
        {},
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoints.rollback", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=None, help="version to roll back to (default: the previous champion)")
    parser.add_argument("--reason", default=None, help="free text recorded on the version")
    parser.add_argument("--config", default=None, help="settings file (default config/settings.yaml)")
    args = parser.parse_args(argv)
    return run_registry_step(lambda settings: run_rollback(settings, version=args.version, reason=args.reason), args.config)
