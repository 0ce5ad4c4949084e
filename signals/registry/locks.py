"""Locks that serialise registry changes ("read champion, move alias, record previous").

A ``filelock`` beside a SQLite store, a PostgreSQL session advisory lock for a PostgreSQL registry
(correct across machines, released by PostgreSQL if the process dies) and, for any other store, a
local file lock (this machine only). See :mod:`signals.registry.client`.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

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


def registry_lock(registry_uri: str, model_name: str, timeout: float = 60.0) -> AbstractContextManager:
    """The lock serialising registry changes for ``registry_uri`` (see the module docstring)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
    if registry_uri.startswith("sqlite:///"):
        db = Path(registry_uri[len("sqlite:///") :].split("?", 1)[0])
        # "<db>-registry-<model>.lock": beside the database, and matched by .gitignore's "mlflow.db-*".
        return FileRegistryLock(db.with_name(f"{db.name}-registry-{safe}.lock"), timeout)
    if registry_uri.startswith(("postgresql", "postgres")):
        return PostgresAdvisoryLock(registry_uri, model_name, timeout)
    digest = hashlib.sha1(registry_uri.encode()).hexdigest()[:12]
    log.debug("registry %s: using a local file lock (serialises this machine only)", registry_uri)
    return FileRegistryLock(Path(tempfile.gettempdir()) / f"signals-registry-{digest}-{safe}.lock", timeout)


