"""Model registry on the MLflow Model Registry: register, promote, roll back, list.

MLflow is the source of truth; this module adds the rules a trading desk needs on top of it.

Version ids
    ``version_id`` is the MLflow registry version number as a string (``"1"``, ``"2"``, ...).
    ``register(None, ...)`` lets MLflow assign it; a given id must be the one MLflow assigns
    (else :class:`VersionIdMismatchError` and nothing is left behind). Numbers are never reused,
    even after a version is deleted.

Aliases are the truth
    ``champion`` is the served model (``models:/<name>@champion``); ``register`` points
    ``challenger`` at the new version. Moving one alias is a single atomic write in MLflow, so
    there can never be two champions. The deprecated stages are mirrored (``Production`` for the
    champion, ``Archived`` for the one it replaced) for tools that still read stages; if MLflow
    refuses (stages removed), that is logged and ignored.

Champion history (append-only)
    Every change of champion is one registered-model tag ``champion_event.<seq>`` holding JSON
    (:class:`ChampionEvent`: when, which version, the one it replaced, the action, who, why). A
    tag is written once and never rewritten, so the history answers "which version was champion
    at time T" (:meth:`ModelRegistry.champion_at`) and survives any number of rollbacks. Tag
    ``previous_champion`` (for the UI) names the version a bare rollback would return to.
    A bare ``rollback()`` goes back to the champion before the current one (like ``kubectl
    rollout undo``): repeating it toggles between the two; ``rollback(VERSION)`` goes further
    back. The alias is moved *before* the event is written; if a process dies in between (or
    someone moves the alias in the MLflow UI), the next change sees ``last event != alias`` and
    first records an ``external`` event, so the record heals instead of drifting.

Locking
    The alias write is atomic, but "read champion, move alias, record previous" is a
    read-modify-write. It runs under one lock per registered model: a ``filelock`` beside a
    SQLite store (``mlflow.db-registry-<model>.lock``), a PostgreSQL session advisory lock
    (``pg_try_advisory_lock`` polled, key derived from the model name) when the registry URI is
    PostgreSQL -- correct across machines, released by PostgreSQL if the process dies -- and, for
    any other store (an MLflow tracking server over HTTP), a local file lock, which only
    serialises promotions started from the same machine. ``registry.lock_url`` replaces the
    choice with a lock every host reaches (a PostgreSQL advisory lock or a Redis lock, see
    :mod:`signals.registry.locks`), whatever the tracking URI. The Redis mirror is written while the
    lock is held, so the mirror sees changes in MLflow order. After moving the alias the target
    version is re-read; if it was deleted concurrently, the alias is put back.

Version tags (what a person reads; full-precision metrics stay on the training run)
    ``metric.<name>`` (the headline metrics given to ``register``, 4 decimals), ``train_start``/
    ``train_end``/``holdout_start``/``holdout_end`` (data window), ``registered_by``/
    ``registered_at``, ``promoted_by`` (``user@host`` or ``auto-gate``), ``promoted_at``
    (ISO-8601 UTC), ``promotion_reason``, ``previous_champion``, ``rolled_back_to_at``/``_by``/
    ``rollback_reason`` (a rollback never overwrites the promotion's tags), ``logged_model_id``
    (the MLflow logged model the version was registered from) and the gate's verdict
    (``gate.decision``, ``gate.compared_with``, ``gate.log_loss_delta``, ``gate.p_value``,
    ``gate.evaluated_at``, ``gate.forced``, ``gate.overridden_by``). The version *description*
    says the same in sentences: the gate's verdict, what it was compared with (the champion and
    the class prior), the log-loss delta and p-value, and how the version became champion.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import pandas as pd

from signals.core.vocabulary import utc_now_iso
from signals.registry.gate import GateError, GateResult, evaluate_gate
from signals.registry.locks import registry_lock
from signals.registry.types import (
    AUTO_GATE_ACTOR,
    CHALLENGER,
    CHAMPION,
    GATE_TAG_PREFIX,
    HOLDOUT_ARTIFACT,
    METRIC_TAG_PREFIX,
    STAGE_ARCHIVED,
    STAGE_PRODUCTION,
    TAG_CHAMPION_EVENT_PREFIX,
    TAG_CHAMPION_HISTORY,
    TAG_PREVIOUS_CHAMPION,
    AlreadyChampionError,
    AutoPromoteOutcome,
    ChampionEvent,
    EmptyRegistryError,
    ModelVersion,
    NoPreviousChampionError,
    RegistryError,
    RegistryListener,
    RegistrySnapshot,
    UnknownVersionError,
    VersionIdMismatchError,
    VersionRecord,
    _vid,
    current_actor,
)

if TYPE_CHECKING:  # imported lazily at run time: MLflow is slow to import
    import pandas as pd
    from mlflow import MlflowClient

    from signals.registry.gate import GateResult

log = logging.getLogger("signals.registry")

# ---------------------------------------------------------------------------- the registry
class ModelRegistry:
    """Register / promote / roll back versions of one registered model (see module docstring)."""

    def __init__(
        self,
        client: "MlflowClient",
        model_name: str,
        *,
        lock: AbstractContextManager | None = None,
        mirror: RegistryListener | None = None,
        registry_uri: str | None = None,
    ) -> None:
        self.client = client
        self.name = model_name
        self.registry_uri = registry_uri or client._registry_uri  # noqa: SLF001 - for the lock only
        self.lock = lock if lock is not None else registry_lock(self.registry_uri, model_name)
        self.mirror = mirror
        self.last_mirror_ok: bool | None = None  # result of the last mirror write (None: off / none)
        self._stage_warned = False

    @classmethod
    def from_settings(cls, settings: Any, *, mirror: RegistryListener | None = None) -> "ModelRegistry":
        """The registry configured by ``settings.mlflow``; ``mirror`` follows its changes (the Redis
        mirror is wired in by :func:`signals.lifecycle.wiring.open_registry`)."""
        from mlflow import MlflowClient

        tracking = settings.mlflow.tracking_uri
        registry_uri = settings.mlflow.registry_uri or tracking
        name, reg = settings.mlflow.model_name, settings.registry
        lock = registry_lock(registry_uri, name, reg.lock_timeout_s, lock_url=reg.lock_url)
        return cls(MlflowClient(tracking_uri=tracking, registry_uri=registry_uri), name,
                   registry_uri=registry_uri, mirror=mirror or None, lock=lock)

    # ------------------------------------------------------------------ reading
    def _registered_model(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                return None
            raise

    def _require_model(self) -> Any:
        rm = self._registered_model()
        if rm is None:
            raise EmptyRegistryError(
                f"the registry has no model named {self.name!r} yet; train and register one first "
                "(`signals train`, or `signals register RUN_ID`)"
            )
        return rm

    @staticmethod
    def _aliases(rm: Any) -> dict[str, str]:
        return {alias: str(v) for alias, v in (rm.aliases or {}).items()} if rm is not None else {}

    def _iter_mlflow_versions(self) -> Iterator[Any]:
        token = None
        while True:
            page = self.client.search_model_versions(f"name='{self.name}'", max_results=200, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def _to_version(self, mv: Any, aliases: Mapping[str, str]) -> ModelVersion:
        vid = str(mv.version)
        tags = dict(mv.tags or {})
        metrics: dict[str, float] = {}
        for key, value in tags.items():
            if key.startswith(METRIC_TAG_PREFIX):
                try:
                    metrics[key[len(METRIC_TAG_PREFIX) :]] = float(value)
                except ValueError:
                    pass
        mine = tuple(sorted(a for a, v in aliases.items() if v == vid))
        return ModelVersion(
            version_id=vid,
            path=str(mv.source),
            metrics=metrics,
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=timezone.utc),
            is_active=aliases.get(CHAMPION) == vid,
            model_name=self.name,
            aliases=mine,
            run_id=mv.run_id or None,
            stage=mv.current_stage if mv.current_stage not in (None, "None") else None,
            tags=tags,
        )

    def _mlflow_version(self, version_id: str) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(self.name, version_id)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def get(self, version_id: str) -> ModelVersion:
        """One version; :class:`UnknownVersionError` if it does not exist (or was deleted)."""
        rm = self._require_model()
        vid = _vid(version_id)
        mv = self._mlflow_version(vid)
        if mv is None:
            known = ", ".join(v.version_id for v in reversed(self.list_versions())) or "none"
            raise UnknownVersionError(f"model {self.name!r} has no version {vid} (existing versions: {known})")
        return self._to_version(mv, self._aliases(rm))

    def list_versions(self) -> list[ModelVersion]:
        """Every live version, newest first, with its aliases (read from the registered model)."""
        rm = self._registered_model()
        if rm is None:
            return []
        aliases = self._aliases(rm)
        versions = [self._to_version(mv, aliases) for mv in self._iter_mlflow_versions()]
        return sorted(versions, key=lambda v: int(v.version_id), reverse=True)

    def _by_alias(self, alias: str) -> ModelVersion | None:
        rm = self._registered_model()
        vid = self._aliases(rm).get(alias)
        if vid is None:
            return None
        mv = self._mlflow_version(vid)
        return None if mv is None else self._to_version(mv, self._aliases(rm))

    def get_active(self) -> ModelVersion | None:
        """The champion (what ``signals serve`` serves), or None."""
        return self._by_alias(CHAMPION)

    def get_challenger(self) -> ModelVersion | None:
        return self._by_alias(CHALLENGER)

    def history(self) -> list[ChampionEvent]:
        """Every change of champion, oldest first (healed: see the module docstring)."""
        rm = self._registered_model()
        return [] if rm is None else self._events(rm)

    def champion_at(self, when: datetime | str) -> str | None:
        """The version that was champion at ``when`` (timezone-aware, or naive = UTC); None before the first."""
        t = pd.Timestamp(when)
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        current = None
        for event in self.history():
            if not event.at or pd.Timestamp(event.at) > t:
                continue
            current = event.champion
        return current

    def champion_history(self) -> list[str]:
        """Earlier champions in the order they reigned (the current one excluded)."""
        return [e.champion for e in self.history()][:-1]

    def previous_champion(self) -> str | None:
        """Where a bare ``rollback()`` would go (the champion before the current one, if it still exists)."""
        rm = self._registered_model()
        if rm is None:
            return None
        return self._rollback_target(self._events(rm), self._aliases(rm).get(CHAMPION))

    def _recorded_events(self, rm: Any) -> list[ChampionEvent]:
        tags = dict(rm.tags or {})
        events = []
        for key, raw in tags.items():
            if not key.startswith(TAG_CHAMPION_EVENT_PREFIX):
                continue
            try:
                d = json.loads(raw)
                events.append(ChampionEvent(
                    seq=int(d["seq"]), at=str(d.get("at") or ""), champion=str(d["champion"]),
                    previous=str(d["previous"]) if d.get("previous") else None, action=str(d.get("action", "")),
                    by=str(d.get("by", "")), reason=str(d.get("reason", ""))))
            except (ValueError, KeyError, TypeError):
                log.warning("registered-model tag %s is not a champion event (%r); ignored", key, raw[:80])
        if not events and tags.get(TAG_CHAMPION_HISTORY):  # a store written before the event log
            try:
                record = json.loads(tags[TAG_CHAMPION_HISTORY])
                chain = [str(v) for v in record.get("previous", [])] + [str(record["champion"])]
            except (ValueError, KeyError, TypeError):
                chain = []
            events = [ChampionEvent(i + 1, "", v, chain[i - 1] if i else None, "recorded before the event log", "")
                      for i, v in enumerate(chain)]
        return sorted(events, key=lambda e: e.seq)

    def _events(self, rm: Any) -> list[ChampionEvent]:
        """The recorded events, plus an ``external`` one when the alias moved without a record."""
        events = self._recorded_events(rm)
        actual = self._aliases(rm).get(CHAMPION)
        recorded = events[-1].champion if events else None
        if actual and actual != recorded:
            log.warning(
                "the champion alias points at %s but the history recorded %s (moved outside signals, or an "
                "interrupted change); recording it as an external change", actual, recorded)
            events.append(ChampionEvent(
                (events[-1].seq if events else 0) + 1, utc_now_iso(), actual, recorded, "external", "unknown",
                "the champion alias was moved outside signals (or a change was interrupted); noticed at this time"))
        return events

    def _rollback_target(self, events: list[ChampionEvent], current: str | None) -> str | None:
        """The most recent earlier champion that is not ``current`` and still exists."""
        for event in reversed(events):
            for candidate in (event.champion, event.previous):
                if candidate and candidate != current and self._mlflow_version(candidate) is not None:
                    return candidate
        return None

    def snapshot(self) -> "RegistrySnapshot":
        """The registry state for the Redis mirror, read from MLflow."""
        rm = self._registered_model()
        if rm is None:
            return RegistrySnapshot(model_name=self.name)
        aliases = self._aliases(rm)
        records = tuple(
            VersionRecord(
                version_id=v.version_id,
                path=v.path,
                model_uri=v.model_uri,
                metrics=v.metrics,
                created_at=v.created_at,
                is_active=v.is_active,
                aliases=v.aliases,
                run_id=v.run_id,
                stage=v.stage,
                promoted_at=v.tags.get("promoted_at"),
                promoted_by=v.tags.get("promoted_by"),
                logged_model_id=v.tags.get("logged_model_id"),
            )
            for v in self.list_versions()
        )
        return RegistrySnapshot(
            model_name=self.name,
            versions=records,
            champion=aliases.get(CHAMPION),
            challenger=aliases.get(CHALLENGER),
            previous_champion=self._rollback_target(self._events(rm), aliases.get(CHAMPION)),
        )

    # ------------------------------------------------------------------ mirror
    def sync_mirror(self) -> bool | None:
        """Rewrite the Redis mirror from MLflow. True ok, False Redis failed (marked stale), None off."""
        if self.mirror is None:
            return None
        self.last_mirror_ok = self.mirror.write_registry(self.snapshot())
        return self.last_mirror_ok

    def _mirror_after_change(self) -> None:
        if self.mirror is None:
            self.last_mirror_ok = None
            return
        try:
            snap = self.snapshot()
        except Exception as exc:  # noqa: BLE001 - the MLflow change is done; never undo it for the mirror
            log.warning("registry changed but could not be re-read for the Redis mirror: %s", exc)
            self.mirror.mark_stale(f"snapshot failed: {exc}")
            self.last_mirror_ok = False
            return
        self.last_mirror_ok = self.mirror.write_registry(snap)

    # ------------------------------------------------------------------ registering
    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        if self._registered_model() is not None:
            return
        try:
            self.client.create_registered_model(
                self.name, description="Daily DOWN/FLAT/UP signal model (signals). Aliases: champion, challenger."
            )
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise

    def _resolve_source(self, model_path: str, run_id: str | None) -> tuple[str, str | None, str | None]:
        """(source, run_id, model_id) for ``create_model_version`` from a model URI or path.

        A logged model is registered by its artifact location plus ``model_id``, not by
        ``models:/m-...``: for that form MLflow 3.17's SQL registry looks the model up through
        the process-global tracking URI (a TODO in MLflow), which is wrong whenever this
        registry's client points elsewhere (e.g. ``SA_MLFLOW__TRACKING_URI``).
        """
        if model_path.startswith("runs:/"):
            rest = model_path[len("runs:/") :]
            rid, _, artifact_path = rest.partition("/")
            run = self.client.get_run(rid)
            outputs = getattr(run, "outputs", None)
            for mid in [o.model_id for o in (outputs.model_outputs if outputs else [])]:
                lm = self.client.get_logged_model(mid)
                if lm.name == artifact_path.strip("/"):
                    return lm.artifact_location, rid, mid
            return run.info.artifact_uri.rstrip("/") + "/" + artifact_path, rid, None
        if model_path.startswith("models:/m-"):
            mid = model_path[len("models:/") :].split("/", 1)[0]
            lm = self.client.get_logged_model(mid)
            return lm.artifact_location, run_id or lm.source_run_id, mid
        if model_path.startswith("models:/"):
            raise RegistryError(
                f"{model_path} is already a registry URI; register the logged model (models:/m-..., runs:/...)"
            )
        return model_path, run_id, None

    def _next_version_hint(self) -> int:
        versions = [int(mv.version) for mv in self._iter_mlflow_versions()] if self._registered_model() else []
        return max(versions, default=0) + 1

    def register(
        self,
        version_id: str | None,
        model_path: str,
        metrics: Mapping[str, float] | None = None,
        *,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register ``model_path`` as a new version and point ``challenger`` at it.

        ``model_path`` is a logged model URI (``models:/m-...``, ``runs:/<run>/model``) or an
        artifact location. ``version_id=None`` lets MLflow number it; a given id must match the
        number MLflow assigns, or :class:`VersionIdMismatchError` (the version is not kept).
        """
        clean_metrics: dict[str, float] = {}
        for key, value in (metrics or {}).items():
            try:
                clean_metrics[str(key)] = float(value)
            except (TypeError, ValueError):
                raise RegistryError(f"metric {key!r} must be a number, got {value!r}") from None
        wanted = _vid(version_id) if version_id is not None else None
        # rounded: the tags are for reading; the training run keeps every metric at full precision
        version_tags = {f"{METRIC_TAG_PREFIX}{k}": f"{v:.4f}" for k, v in clean_metrics.items()}
        version_tags.update({str(k): str(v) for k, v in (tags or {}).items() if v is not None})
        version_tags.update(registered_by=current_actor(), registered_at=utc_now_iso())
        with self.lock:
            self._ensure_registered_model()
            if wanted is not None:
                existing = self._mlflow_version(wanted)
                if existing is not None:
                    raise VersionIdMismatchError(f"version {wanted} of {self.name!r} already exists")
                hint = self._next_version_hint()
                if int(wanted) != hint:
                    raise VersionIdMismatchError(
                        f"version {wanted} cannot be created: MLflow numbers versions itself and the next one "
                        f"is {hint} (or later, if versions were deleted); pass version_id=None"
                    )
            source, run_id, model_id = self._resolve_source(model_path, run_id)
            if model_id:  # the SQL registry does not keep model_id: tag the link to the logged model
                version_tags["logged_model_id"] = model_id
            mv = self.client.create_model_version(
                self.name, source, run_id=run_id, tags=version_tags, description=description, model_id=model_id
            )
            vid = str(mv.version)
            if wanted is not None and vid != wanted:
                self.client.delete_model_version(self.name, vid)
                raise VersionIdMismatchError(
                    f"MLflow assigned version {vid}, not the requested {wanted}; the new version was removed. "
                    "Pass version_id=None to accept MLflow's numbering."
                )
            self.client.set_registered_model_alias(self.name, CHALLENGER, vid)
            log.info("registered %s version %s from %s (challenger)", self.name, vid, source)
            self._mirror_after_change()
            return self.get(vid)

    def find_by_run(self, run_id: str) -> ModelVersion | None:
        """The newest live version registered from ``run_id`` (makes re-registration idempotent)."""
        rm = self._registered_model()
        if rm is None:
            return None
        found = [mv for mv in self._iter_mlflow_versions() if mv.run_id == run_id]
        if not found:
            return None
        return self._to_version(max(found, key=lambda mv: int(mv.version)), self._aliases(rm))

    # ------------------------------------------------------------------ promoting
    def _set_stage(self, version_id: str, stage: str) -> None:
        """Mirror the deprecated stage for stage-reading tools; never fail the promotion on it.

        ``archive_existing_versions`` is not used: on PostgreSQL MLflow 3.17 builds an
        integer-vs-varchar comparison for it and fails; callers archive explicitly instead.
        """
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.client.transition_model_version_stage(self.name, version_id, stage)
        except Exception as exc:  # noqa: BLE001 - stages are deprecated and may be gone
            level = logging.DEBUG if self._stage_warned else logging.WARNING
            log.log(level, "could not set deprecated stage %s on version %s (%s); the aliases are authoritative", stage, version_id, exc)
            self._stage_warned = True

    def _append_event(self, rm: Any, event_fields: Mapping[str, Any]) -> ChampionEvent:
        """Write the unrecorded ``external`` event (if any) and then this one; never rewrite a tag."""
        events = self._events(rm)
        recorded = {e.seq for e in self._recorded_events(rm)}
        for e in events:
            if e.seq not in recorded and e.action == "external":
                self._write_event(e)
        seq = (max((e.seq for e in events), default=0)) + 1
        event = ChampionEvent(seq=seq, **event_fields)
        self._write_event(event)
        return event

    def _write_event(self, event: ChampionEvent) -> None:
        self.client.set_registered_model_tag(
            self.name, f"{TAG_CHAMPION_EVENT_PREFIX}{event.seq:06d}", json.dumps(event.as_dict())[:4900])

    def _set_description_part(self, version_id: str, label: str, text: str) -> None:
        """Replace (or add) the paragraph starting ``<label>:`` in the version's description."""
        mv = self._mlflow_version(version_id)
        if mv is None:
            return
        parts = [p for p in (mv.description or "").split("\n\n") if p and not p.startswith(f"{label}:")]
        parts.append(f"{label}: {text}")
        self.client.update_model_version(self.name, version_id, description="\n\n".join(parts)[:4900])

    def _move_champion(
        self,
        rm: Any,
        target: str,
        *,
        action: str,
        actor: str,
        reason: str,
        extra_tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Point ``champion`` at ``target`` and record it. Caller holds the lock and validated ``target``."""
        from mlflow.exceptions import MlflowException

        aliases = self._aliases(rm)
        old = aliases.get(CHAMPION)
        deleted = UnknownVersionError(
            f"version {target} was deleted while being promoted; the champion stays {old or 'unset'}"
        )
        try:
            self.client.set_registered_model_alias(self.name, CHAMPION, target)
        except MlflowException:
            if self._mlflow_version(target) is None:  # deleted (outside our lock) since we checked
                raise deleted from None
            raise
        # Deletion does not take our lock; under READ COMMITTED (PostgreSQL) it can slip between
        # the existence check inside set_registered_model_alias and its insert. Re-read, and put
        # the previous champion back rather than leave the alias on a deleted version.
        if self._mlflow_version(target) is None:
            if old and self._mlflow_version(old) is not None:
                self.client.set_registered_model_alias(self.name, CHAMPION, old)
            else:
                try:
                    self.client.delete_registered_model_alias(self.name, CHAMPION)
                except MlflowException:
                    pass  # MLflow already dropped it with the version
            raise deleted
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # orders events within a second
        self._append_event(rm, dict(at=now, champion=target, previous=old, action=action, by=actor, reason=reason))
        self.client.set_registered_model_tag(self.name, TAG_PREVIOUS_CHAMPION, old or "")
        if aliases.get(CHALLENGER) == target:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        if action == "rollback":  # the promotion's own record stays as it was
            tags = {"rolled_back_to_at": now, "rolled_back_to_by": actor, "rollback_reason": reason}
        else:
            tags = {"promoted_by": actor, "promoted_at": now, "promotion_reason": reason,
                    TAG_PREVIOUS_CHAMPION: old or ""}
        tags.update(extra_tags or {})
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, target, key, value)
        verb = {"rollback": "rolled back to", "override": "promoted OVER THE GATE'S VERDICT",
                "forced-promote": "promoted, forced over the gate's verdict", "auto-promote": "promoted by the gate"}
        self._set_description_part(target, "Champion", f"{verb.get(action, 'promoted')} at {now} by {actor} "
                                                      f"(replacing {'version ' + old if old else 'no champion'}): {reason}")
        if old:
            if self._mlflow_version(old) is not None:
                self.client.set_model_version_tag(self.name, old, "replaced_by", target)
                self.client.set_model_version_tag(self.name, old, "replaced_at", now)
        self._set_stage(target, STAGE_PRODUCTION)
        for mv in self._iter_mlflow_versions():  # the old champion, and any hand-set Production version
            if str(mv.version) != target and mv.current_stage == STAGE_PRODUCTION:
                self._set_stage(str(mv.version), STAGE_ARCHIVED)
        log.info("%s champion: %s -> %s (%s, by %s)", self.name, old, target, reason, actor)
        self._mirror_after_change()
        return self.get(target)

    def _validated_target(self, rm: Any, version_id: str) -> str:
        vid = _vid(version_id)
        mv = self._mlflow_version(vid)
        if mv is None:
            known = ", ".join(sorted((str(m.version) for m in self._iter_mlflow_versions()), key=int)) or "none"
            raise UnknownVersionError(f"model {self.name!r} has no version {vid} (existing versions: {known})")
        if getattr(mv, "status", "READY") not in ("READY", None):
            raise RegistryError(f"version {vid} is not ready (status {mv.status}); it cannot be promoted")
        if self._aliases(rm).get(CHAMPION) == vid:
            raise AlreadyChampionError(f"version {vid} is already the champion of {self.name!r}; nothing to do")
        return vid

    def promote(
        self,
        version_id: str,
        *,
        reason: str = "manual promotion",
        promoted_by: str | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Make ``version_id`` the champion; the outgoing champion becomes the previous one.

        When the gate's last verdict on that version was not "promote", this is an *override*:
        recorded as such (``gate.overridden_by``, the event's action) and logged as a warning
        (:func:`gate_override` tells callers beforehand). Returns the new champion. Errors
        (nothing changed): :class:`EmptyRegistryError`, :class:`UnknownVersionError`,
        :class:`AlreadyChampionError`.
        """
        with self.lock:
            rm = self._require_model()
            target = self._validated_target(rm, version_id)
            actor = promoted_by or current_actor()
            verdict = self.gate_override(target)
            tags = dict(extra_tags or {})
            action = "promote"
            if verdict:
                action = "override"
                tags[f"{GATE_TAG_PREFIX}overridden_by"] = actor
                log.warning("promoting version %s against the gate's last verdict (%s): %s", target, verdict, reason)
            return self._move_champion(rm, target, action=action, actor=actor, reason=reason, extra_tags=tags)

    def gate_override(self, version_id: str) -> str | None:
        """The gate's last verdict on ``version_id`` if promoting it would override it (else None)."""
        mv = self._mlflow_version(_vid(version_id))
        decision = (mv.tags or {}).get(f"{GATE_TAG_PREFIX}decision") if mv is not None else None
        if not decision or decision == "promote":
            return None
        return f"{decision} vs {(mv.tags or {}).get(f'{GATE_TAG_PREFIX}compared_with', '?')}"

    def rollback(
        self, version_id: str | None = None, *, reason: str | None = None, promoted_by: str | None = None
    ) -> ModelVersion:
        """Move ``champion`` back: to ``version_id``, or (bare) to the champion before the current one.

        A bare rollback repeated toggles between the last two champions (each rollback is a new
        event; nothing is popped or rewritten); name a version to go further back.
        Errors (nothing changed): :class:`EmptyRegistryError`, :class:`UnknownVersionError`,
        :class:`AlreadyChampionError`, :class:`NoPreviousChampionError`.
        """
        with self.lock:
            rm = self._require_model()
            current = self._aliases(rm).get(CHAMPION)
            actor = promoted_by or current_actor()
            if version_id is not None:
                target = self._validated_target(rm, version_id)
            else:
                target = self._rollback_target(self._events(rm), current)
                if target is None:
                    if current is None:
                        raise NoPreviousChampionError(
                            f"model {self.name!r} has no champion and no recorded previous champion; "
                            "promote a version explicitly: `signals promote VERSION`"
                        )
                    raise NoPreviousChampionError(
                        f"no previous champion is recorded for {self.name!r} (champion is version {current}); "
                        "name the version to roll back to: `signals rollback VERSION`"
                    )
            return self._move_champion(
                rm, target, action="rollback", actor=actor,
                reason=reason or f"rollback from {current or 'none'} to {target}",
            )

    # ------------------------------------------------------------------ the gate
    def holdout_predictions(self, version: ModelVersion) -> "pd.DataFrame":
        """The out-of-sample predictions logged by the training run of ``version``."""
        from mlflow.exceptions import MlflowException


        if not version.run_id:
            raise GateError(f"version {version.version_id} has no training run, so no holdout predictions to compare")
        with tempfile.TemporaryDirectory(prefix="signals-holdout-") as tmp:
            try:
                local = self.client.download_artifacts(version.run_id, HOLDOUT_ARTIFACT, tmp)
            except (MlflowException, OSError) as exc:
                raise GateError(
                    f"version {version.version_id}: run {version.run_id} has no {HOLDOUT_ARTIFACT} ({exc}); "
                    "the gate cannot compare it. Promote explicitly if you are sure."
                ) from None
            return pd.read_parquet(local)

    def promote_if_better(
        self,
        *,
        alpha: float = 0.05,
        min_rows: int = 100,
        n_resamples: int = 2000,
        block_days: int = 5,
        seed: int = 0,
        force: bool = False,
        reason: str | None = None,
    ) -> AutoPromoteOutcome:
        """Promote the challenger only if the gate says it beats the champion (with no champion:
        its own class prior).

        Evaluated under the lock, so the champion cannot change between the comparison and the
        promotion. The verdict is recorded on the challenger either way (a few ``gate.*`` tags and
        a "Gate:" paragraph in its description; aliases, stages and the mirror change only on
        promotion). ``force`` promotes even against the gate's verdict; the override, who did it
        and why are recorded on the version (``gate.forced``, ``promoted_by``, ``promotion_reason``).
        """

        with self.lock:
            rm = self._require_model()
            aliases = self._aliases(rm)
            champion = self.get(aliases[CHAMPION]) if CHAMPION in aliases else None
            challenger = self.get(aliases[CHALLENGER]) if CHALLENGER in aliases else None
            if challenger is None or (champion and challenger.version_id == champion.version_id):
                gate = GateResult(
                    "keep",
                    "there is no challenger to evaluate (register a new version first)",
                    alpha=alpha,
                    n_resamples=n_resamples,
                    block_days=block_days,
                    seed=seed,
                )
                return AutoPromoteOutcome(gate, challenger, champion, None)
            chall_preds = self.holdout_predictions(challenger)
            champ_preds = self.holdout_predictions(champion) if champion else None
            gate = evaluate_gate(
                champ_preds,
                chall_preds,
                alpha=alpha,
                min_rows=min_rows,
                n_resamples=n_resamples,
                block_days=block_days,
                seed=seed,
            )
            now = utc_now_iso()
            gate_tags = self._gate_tags(gate, champion, now)
            forced = force and not gate.promote
            gate_tags[f"{GATE_TAG_PREFIX}forced"] = "true" if forced else "false"
            for key, value in gate_tags.items():
                self.client.set_model_version_tag(self.name, challenger.version_id, key, value)
            self._set_description_part(challenger.version_id, "Gate", gate_description(gate, champion, now))
            if not gate.promote and not force:
                log.info("gate kept champion %s over challenger %s: %s", champion and champion.version_id, challenger.version_id, gate.reason)
                return AutoPromoteOutcome(gate, self.get(challenger.version_id), champion, None)
            if forced:
                actor, action = current_actor(), "forced-promote"
                why = f"forced over the gate ({gate.decision}){': ' + reason if reason else ''}; gate: {gate.reason}"
            else:
                actor, action, why = AUTO_GATE_ACTOR, "auto-promote", f"auto-gate: {gate.reason}"
            promoted = self._move_champion(rm, challenger.version_id, action=action, actor=actor, reason=why)
            return AutoPromoteOutcome(gate, challenger, champion, promoted)

    @staticmethod
    def _gate_tags(gate: "GateResult", champion: ModelVersion | None, now: str) -> dict[str, str]:
        """The verdict in a few readable tags (the whole sentence is in the description)."""
        def fmt(x: float | None) -> str:
            return "" if x is None else f"{float(x):.4f}"

        return {
            f"{GATE_TAG_PREFIX}decision": gate.decision,
            f"{GATE_TAG_PREFIX}compared_with": compared_with(gate, champion),
            f"{GATE_TAG_PREFIX}log_loss_delta": fmt(None if gate.improvement is None else -gate.improvement),
            f"{GATE_TAG_PREFIX}p_value": fmt(gate.p_value),
            f"{GATE_TAG_PREFIX}evaluated_at": now,
        }


def compared_with(gate: "GateResult", champion: ModelVersion | None) -> str:
    return f"champion v{champion.version_id}" if champion is not None else "class prior"


def gate_description(gate: "GateResult", champion: ModelVersion | None, now: str) -> str:
    """The gate's verdict as the paragraph a person reads on the version page."""
    verdict = {"promote": "PROMOTE", "keep": "KEEP (not promoted)", "insufficient_data": "NO VERDICT (too few rows)"}
    head = f"{verdict.get(gate.decision, gate.decision)} at {now}, compared with {compared_with(gate, champion)}"
    if gate.p_value is None or gate.improvement is None:
        return f"{head}. {gate.reason}"
    base = f"champion v{champion.version_id}" if champion is not None else "class prior"
    text = (f"{head}: hold-out log-loss {gate.challenger_log_loss:.4f} vs {gate.champion_log_loss:.4f} ({base}), "
            f"delta {-gate.improvement:+.4f} (negative = this version is better), one-sided paired bootstrap "
            f"p = {gate.p_value:.4f} (alpha {gate.alpha}) on {gate.n_rows} rows / {gate.n_dates} dates.")
    if champion is not None and gate.prior_log_loss is not None:
        text += (f" Class prior on the same rows: log-loss {gate.prior_log_loss:.4f} "
                 f"(delta {gate.challenger_log_loss - gate.prior_log_loss:+.4f}).")
    return text
