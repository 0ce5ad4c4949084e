"""Locks that serialise registry changes ("read champion, move alias, record previous").

With a configured coordination URL (``registry.lock_url``) that one lock, whatever the tracking
URI: a PostgreSQL session advisory lock (``postgresql://``) or a Redis lock (``redis://``), both
correct across machines. Without one: a ``filelock`` beside a SQLite store, an advisory lock on
a PostgreSQL registry and, for any other store (an MLflow server over HTTP), a file lock in the
local temp directory, which serialises this machine only (a warning says so once).
See :mod:`signals.registry.client`.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from signals.core.redaction import redact_url
from signals.registry.types import RegistryBusyError

log = logging.getLogger("signals.registry")


class FileRegistryLock(AbstractContextManager):
    """Process lock via a lock file (fcntl): right for a SQLite store on one machine."""

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:

        self.path = Path(path)
        self.timeout = timeout
        self._lock = FileLock(str(self.path), timeout=timeout)

    def __enter__(self) -> "FileRegistryLock":

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise RegistryBusyError(
                f"another registry change has held {self.path} for over {self.timeout:.0f}s; try again "
                "(if no signals process is running, the lock is stale: it is released when its holder exits)"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"FileRegistryLock({self.path})"


class PostgresAdvisoryLock(AbstractContextManager):
    """Session-level ``pg_advisory_lock`` on the registry database: correct across machines.

    Reentrant within one object (PostgreSQL counts session locks); released by PostgreSQL when
    the holding connection dies, so a crashed promoter never wedges the registry.
    """

    def __init__(self, uri: str, name: str, timeout: float = 60.0, poll: float = 0.05) -> None:
        self.uri = uri
        self.key = int.from_bytes(hashlib.blake2b(f"signals-registry:{name}".encode(), digest_size=8).digest(), "big", signed=True)
        self.timeout = timeout
        self.poll = poll
        self._conn: Any = None
        self._depth = 0

    def __enter__(self) -> "PostgresAdvisoryLock":
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        if self._depth:
            self._depth += 1
            return self
        engine = sa.create_engine(self.uri, poolclass=NullPool)
        conn = engine.connect()
        deadline = time.monotonic() + self.timeout
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
            conn.rollback()
            if time.monotonic() > deadline:
                conn.close()
                raise RegistryBusyError(
                    f"another registry change has held PostgreSQL advisory lock {self.key} for over "
                    f"{self.timeout:.0f}s; try again"
                )
            time.sleep(self.poll)
        conn.commit()  # session lock survives; end the implicit transaction
        self._conn, self._depth = conn, 1
        return self

    def __exit__(self, *exc: object) -> None:
        import sqlalchemy as sa

        self._depth -= 1
        if self._depth:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            conn.commit()
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"PostgresAdvisoryLock(key={self.key})"


class RedisRegistryLock(AbstractContextManager):
    """A redis-py ``Lock`` on a shared Redis: correct across machines.

    The key expires ``lease`` seconds after its holder stops renewing it (a crashed promoter
    never wedges the registry); while held, a daemon thread renews it every ``lease / 3``
    seconds, so a slow change (a large gate bootstrap, a slow tracking server) keeps it.
    Reentrant within one object, like :class:`PostgresAdvisoryLock`.
    """

    def __init__(self, url: str, name: str, timeout: float = 60.0, lease: float = 30.0) -> None:
        self.url = url
        self.key = f"signals:registry-lock:{name}"
        self.timeout = timeout
        self.lease = lease
        self._lock: Any = None
        self._depth = 0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> "RedisRegistryLock":
        import redis

        if self._depth:
            self._depth += 1
            return self
        client = redis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=10)
        lock = client.lock(self.key, timeout=self.lease, blocking_timeout=self.timeout, thread_local=False)
        if not lock.acquire(token=uuid.uuid4().hex):
            raise RegistryBusyError(
                f"another registry change has held the Redis lock {self.key} for over {self.timeout:.0f}s; try again"
            )
        self._lock, self._depth = lock, 1
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="signals-registry-lock", daemon=True)
        self._renewer.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._lock.reacquire()
            except Exception as exc:  # noqa: BLE001 - reported; the change under way cannot be undone here
                log.error("could not renew the registry lock %s (%s): another host may now enter", self.key, exc)
                return

    def __exit__(self, *exc: object) -> None:
        from redis.exceptions import LockError

        self._depth -= 1
        if self._depth:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        lock, self._lock, self._renewer = self._lock, None, None
        try:
            lock.release()
        except LockError as err:
            log.error("the registry lock %s had expired before it was released (%s)", self.key, err)

    def __repr__(self) -> str:
        return f"RedisRegistryLock({self.key})"


_warned_local_only: set[str] = set()


def registry_lock(registry_uri: str, model_name: str, timeout: float = 60.0, *,
                  lock_url: str | None = None) -> AbstractContextManager:
    """The lock serialising registry changes for ``registry_uri`` (see the module docstring);
    ``lock_url`` (``registry.lock_url``) overrides the choice for every registry URI."""
    if lock_url:
        if lock_url.startswith(("postgresql", "postgres")):
            return PostgresAdvisoryLock(lock_url, model_name, timeout)
        if lock_url.startswith(("redis://", "rediss://")):
            return RedisRegistryLock(lock_url, model_name, timeout)
        raise ValueError(f"registry lock URL must be postgresql:// or redis://, got {lock_url.split('://', 1)[0]}://...")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
    if registry_uri.startswith("sqlite:///"):
        db = Path(registry_uri[len("sqlite:///") :].split("?", 1)[0])
        # "<db>-registry-<model>.lock": beside the database, and matched by .gitignore's "mlflow.db-*".
        return FileRegistryLock(db.with_name(f"{db.name}-registry-{safe}.lock"), timeout)
    if registry_uri.startswith(("postgresql", "postgres")):
        return PostgresAdvisoryLock(registry_uri, model_name, timeout)
    digest = hashlib.sha1(registry_uri.encode()).hexdigest()[:12]
    if registry_uri.startswith(("http://", "https://", "databricks")) and registry_uri not in _warned_local_only:
        _warned_local_only.add(registry_uri)
        log.warning(
            "registry changes through %s are serialised by a file lock on this machine only: promotions or "
            "rollbacks from another host can interleave. Set registry.lock_url (SA_REGISTRY__LOCK_URL) to a "
            "postgresql:// or redis:// URL every host reaches.", redact_url(registry_uri),
        )
    else:
        log.debug("registry %s: using a local file lock (serialises this machine only)", registry_uri)
    return FileRegistryLock(Path(tempfile.gettempdir()) / f"signals-registry-{digest}-{safe}.lock", timeout)


