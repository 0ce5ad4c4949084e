"""What the model registry hands out: versions, snapshots, decisions and errors; and the
listener interface through which others (the Redis mirror) follow its changes.

Pure data, no MLflow: every layer after the registry may import these.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from signals.core.errors import SignalsError
from signals.core.vocabulary import utc_now_iso  # noqa: F401 - registry timestamps

if TYPE_CHECKING:
    from signals.registry.gate import GateResult

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_CHAMPION_HISTORY = "champion_history"  # legacy (before the event log); read once, never written
TAG_CHAMPION_EVENT_PREFIX = "champion_event."  # one registered-model tag per champion change, never rewritten
TAG_PREVIOUS_CHAMPION = "previous_champion"
METRIC_TAG_PREFIX = "metric."
GATE_TAG_PREFIX = "gate."
WINDOW_KEYS = ("train_start", "train_end", "holdout_start", "holdout_end")
HOLDOUT_ARTIFACT = "holdout_predictions.parquet"
AUTO_GATE_ACTOR = "auto-gate"
HISTORY_LIMIT = 50
STAGE_PRODUCTION, STAGE_ARCHIVED = "Production", "Archived"


# ---------------------------------------------------------------------------- errors
class RegistryError(SignalsError):
    """A registry operation cannot be done as asked; nothing was changed."""


class EmptyRegistryError(RegistryError):
    pass


class UnknownVersionError(RegistryError):
    pass


class AlreadyChampionError(RegistryError):
    pass


class NoPreviousChampionError(RegistryError):
    pass


class VersionIdMismatchError(RegistryError):
    pass


class RegistryBusyError(RegistryError):
    pass


class NoChampionError(SignalsError):
    """The registry has no champion model to predict with."""

    def __init__(self, model_name: str | None = None) -> None:
        name = f" {model_name!r}" if model_name else ""
        super().__init__(
            f"no champion model in the registry{name}: train and promote one first "
            "(`signals tune`, `signals train`, `signals promote`), or check mlflow.tracking_uri"
        )


# ---------------------------------------------------------------------------- helpers
def current_actor() -> str:
    """``user@host`` of whoever runs this process (recorded as ``promoted_by``)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _vid(value: Any) -> str:
    """Normalise a version id (MLflow returns ints in places, strings in others)."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise UnknownVersionError(f"version ids are MLflow registry version numbers (1, 2, ...), got {value!r}")
    return str(int(text))


@dataclass(frozen=True)
class ModelVersion:
    """One registered version as the rest of ``signals`` sees it."""

    version_id: str  # the MLflow registry version number, as a string
    path: str  # where the model's files are (the version's MLflow source: an artifact URI)
    metrics: dict[str, float]
    created_at: datetime
    is_active: bool  # True for the champion
    model_name: str = ""
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    stage: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        """Loadable URI pinned to this version: ``models:/<name>/<version>``."""
        return f"models:/{self.model_name}/{self.version_id}"

    @property
    def data_window(self) -> dict[str, str]:
        return {k: self.tags[k] for k in WINDOW_KEYS if k in self.tags}


@dataclass(frozen=True)
class ChampionEvent:
    """One change of champion, as recorded (append-only) on the registered model.

    ``action``: ``promote`` (explicit), ``auto-promote`` (the gate), ``forced-promote`` (``--auto
    --force``), ``override`` (an explicit promote against the gate's last verdict), ``rollback``,
    ``external`` (the alias was moved outside signals; noticed, and recorded, at ``at``).
    """

    seq: int
    at: str  # ISO-8601 with offset (UTC)
    champion: str
    previous: str | None
    action: str
    by: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "champion": self.champion, "previous": self.previous,
                "action": self.action, "by": self.by, "reason": self.reason}


@dataclass(frozen=True)
class AutoPromoteOutcome:
    """What ``promote_if_better`` decided and did."""

    gate: "GateResult"
    challenger: ModelVersion | None
    champion_before: ModelVersion | None
    promoted: ModelVersion | None  # the new champion, None when nothing changed



@dataclass(frozen=True)
class VersionRecord:
    """One registered version in a :class:`RegistrySnapshot`."""

    version_id: str
    path: str
    model_uri: str
    metrics: Mapping[str, float]
    created_at: datetime
    is_active: bool
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    stage: str | None = None
    promoted_at: str | None = None
    promoted_by: str | None = None
    logged_model_id: str | None = None  # the MLflow logged model (``models:/<id>``) the version came from

    @property
    def artifact_uri(self) -> str:
        """Where the model's files are, as a URI any machine with the MLflow store can load:
        ``models:/m-...`` (the logged model), else a ``models:/`` / ``runs:/`` / remote source;
        empty when the only answer is a path on this machine (``model_uri`` still loads it)."""
        if self.logged_model_id:
            return f"models:/{self.logged_model_id}"
        scheme = self.path.split(":", 1)[0] if "://" in self.path or self.path.startswith(("models:/", "runs:/")) else ""
        if scheme and scheme != "file":
            return self.path
        return ""


@dataclass(frozen=True)
class RegistrySnapshot:
    """The registry state at one moment (what listeners such as the Redis mirror copy); built from
    MLflow by ``ModelRegistry.snapshot()``."""

    model_name: str
    versions: tuple[VersionRecord, ...] = ()
    champion: str | None = None
    challenger: str | None = None
    previous_champion: str | None = None


class RegistryListener(Protocol):
    """Told about every registry change while the registry's lock is held (so in MLflow order).

    ``write_registry`` returns True (written), False (failed: it keeps itself marked stale) or None
    (switched off); it must never raise: MLflow already holds the change."""

    def write_registry(self, snapshot: RegistrySnapshot) -> bool | None: ...

    def mark_stale(self, reason: str) -> None: ...
