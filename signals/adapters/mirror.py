"""The Redis mirror of the model registry, drift events and latest signals.

MLflow is the source of truth; Redis is a read-side copy for the rest of the trading system,
and it can always be rebuilt from MLflow (``signals registry sync``). This docstring is the one
place the key layout is documented.

Key layout (``{p}`` is ``redis.prefix``, default ``ml``; every value is a UTF-8 string)
-------------------------------------------------------------------------------------
==============================  ======  ==========================================================
key                             type    content
==============================  ======  ==========================================================
``{p}:models:{version_id}``     HASH    one registered version: ``version_id``, ``path`` (the
                                        version's MLflow source as a URI; a local path is
                                        replaced by ``model_uri``), ``model_uri``
                                        (``models:/<name>/<version>``), ``metrics`` (JSON object),
                                        ``created_at`` (ISO-8601 UTC), ``is_active`` (``1``/``0``),
                                        ``aliases`` (comma-separated), ``run_id``, ``stage``,
                                        ``promoted_at``, ``promoted_by``
``{p}:models:index``            ZSET    every mirrored version id, scored by version number
``{p}:models:active``           STRING  the champion's version id (absent: no champion)
``{p}:models:challenger``       STRING  the challenger's version id (absent: none)
``{p}:models:meta``             HASH    ``model_name``, ``previous_champion``, ``synced_at``
``{p}:drift:events``            STREAM  drift events from the monitor (``XADD ... MAXLEN ~
                                        redis.stream_maxlen``); scalar fields as strings, nested
                                        values as JSON; ``ts`` (ISO-8601 UTC) added if absent
``{p}:signals:latest``          HASH    field per symbol -> JSON of that symbol's latest signal
                                        record (signals/serving/schema.py) + ``published_at``,
                                        ``strategy_name``
``{p}:signals:{symbol}``        HASH    the same record as flat fields (``HGETALL``; null -> "")
``{p}:mirror:stale``            STRING  present (JSON ``{"reason", "since"}``) while the mirror
                                        may be behind MLflow; readers should then treat it as a
                                        hint and ask MLflow
==============================  ======  ==========================================================

Version ids are MLflow registry version numbers (``"1"``, ``"2"``, ...), so ``index``,
``active``, ``challenger`` and ``meta`` never collide with a version's hash. The symbol
``latest`` is reserved.

Consistency rules
-----------------
* Every registry change rewrites the whole registry part (``models:*``) from MLflow in one
  ``MULTI/EXEC`` transaction, so a reader never sees a half-applied promotion, and every write
  also repairs whatever an earlier failed write missed. The registry does this while holding its
  lock, so mirror writes land in the same order as the MLflow changes.
* If Redis is unreachable the MLflow change still stands: the command warns on stderr and a
  marker file ``signals-mirror-STALE-{p}`` is written beside the MLflow store (next to the SQLite
  file of ``sqlite:///...``, next to the directory of a ``file:`` store; for a remote tracking
  server, in ``$XDG_STATE_HOME/signals/mirror/<hash of the URI>/``, default ``~/.local/state``),
  since Redis itself cannot be told. Every process using that store sees it, whatever its working
  directory (see :func:`stale_marker_dir`). When a stale mirror is next reached
  (any write: registry change, drift event, signals, or ``sync``), the registry part is rebuilt
  from MLflow first and the marker and ``{p}:mirror:stale`` are cleared. The same happens when
  ``{p}:models:meta`` is missing (a Redis restart that lost its data).
* Drift events and signals written while Redis was down are not replayed: the monitor's MLflow
  runs keep the drift history and the next signals run republishes the latest signals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote, urlparse

from signals.adapters.redis import connect, warn_if_embedded_with_remote_registry
from signals.core.errors import SignalsError
from signals.core.io import atomic_write_text
from signals.core.redaction import redact_text
from signals.core.vocabulary import utc_now_iso
from signals.registry.client import ModelRegistry
from signals.registry.types import RegistrySnapshot, VersionRecord

log = logging.getLogger("signals.adapters.mirror")

RESERVED_SYMBOLS = frozenset({"latest"})


class MirrorError(SignalsError):
    """Bad input to the mirror (e.g. a signal without a symbol)."""


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    return str(value)


def _finite(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON for other readers) with None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return _finite(obj.item())
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_finite(obj), default=_json_default, sort_keys=True)


def _to_field(value: Any) -> str:
    """A Redis field value: scalars as plain strings, containers as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float)):
        return str(value)
    if hasattr(value, "item"):
        return _to_field(value.item())
    return _dumps(value)


@dataclass(frozen=True)
class Keys:
    """Key names for one prefix (the layout documented in the module docstring)."""

    prefix: str = "ml"

    def model(self, version_id: str) -> str:
        return f"{self.prefix}:models:{version_id}"

    @property
    def models_index(self) -> str:
        return f"{self.prefix}:models:index"

    @property
    def active(self) -> str:
        return f"{self.prefix}:models:active"

    @property
    def challenger(self) -> str:
        return f"{self.prefix}:models:challenger"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:models:meta"

    @property
    def drift_events(self) -> str:
        return f"{self.prefix}:drift:events"

    @property
    def signals_latest(self) -> str:
        return f"{self.prefix}:signals:latest"

    def signal(self, symbol: str) -> str:
        return f"{self.prefix}:signals:{symbol}"

    @property
    def stale(self) -> str:
        return f"{self.prefix}:mirror:stale"


def portable_source(path: str, model_uri: str) -> str:
    """The version's source as a URI any reader of the MLflow store can resolve.

    A local store records the artifact location as a path on the machine that logged it
    (``/home/.../mlruns/...`` or ``file:///...``); that means nothing to another program, so
    the registry URI (``models:/<name>/<version>``) stands in for it.
    """
    text = str(path or "")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ("models" if text.startswith("models:/") else "")
    if scheme in ("", "file") or text.startswith("/"):
        return model_uri
    return redact_text(text)  # a model source on a store URL with credentials


def version_hash(v: VersionRecord) -> dict[str, str]:
    """The Redis hash of one version (``models:{version}``)."""
    return {
        "version_id": v.version_id,
        "path": portable_source(v.path, v.model_uri),
        "model_uri": v.model_uri,
        "metrics": _dumps(dict(v.metrics)),
        "created_at": v.created_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "is_active": "1" if v.is_active else "0",
        "aliases": ",".join(v.aliases),
        "run_id": v.run_id or "",
        "stage": v.stage or "",
        "promoted_at": v.promoted_at or "",
        "promoted_by": v.promoted_by or "",
    }


SnapshotProvider = Callable[[], RegistrySnapshot]


STALE_MARKER_PREFIX = "signals-mirror-STALE-"


def stale_marker_dir(tracking_uri: str) -> Path:
    """Where the stale marker of the mirror of this MLflow store lives: beside the store.

    The marker must be seen by every process that uses the same MLflow store, so it goes with
    the store, not with a process's working directory: the SQLite file's directory, the parent
    of a local file store, and for a remote server (nothing local to sit beside) a directory
    per tracking URI in the user's state directory. Relative paths are resolved now, as MLflow
    resolves them, so the answer does not change if the process later changes directory.
    """
    uri = tracking_uri.strip()
    if uri.startswith("sqlite:///"):
        rest = uri[len("sqlite:///"):].split("?", 1)[0]
        if rest and rest != ":memory:":
            return Path(rest).expanduser().absolute().parent
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).absolute().parent
    if not parsed.scheme or len(parsed.scheme) == 1:  # a plain path (or a Windows drive letter)
        return Path(uri).expanduser().absolute().parent
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "signals" / "mirror" / hashlib.sha256(uri.encode()).hexdigest()[:16]


@dataclass
class Mirror:
    """Writes the registry state, drift events and signals to Redis; never the source of truth.

    ``connect`` returns a ``redis.Redis`` or ``None`` (mirror off); it is called lazily, once.
    ``snapshot_provider`` reads the registry from MLflow; with it, a stale or emptied mirror
    heals itself on the next successful write.
    """

    connect: Callable[[], Any]
    prefix: str = "ml"
    stream_maxlen: int = 10_000
    marker_dir: Path = field(default_factory=lambda: stale_marker_dir("sqlite:///mlflow.db"))
    snapshot_provider: SnapshotProvider | None = None
    enabled: bool = True
    _client: Any = field(default=None, init=False, repr=False)
    _connected: bool = field(default=False, init=False, repr=False)
    last_error: str | None = field(default=None, init=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(cls, settings: Any, *, snapshot_provider: SnapshotProvider | None = None) -> "Mirror":
        """The mirror for ``settings``; by default it can rebuild itself from the MLflow registry."""

        if snapshot_provider is None:

            def snapshot_provider() -> RegistrySnapshot:

                return ModelRegistry.from_settings(settings, mirror=False).snapshot()

        r = settings.redis
        warn_if_embedded_with_remote_registry(settings)
        return cls(
            connect=lambda: connect(r),
            prefix=r.prefix,
            stream_maxlen=r.stream_maxlen,
            marker_dir=stale_marker_dir(settings.mlflow.registry_uri or settings.mlflow.tracking_uri),
            snapshot_provider=snapshot_provider,
            enabled=r.enabled,
        )

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    @property
    def marker_path(self) -> Path:
        """File beside the MLflow store saying "the mirror is behind MLflow" (written when Redis is unreachable)."""
        return self.marker_dir / f"{STALE_MARKER_PREFIX}{self.prefix}"

    def client(self) -> Any | None:
        """The Redis client, or ``None`` when the mirror is off. Connection errors propagate."""
        if not self._connected:
            self._client = self.connect() if self.enabled else None
            self._connected = True
        return self._client

    # ------------------------------------------------------------------ stale marker
    def is_stale(self) -> bool:
        """True when the local marker exists or Redis carries the stale flag (best effort)."""
        if self.marker_path.exists():
            return True
        try:
            r = self.client()
            return bool(r is not None and r.exists(self.keys.stale))
        except Exception:  # noqa: BLE001 - unreachable Redis: we cannot know, say stale
            return True

    def mark_stale(self, reason: str, *, tell_redis: bool = True) -> None:
        """Record that the mirror may be behind MLflow: local marker, and the Redis flag if reachable."""
        payload = json.dumps({"reason": reason, "since": utc_now_iso(), "prefix": self.prefix})
        try:

            if not self.marker_path.exists():
                atomic_write_text(payload + "\n", self.marker_path)
        except OSError as exc:
            log.error("cannot write the stale marker %s: %s", self.marker_path, exc)
        try:
            r = self._client
            if r is not None and tell_redis:
                r.set(self.keys.stale, payload, nx=True)
        except Exception:  # noqa: BLE001 - Redis is likely the reason we are here
            pass

    def _failed(self, what: str, exc: BaseException) -> None:
        self.last_error = redact_text(f"{type(exc).__name__}: {exc}")  # shown by the CLI, stored in the marker
        log.warning(
            "Redis mirror not updated (%s failed: %s). MLflow is unaffected; the mirror is marked stale "
            "(%s) and will be rebuilt on the next successful write or `signals registry sync`.",
            what,
            self.last_error,
            self.marker_path,
        )
        import redis

        # Only try to raise the Redis-side flag when Redis answered (e.g. an aborted transaction);
        # after a connection failure a second attempt would just wait out another timeout.
        reachable = not isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError))
        self.mark_stale(f"{what} failed: {self.last_error}", tell_redis=reachable)

    def _clear_marker(self) -> None:
        try:
            self.marker_path.unlink(missing_ok=True)
        except OSError as exc:  # pragma: no cover - read-only checkout
            log.warning("cannot remove the stale marker %s: %s", self.marker_path, exc)

    # ------------------------------------------------------------------ registry
    def _write_snapshot(self, r: Any, snap: RegistrySnapshot) -> None:
        import redis

        k = self.keys
        new_ids = {v.version_id for v in snap.versions}
        with r.pipeline(transaction=True) as pipe:
            for _attempt in range(20):
                try:
                    pipe.watch(k.models_index)
                    old_ids = set(pipe.zrange(k.models_index, 0, -1))
                    pipe.multi()
                    for vid in old_ids - new_ids:
                        pipe.delete(k.model(vid))
                    pipe.delete(k.models_index)
                    for v in snap.versions:
                        pipe.delete(k.model(v.version_id))
                        pipe.hset(k.model(v.version_id), mapping=version_hash(v))
                        pipe.zadd(k.models_index, {v.version_id: float(v.version_id) if v.version_id.isdigit() else 0.0})
                    for key, value in ((k.active, snap.champion), (k.challenger, snap.challenger)):
                        if value:
                            pipe.set(key, value)
                        else:
                            pipe.delete(key)
                    pipe.delete(k.meta)
                    pipe.hset(
                        k.meta,
                        mapping={
                            "model_name": snap.model_name,
                            "previous_champion": snap.previous_champion or "",
                            "synced_at": utc_now_iso(),
                        },
                    )
                    pipe.delete(k.stale)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue
        raise RuntimeError("the registry mirror kept changing under a concurrent writer (20 retries)")

    def write_registry(self, snapshot: RegistrySnapshot) -> bool | None:
        """Replace the mirrored registry with ``snapshot`` atomically.

        Returns True on success, False when Redis failed (marked stale, warned), None when off.
        """
        try:
            r = self.client()
            if r is None:
                log.debug("mirror off: registry state not mirrored")
                return None
            self._write_snapshot(r, snapshot)
        except Exception as exc:  # noqa: BLE001 - any Redis/connection failure degrades, never raises
            self._failed("registry mirror write", exc)
            return False
        self._clear_marker()
        self.last_error = None
        return True

    def sync(self) -> bool | None:
        """Rebuild the registry part from MLflow (``signals registry sync``)."""
        if not self.enabled:
            log.debug("mirror off: nothing to sync")
            return None
        if self.snapshot_provider is None:
            raise MirrorError("this mirror has no registry to sync from")
        return self.write_registry(self.snapshot_provider())

    def _heal(self, r: Any) -> None:
        """Before an ordinary write: rebuild the registry part if the mirror is stale or was emptied."""
        if self.snapshot_provider is None:
            return
        k = self.keys
        flagged, has_meta = r.exists(k.stale), r.exists(k.meta)
        if not (self.marker_path.exists() or flagged or not has_meta):
            return
        try:
            snapshot = self.snapshot_provider()
        except Exception as exc:  # noqa: BLE001 - MLflow unreachable: stay stale, keep writing
            log.warning("mirror is stale but the registry could not be read to rebuild it: %s", exc)
            return
        self._write_snapshot(r, snapshot)
        self._clear_marker()
        log.info("Redis mirror was stale or empty: rebuilt the registry part from MLflow")

    # ------------------------------------------------------------------ drift events
    def append_drift_event(self, event: Mapping[str, Any]) -> str | None:
        """``XADD {p}:drift:events MAXLEN ~ stream_maxlen``; returns the entry id, None if not written."""
        if not event:
            raise MirrorError("a drift event needs at least one field")
        fields = {str(key): _to_field(value) for key, value in event.items()}
        fields.setdefault("ts", utc_now_iso())
        try:
            r = self.client()
            if r is None:
                log.debug("mirror off: drift event not mirrored")
                return None
            self._heal(r)
            entry = r.xadd(self.keys.drift_events, fields, maxlen=self.stream_maxlen, approximate=True)
        except Exception as exc:  # noqa: BLE001
            self._failed("drift event write", exc)
            return None
        return str(entry)

    def read_drift_events(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The newest ``count`` drift events, newest first."""
        r = self.client()
        if r is None:
            return []
        return [(str(i), dict(f)) for i, f in r.xrevrange(self.keys.drift_events, count=count)]

    # ------------------------------------------------------------------ signals
    def publish_signals(self, signals: Iterable[Mapping[str, Any]]) -> int | None:
        """Store each symbol's latest signal (both key forms) in one transaction.

        Returns the number of symbols written, None if not written (off or Redis down).
        """
        rows = list(signals)
        by_symbol: dict[str, dict[str, Any]] = {}
        for row in rows:
            symbol = row.get("symbol")
            if not symbol or not isinstance(symbol, str):
                raise MirrorError(f"every signal needs a string 'symbol', got {row!r:.120}")
            if symbol in RESERVED_SYMBOLS:
                raise MirrorError(f"symbol {symbol!r} is reserved in the Redis key layout")
            by_symbol[symbol] = {**row, "published_at": row.get("published_at") or utc_now_iso()}
        if not by_symbol:
            return 0
        try:
            r = self.client()
            if r is None:
                log.debug("mirror off: %d signal(s) not mirrored", len(by_symbol))
                return None
            self._heal(r)
            k = self.keys
            with r.pipeline(transaction=True) as pipe:
                pipe.hset(
                    k.signals_latest,
                    mapping={s: _dumps(v) for s, v in by_symbol.items()},
                )
                for s, v in by_symbol.items():
                    pipe.delete(k.signal(s))
                    pipe.hset(k.signal(s), mapping={f: _to_field(x) for f, x in v.items()})
                pipe.execute()
        except Exception as exc:  # noqa: BLE001
            self._failed("signals write", exc)
            return None
        return len(by_symbol)

    def latest_signals(self) -> dict[str, dict[str, Any]]:
        r = self.client()
        if r is None:
            return {}
        return {s: json.loads(v) for s, v in r.hgetall(self.keys.signals_latest).items()}

    # ------------------------------------------------------------------ reading the registry part
    def read_registry(self) -> dict[str, Any]:
        """What the mirror currently says (for checks and ``registry list --mirror``)."""
        r = self.client()
        if r is None:
            return {}
        k = self.keys
        ids = r.zrange(k.models_index, 0, -1)
        return {
            "active": r.get(k.active),
            "challenger": r.get(k.challenger),
            "meta": r.hgetall(k.meta),
            "stale": r.get(k.stale),
            "versions": {vid: r.hgetall(k.model(vid)) for vid in ids},
        }
