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

Previous champion
    Registered-model tag ``champion_history`` holds JSON ``{"champion": "7", "previous": ["3",
    "5"]}`` (oldest first, capped at 50) and tag ``previous_champion`` its last entry (for the UI).
    Promotion and an explicit rollback push the outgoing champion; a bare ``rollback()`` pops,
    so repeated bare rollbacks walk back through earlier champions. The alias is moved *before*
    the record is rewritten; if a process dies in between (or someone moves the alias in the
    MLflow UI), the next operation sees ``record.champion != alias`` and treats the recorded
    champion as the previous one, so the record heals instead of drifting.

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

Version tags
    ``metric.<name>`` (metrics given to ``register``), ``train_start``/``train_end``/
    ``holdout_start``/``holdout_end`` (data window), ``registered_by``/``registered_at``,
    ``promoted_by`` (``user@host`` or ``auto-gate``), ``promoted_at`` (ISO-8601 UTC),
    ``promotion_reason``, ``previous_champion``, ``logged_model_id`` (the MLflow logged model
    the version was registered from), and the gate's ``gate.*`` results.
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
    HISTORY_LIMIT,
    HOLDOUT_ARTIFACT,
    METRIC_TAG_PREFIX,
    STAGE_ARCHIVED,
    STAGE_PRODUCTION,
    TAG_CHAMPION_HISTORY,
    TAG_PREVIOUS_CHAMPION,
    AlreadyChampionError,
    AutoPromoteOutcome,
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

    def champion_history(self) -> list[str]:
        """Earlier champions, oldest first (what bare rollbacks walk back through)."""
        rm = self._registered_model()
        if rm is None:
            return []
        return self._history(rm)

    def previous_champion(self) -> str | None:
        hist = self.champion_history()
        return hist[-1] if hist else None

    def _history(self, rm: Any) -> list[str]:
        """The recorded history, healed if the alias moved without the record (crash, UI edit)."""
        tags = dict(rm.tags or {})
        actual = self._aliases(rm).get(CHAMPION)
        raw = tags.get(TAG_CHAMPION_HISTORY)
        record: dict[str, Any] = {}
        if raw:
            try:
                record = json.loads(raw)
            except ValueError:
                log.warning("registered-model tag %s is not JSON (%r); starting a new history", TAG_CHAMPION_HISTORY, raw[:80])
        history = [str(v) for v in record.get("previous", [])]
        if not raw and tags.get(TAG_PREVIOUS_CHAMPION):
            history = [tags[TAG_PREVIOUS_CHAMPION]]
        recorded = record.get("champion")
        if recorded and recorded != actual:
            log.warning(
                "the champion alias points at %s but the history recorded %s (moved outside signals, or an "
                "interrupted change); counting %s as the previous champion",
                actual,
                recorded,
                recorded,
            )
            if not history or history[-1] != recorded:
                history.append(str(recorded))
        return history

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
            )
            for v in self.list_versions()
        )
        history = self._history(rm)
        return RegistrySnapshot(
            model_name=self.name,
            versions=records,
            champion=aliases.get(CHAMPION),
            challenger=aliases.get(CHALLENGER),
            previous_champion=history[-1] if history else None,
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
        version_tags = {f"{METRIC_TAG_PREFIX}{k}": repr(v) for k, v in clean_metrics.items()}
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

    def _write_history(self, champion: str, history: list[str]) -> None:
        history = history[-HISTORY_LIMIT:]
        self.client.set_registered_model_tag(
            self.name, TAG_CHAMPION_HISTORY, json.dumps({"champion": champion, "previous": history})
        )
        self.client.set_registered_model_tag(self.name, TAG_PREVIOUS_CHAMPION, history[-1] if history else "")

    def _move_champion(
        self,
        rm: Any,
        target: str,
        new_history: list[str],
        *,
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
        self._write_history(target, new_history)
        if aliases.get(CHALLENGER) == target:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        now = utc_now_iso()
        tags = {
            "promoted_by": actor,
            "promoted_at": now,
            "promotion_reason": reason,
            TAG_PREVIOUS_CHAMPION: old or "",
            **(extra_tags or {}),
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, target, key, value)
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

        Returns the new champion. Errors (nothing changed): :class:`EmptyRegistryError`,
        :class:`UnknownVersionError`, :class:`AlreadyChampionError`.
        """
        with self.lock:
            rm = self._require_model()
            target = self._validated_target(rm, version_id)
            history = self._history(rm)
            old = self._aliases(rm).get(CHAMPION)
            if old and (not history or history[-1] != old):
                history.append(old)
            return self._move_champion(
                rm, target, history, actor=promoted_by or current_actor(), reason=reason, extra_tags=extra_tags
            )

    def rollback(
        self, version_id: str | None = None, *, reason: str | None = None, promoted_by: str | None = None
    ) -> ModelVersion:
        """Move ``champion`` back: to ``version_id``, or (bare) to the previous champion.

        A bare rollback pops the history, so repeating it walks further back; rolling back to a
        named version pushes the current champion, so a bare rollback can undo it.
        Errors (nothing changed): :class:`EmptyRegistryError`, :class:`UnknownVersionError`,
        :class:`AlreadyChampionError`, :class:`NoPreviousChampionError`.
        """
        with self.lock:
            rm = self._require_model()
            current = self._aliases(rm).get(CHAMPION)
            history = self._history(rm)
            actor = promoted_by or current_actor()
            if version_id is not None:
                target = self._validated_target(rm, version_id)
                if current and (not history or history[-1] != current):
                    history.append(current)
                return self._move_champion(
                    rm, target, history, actor=actor, reason=reason or f"rollback from {current} to {target}"
                )
            remaining = list(history)
            while remaining:
                candidate = remaining.pop()
                if candidate != current and self._mlflow_version(candidate) is not None:
                    return self._move_champion(
                        rm, candidate, remaining, actor=actor, reason=reason or f"rollback from {current} to previous champion {candidate}"
                    )
            if current is None:
                raise NoPreviousChampionError(
                    f"model {self.name!r} has no champion and no recorded previous champion; "
                    "promote a version explicitly: `signals promote VERSION`"
                )
            raise NoPreviousChampionError(
                f"no previous champion is recorded for {self.name!r} (champion is version {current}); "
                "name the version to roll back to: `signals rollback VERSION`"
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
        promotion. The gate's numbers are recorded as ``gate.*`` tags on the challenger either
        way (an audit trail; aliases, stages and the mirror change only on promotion). ``force``
        promotes even against the gate's verdict; the override, who did it and why are recorded
        on the version (``gate.forced``, ``promoted_by``, ``promotion_reason``).
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
            gate_tags = self._gate_tags(gate, champion)
            forced = force and not gate.promote
            gate_tags[f"{GATE_TAG_PREFIX}forced"] = "true" if forced else "false"
            for key, value in gate_tags.items():
                self.client.set_model_version_tag(self.name, challenger.version_id, key, value)
            if not gate.promote and not force:
                log.info("gate kept champion %s over challenger %s: %s", champion and champion.version_id, challenger.version_id, gate.reason)
                return AutoPromoteOutcome(gate, self.get(challenger.version_id), champion, None)
            history = self._history(rm)
            if champion and (not history or history[-1] != champion.version_id):
                history.append(champion.version_id)
            if forced:
                actor = current_actor()
                why = f"forced over the gate ({gate.decision}){': ' + reason if reason else ''}; gate: {gate.reason}"
            else:
                actor, why = AUTO_GATE_ACTOR, f"auto-gate: {gate.reason}"
            promoted = self._move_champion(rm, challenger.version_id, history, actor=actor, reason=why)
            return AutoPromoteOutcome(gate, challenger, champion, promoted)

    @staticmethod
    def _gate_tags(gate: "GateResult", champion: ModelVersion | None) -> dict[str, str]:
        def fmt(x: float | None) -> str:
            return "" if x is None else repr(float(x))

        return {
            f"{GATE_TAG_PREFIX}decision": gate.decision,
            f"{GATE_TAG_PREFIX}p_value": fmt(gate.p_value),
            f"{GATE_TAG_PREFIX}improvement": fmt(gate.improvement),
            f"{GATE_TAG_PREFIX}challenger_log_loss": fmt(gate.challenger_log_loss),
            f"{GATE_TAG_PREFIX}champion_log_loss": fmt(gate.champion_log_loss),
            f"{GATE_TAG_PREFIX}n_rows": str(gate.n_rows),
            f"{GATE_TAG_PREFIX}alpha": repr(gate.alpha),
            f"{GATE_TAG_PREFIX}vs_champion": champion.version_id if champion else "",
            f"{GATE_TAG_PREFIX}evaluated_at": utc_now_iso(),
            f"{GATE_TAG_PREFIX}reason": gate.reason[:4000],
        }
